//! What this server answers to other servers, and the JSON shapes both Node adapters share:
//! request ids, the sockets of a fetch answer, a peer's client count, options and rooms as JSON.

use crate::adapter::{BroadcastOptions, Room, SocketInfo};
use crate::server::Namespace;
use serde_json::{Value, json};

pub use crate::ids::{hex16 as random_hex, uid6};

/// Parses the `sockets` of a fetch answer.
pub fn socket_infos(v: Option<&Value>) -> Vec<SocketInfo> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| SocketInfo {
            id: s.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
            handshake: s.get("handshake").cloned().unwrap_or(Value::Null),
            rooms: s
                .get("rooms")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            data: s.get("data").cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// This server's matching sockets as a fetch answer lists them.
pub fn local_sockets_json(nsp: &Namespace, opts: &BroadcastOptions) -> Vec<Value> {
    let mut sockets = Vec::new();
    nsp.for_each_local(opts, |s| {
        sockets.push(json!({"id": s.id(), "handshake": s.handshake().to_json(), "rooms": s.rooms(), "data": s.data()}))
    });
    sockets
}

/// The `clientCount` a peer reported (0 when missing or not a count; capped at `usize::MAX`).
pub fn client_count(v: &Value) -> usize {
    v.get("clientCount")
        .and_then(Value::as_u64)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Options as requests carry them: `{rooms, except}` (flags are not sent).
pub fn opts_json(opts: &BroadcastOptions) -> Value {
    let mut v = super::codec::opts_to_json(opts);
    if let Some(o) = v.as_object_mut() {
        o.remove("flags");
    }
    v
}

/// Rooms as a JSON array.
pub fn rooms_json(rooms: &[Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::from(&**r)).collect())
}

/// The string rooms of a request's `rooms` field (others skipped).
pub fn rooms_of(v: Option<&Value>) -> Vec<Room> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_str().map(Room::from)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_client_counts_are_checked() {
        assert_eq!(client_count(&json!({"clientCount": 3})), 3);
        assert_eq!(
            client_count(&json!({"clientCount": u64::MAX})),
            usize::try_from(u64::MAX).unwrap_or(usize::MAX)
        );
        assert_eq!(client_count(&json!({"clientCount": -1})), 0);
        assert_eq!(client_count(&json!({"clientCount": "many"})), 0);
        assert_eq!(client_count(&json!({})), 0);
    }

    #[test]
    fn shapes() {
        assert_eq!(random_hex().len(), 16);
        assert_eq!(uid6().len(), 6);
        let opts = BroadcastOptions {
            rooms: vec![Room::from("a")],
            ..Default::default()
        };
        assert_eq!(opts_json(&opts), json!({"rooms": ["a"], "except": []}));
        assert_eq!(
            rooms_of(Some(&json!(["a", 1, "b"]))),
            vec![Room::from("a"), Room::from("b")]
        );
        let s = socket_infos(Some(&json!([{"id": "x", "rooms": ["x", 2]}])));
        assert_eq!((s[0].id.as_str(), s[0].rooms.clone()), ("x", vec!["x".to_owned()]));
    }
}
