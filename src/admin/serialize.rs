//! Sockets as `@socket.io/admin-ui` serializes them (`SerializedSocket`): `id`, `clientId`,
//! `transport`, `nsp`, `data` (without the `_admin` bookkeeping), `handshake`, `rooms`.

use crate::adapter::SocketInfo;
use crate::server::Socket;
use serde_json::{Map, Value, json};

/// The key of `socket.data` where, as in Node, the admin keeps a socket's client id and
/// transport, so they travel with `fetch_sockets` across the cluster.
pub const ADMIN_KEY: &str = "_admin";

/// `socket.data` without `_admin` (`{}` when unset).
pub fn public_data(data: &Value) -> Value {
    match data {
        Value::Null => Value::Object(Map::new()),
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != ADMIN_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// 12 characters of the random part of the Engine.IO id (Node's `clientId`: the first 12 of its
/// sid). A tagged sid (`INSTANCE_ID.random`) starts with the instance tag, shared by every
/// connection of an instance, so the tag is skipped.
pub fn client_id(conn_id: &str) -> String {
    let random = conn_id
        .rsplit_once(crate::engineio::sid::TAG_SEPARATOR)
        .map_or(conn_id, |(_, r)| r);
    random.chars().take(12).collect()
}

/// The handshake fields the UI shows (Node leaves `auth` out), with the client's address taken
/// from `cf-connecting-ip` / `x-forwarded-for` when present.
pub fn handshake(h: &Value) -> Value {
    let headers = h.get("headers").cloned().unwrap_or_else(|| json!({}));
    let address = headers
        .get("cf-connecting-ip")
        .or_else(|| headers.get("x-forwarded-for"))
        .or_else(|| h.get("address"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "address": address,
        "headers": headers,
        "query": h.get("query").cloned().unwrap_or_else(|| json!({})),
        "issued": h.get("issued").cloned().unwrap_or(Value::Null),
        "secure": h.get("secure").cloned().unwrap_or(Value::Bool(false)),
        "time": h.get("time").cloned().unwrap_or(Value::Null),
        "url": h.get("url").cloned().unwrap_or(Value::Null),
        "xdomain": h.get("xdomain").cloned().unwrap_or(Value::Bool(false)),
    })
}

/// A socket of this server.
pub fn local_socket(s: &Socket) -> Value {
    json!({
        "id": s.id(),
        "clientId": client_id(s.conn_id()),
        "transport": s.transport().as_str(),
        "nsp": s.nsp().name(),
        "data": public_data(&s.data()),
        "handshake": handshake(&s.handshake().to_json()),
        "rooms": s.rooms(),
    })
}

/// A socket from `fetch_sockets` (any instance, Node's included): client id and transport come
/// from `data._admin`, as Node puts them there.
pub fn remote_socket(s: &SocketInfo, nsp: &str) -> Value {
    let admin = s.data.get(ADMIN_KEY);
    let field = |k: &str| admin.and_then(|a| a.get(k)).cloned().unwrap_or(Value::Null);
    json!({
        "id": s.id,
        "clientId": field("clientId"),
        "transport": field("transport"),
        "nsp": nsp,
        "data": public_data(&s.data),
        "handshake": handshake(&s.handshake),
        "rooms": s.rooms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_hides_admin_bookkeeping() {
        assert_eq!(public_data(&Value::Null), json!({}));
        assert_eq!(
            public_data(&json!({"_admin": {"clientId": "x"}, "user": 1})),
            json!({"user": 1})
        );
        assert_eq!(public_data(&json!(5)), json!(5));
    }

    #[test]
    fn remote_socket_reads_admin_fields() {
        let info = SocketInfo {
            id: "s1".into(),
            handshake: json!({"headers": {"x-forwarded-for": "10.0.0.9"}, "address": "127.0.0.1", "auth": {"token": "t"}}),
            rooms: vec!["s1".into(), "r1".into()],
            data: json!({"_admin": {"clientId": "abcdefabcdef", "transport": "websocket"}, "name": "bob"}),
        };
        let v = remote_socket(&info, "/");
        assert_eq!(v["clientId"], "abcdefabcdef");
        assert_eq!(v["transport"], "websocket");
        assert_eq!(v["data"], json!({"name": "bob"}));
        assert_eq!(v["handshake"]["address"], "10.0.0.9");
        assert!(v["handshake"].get("auth").is_none(), "auth is never shown");
        assert_eq!(v["rooms"], json!(["s1", "r1"]));
    }

    #[test]
    fn client_id_is_twelve_chars() {
        assert_eq!(client_id("0123456789abcdefXYZ"), "0123456789ab");
        assert_eq!(client_id("short"), "short");
    }

    #[test]
    fn client_id_skips_the_instance_tag() {
        let tag = "sio-instance-with-a-long-name";
        let (a, b) = (
            crate::engineio::sid::generate(Some(tag)),
            crate::engineio::sid::generate(Some(tag)),
        );
        assert_eq!(client_id(&a).len(), 12);
        assert_ne!(client_id(&a), client_id(&b), "two connections, two client ids");
        assert!(!client_id(&a).contains("sio"));
        assert_eq!(client_id("s1.0123456789abcdefXYZ"), "0123456789ab");
    }
}
