//! socket.io-adapter's `ClusterAdapter`, written once: every cluster operation as a
//! `{type, data, uid, nsp}` message ([`MessageType`]), JSON or msgpack when it carries binary,
//! and the handling of the messages of other servers, including requests with responses
//! (fetches, broadcasts with acks, `serverSideEmit`). How messages travel is the [`ClusterBus`]
//! it is built with.

use super::codec::{self, CodecError, decode_any, json_to_mp, opts_from_json, opts_to_json};
use super::kinds::MessageType;
use super::local::{client_count, local_sockets_json, opts_json, random_hex, rooms_json, rooms_of, socket_infos};
use super::requests::{Requests, relay_acks};
use crate::adapter::{Adapter, BoxFuture, BroadcastFlags, BroadcastOptions, RemoteAck, Room, SocketInfo};
use crate::metrics::{self, METRICS};
use crate::server::Namespace;
use crate::server::namespace::WeakNamespace;
use crate::socketio::Packet;
use crate::socketio::packet::has_binary;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a bus needs to know to route a message (Node's sharded adapter picks a room's channel
/// for a plain broadcast to one room).
#[derive(Clone, Copy, Debug)]
pub struct Outbound<'a> {
    /// The message type.
    pub ty: MessageType,
    /// The rooms a broadcast targets (empty for other messages).
    pub rooms: &'a [Room],
    /// Whether the message is a request expecting responses.
    pub is_request: bool,
}

/// How a [`ClusterAdapter`]'s messages travel (Node's `doPublish` / `doPublishResponse`), and the
/// hooks a transport may need. The sharded Redis adapter publishes on a channel per room; the
/// Redis Streams adapter appends to a stream.
pub trait ClusterBus: Send + Sync + 'static {
    /// Sends a message to every other server.
    fn publish(&self, to: Outbound<'_>, payload: Vec<u8>);
    /// Sends a response to the server whose uid is `requester`.
    fn publish_response(&self, requester: &str, payload: Vec<u8>);
    /// How many servers share the namespace, this one included (at least 1).
    fn server_count(&self) -> BoxFuture<'static, usize>;
    /// Whether other servers can be reached.
    fn is_healthy(&self) -> bool {
        true
    }
    /// A public room (not a socket's own) got its first member here.
    fn on_room_created(&self, _room: &Room) {}
    /// A room lost its last member here.
    fn on_room_deleted(&self, _room: &Room) {}
    /// Another server's heartbeat-type message (`InitialHeartbeat`, `Heartbeat`,
    /// `AdapterClose`), for adapters that count servers by heartbeats.
    fn on_heartbeat(&self, _ty: MessageType, _uid: &str) {}
}

/// Encodes `{type, data, uid, nsp}`: JSON, or msgpack when `data` holds binary.
pub fn encode_message(ty: MessageType, data: Value, uid: &str, nsp: &str, attachments: &[Bytes]) -> Vec<u8> {
    if attachments.is_empty() || !has_binary(&data) {
        return json!({"type": ty.code(), "data": data, "uid": uid, "nsp": nsp})
            .to_string()
            .into_bytes();
    }
    codec::encode_mp(&rmpv::Value::Map(vec![
        (rmpv::Value::from("type"), rmpv::Value::from(ty.code())),
        (rmpv::Value::from("data"), json_to_mp(&data, attachments)),
        (rmpv::Value::from("uid"), rmpv::Value::from(uid)),
        (rmpv::Value::from("nsp"), rmpv::Value::from(nsp)),
    ]))
}

/// `{type, data, nsp}` as JSON with placeholders (encoded to msgpack with the binaries if any).
fn packet_json(p: &Packet) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("type".into(), Value::from(p.ty.as_u8()));
    if let Some(d) = &p.data {
        o.insert("data".into(), d.clone());
    }
    o.insert("nsp".into(), Value::from(p.nsp.as_str()));
    Value::Object(o)
}

/// The cluster adapter of one namespace.
pub struct ClusterAdapter {
    nsp_name: String,
    uid: String,
    bus: Arc<dyn ClusterBus>,
    requests_timeout: Duration,
    nsp: OnceLock<WeakNamespace>,
    requests: Requests,
}

impl ClusterAdapter {
    /// The adapter of namespace `nsp` over `bus`, with a fresh random uid.
    pub fn new(nsp: &str, bus: Arc<dyn ClusterBus>, requests_timeout: Duration) -> ClusterAdapter {
        ClusterAdapter::with_uid(nsp, random_hex(), bus, requests_timeout)
    }

    /// The same with a given uid (a bus may need it before the adapter exists).
    pub fn with_uid(nsp: &str, uid: String, bus: Arc<dyn ClusterBus>, requests_timeout: Duration) -> ClusterAdapter {
        ClusterAdapter {
            nsp_name: nsp.to_owned(),
            uid,
            bus,
            requests_timeout,
            nsp: OnceLock::new(),
            requests: Requests::new(),
        }
    }

    /// This server's uid (messages carrying it are our own).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    fn namespace(&self) -> Option<Namespace> {
        self.nsp.get()?.upgrade()
    }

    fn encode(&self, ty: MessageType, data: Value, attachments: &[Bytes]) -> Vec<u8> {
        encode_message(ty, data, &self.uid, &self.nsp_name, attachments)
    }

    fn publish(&self, ty: MessageType, data: Value) {
        let to = Outbound {
            ty,
            rooms: &[],
            is_request: false,
        };
        self.bus.publish(to, self.encode(ty, data, &[]));
    }

    fn respond(&self, requester: &str, ty: MessageType, data: Value) {
        self.bus.publish_response(requester, self.encode(ty, data, &[]));
    }

    fn packet_of(&self, v: Option<&Value>, attachments: Vec<Bytes>) -> Result<Packet, CodecError> {
        let v = v.ok_or(CodecError::Shape("packet"))?;
        let mut packet = codec::packet_from_mp(json_to_mp(v, &attachments))?;
        packet.nsp = self.nsp_name.clone();
        Ok(packet)
    }

    /// Handles a message from pub/sub: a response when it came on `response_channel` (this
    /// server's own), else a request or broadcast. One that does not decode is dropped with a
    /// debug line.
    pub fn on_pubsub(&self, channel: &str, payload: &[u8], response_channel: &str) {
        let result = if channel == response_channel {
            self.on_response(payload)
        } else {
            self.on_message(payload)
        };
        if let Err(e) = result {
            tracing::debug!(%channel, error = %e, "ignored adapter message");
        }
    }

    /// Handles a message of another server (our own and other namespaces' are ignored).
    pub fn on_message(&self, payload: &[u8]) -> Result<(), CodecError> {
        let (msg, attachments) = decode_any(payload)?;
        let uid = msg.get("uid").and_then(Value::as_str).unwrap_or("");
        let code = msg.get("type").and_then(Value::as_u64);
        if uid == self.uid || msg.get("nsp").and_then(Value::as_str) != Some(self.nsp_name.as_str()) {
            if uid == self.uid && code == Some(MessageType::Broadcast.code()) {
                metrics::adapter_broadcast_in(true, 0);
            }
            return Ok(());
        }
        let Some(nsp) = self.namespace() else { return Ok(()) };
        metrics::inc(&METRICS.adapter_messages_in);
        let ty = code.ok_or(CodecError::Shape("type"))?;
        let Some(ty) = MessageType::from_code(ty) else {
            return Err(CodecError::Shape("unknown message type"));
        };
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let opts = data.get("opts").map(opts_from_json).unwrap_or_default();
        let request_id = data.get("requestId").and_then(Value::as_str).map(str::to_owned);
        match ty {
            MessageType::Broadcast => {
                let mut packet = self.packet_of(data.get("packet"), attachments)?;
                match request_id {
                    None => {
                        let opts = BroadcastOptions {
                            flags: BroadcastFlags {
                                local: true,
                                ..opts.flags
                            },
                            ..opts
                        };
                        let d = nsp.local_broadcast(&packet, &opts);
                        metrics::adapter_broadcast_in(false, d.queued + d.dropped);
                    }
                    Some(id) => self.remote_broadcast_with_ack(&nsp, &mut packet, &opts, id, uid),
                }
            }
            MessageType::SocketsJoin => nsp.local_add_sockets(&opts, &rooms_of(data.get("rooms"))),
            MessageType::SocketsLeave => nsp.local_del_sockets(&opts, &rooms_of(data.get("rooms"))),
            MessageType::DisconnectSockets => {
                nsp.local_disconnect_sockets(&opts, data.get("close").and_then(Value::as_bool).unwrap_or(false))
            }
            MessageType::FetchSockets => {
                let sockets = local_sockets_json(&nsp, &opts);
                self.respond(
                    uid,
                    MessageType::FetchSocketsResponse,
                    json!({"requestId": request_id, "sockets": sockets}),
                );
            }
            MessageType::ServerSideEmit => {
                let packet: Vec<Value> = data
                    .get("packet")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                nsp.dispatch_server_event(&packet);
                if let Some(id) = request_id {
                    self.respond(
                        uid,
                        MessageType::ServerSideEmitResponse,
                        json!({"requestId": id, "packet": Value::Null}),
                    );
                }
            }
            MessageType::InitialHeartbeat | MessageType::Heartbeat | MessageType::AdapterClose => {
                self.bus.on_heartbeat(ty, uid)
            }
            MessageType::FetchSocketsResponse
            | MessageType::ServerSideEmitResponse
            | MessageType::BroadcastClientCount
            | MessageType::BroadcastAck => self.on_response_value(&msg),
        }
        Ok(())
    }

    /// Handles a response addressed to this server.
    pub fn on_response(&self, payload: &[u8]) -> Result<(), CodecError> {
        let (msg, _) = decode_any(payload)?;
        self.on_response_value(&msg);
        Ok(())
    }

    fn on_response_value(&self, msg: &Value) {
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let Some(id) = data.get("requestId").and_then(Value::as_str) else {
            return;
        };
        let ty = msg.get("type").and_then(Value::as_u64).and_then(MessageType::from_code);
        match ty {
            Some(MessageType::BroadcastClientCount) => {
                self.requests.ack(id, RemoteAck::ClientCount(client_count(&data)));
            }
            Some(MessageType::BroadcastAck) => {
                self.requests
                    .ack(id, RemoteAck::Ack(data.get("packet").cloned().unwrap_or(Value::Null)));
            }
            Some(MessageType::FetchSocketsResponse) => {
                self.requests.answer_fetch(id, socket_infos(data.get("sockets")))
            }
            _ => {}
        }
    }

    fn remote_broadcast_with_ack(
        &self,
        nsp: &Namespace,
        packet: &mut Packet,
        opts: &BroadcastOptions,
        request_id: String,
        requester: &str,
    ) {
        packet.id = Some(nsp.next_ack_id());
        let (tx, rx) = mpsc::unbounded_channel();
        let targets = nsp.local_broadcast_with_ack(packet, opts, &tx);
        drop(tx);
        self.respond(
            requester,
            MessageType::BroadcastClientCount,
            json!({"requestId": request_id, "clientCount": targets.len()}),
        );
        let (bus, uid, nsp_name) = (self.bus.clone(), self.uid.clone(), self.nsp_name.clone());
        let requester = requester.to_owned();
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        relay_acks(rx, targets, packet.id.unwrap_or_default(), timeout, move |arg| {
            let data = json!({"requestId": request_id, "packet": arg});
            bus.publish_response(
                &requester,
                encode_message(MessageType::BroadcastAck, data, &uid, &nsp_name, &[]),
            );
        });
    }
}

impl Adapter for ClusterAdapter {
    fn init(&self, nsp: WeakNamespace) {
        let _ = self.nsp.set(nsp);
    }

    fn on_room_created(&self, room: &Room) {
        // A socket's own room (its id) is never announced, as in Node's sharded adapter.
        if self.namespace().is_some_and(|n| !n.is_local_socket_room(room)) {
            self.bus.on_room_created(room);
        }
    }

    fn on_room_deleted(&self, room: &Room) {
        self.bus.on_room_deleted(room);
    }

    fn is_healthy(&self) -> bool {
        self.bus.is_healthy()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        let data = json!({"packet": packet_json(packet), "opts": opts_to_json(opts)});
        let to = Outbound {
            ty: MessageType::Broadcast,
            rooms: &opts.rooms,
            is_request: false,
        };
        self.bus
            .publish(to, self.encode(MessageType::Broadcast, data, &packet.attachments));
    }

    fn broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<mpsc::UnboundedReceiver<RemoteAck>>)> {
        let request_id = random_hex();
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        let rx = self.requests.start_acks(&request_id, timeout);
        let mut remote = packet.clone();
        remote.id = None;
        let data = json!({"packet": packet_json(&remote), "requestId": request_id, "opts": opts_to_json(opts)});
        let to = Outbound {
            ty: MessageType::Broadcast,
            rooms: &opts.rooms,
            is_request: true,
        };
        self.bus
            .publish(to, self.encode(MessageType::Broadcast, data, &remote.attachments));
        let count = self.bus.server_count();
        Box::pin(async move { (count.await.saturating_sub(1), Some(rx)) })
    }

    fn fetch_sockets(&self, opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        let request_id = random_hex();
        let data = json!({"opts": opts_to_json(opts), "requestId": request_id});
        let payload = self.encode(MessageType::FetchSockets, data, &[]);
        let (bus, requests, timeout) = (self.bus.clone(), self.requests.clone(), self.requests_timeout);
        Box::pin(async move {
            let others = bus.server_count().await.saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let rx = requests.start_fetch(&request_id, others, timeout);
            let to = Outbound {
                ty: MessageType::FetchSockets,
                rooms: &[],
                is_request: true,
            };
            bus.publish(to, payload);
            rx.await.unwrap_or_default()
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let data = json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)});
        self.publish(MessageType::SocketsJoin, data);
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let data = json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)});
        self.publish(MessageType::SocketsLeave, data);
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        let data = json!({"opts": opts_json(opts), "close": close});
        self.publish(MessageType::DisconnectSockets, data);
    }

    fn server_side_emit(&self, args: &[Value]) {
        self.publish(MessageType::ServerSideEmit, json!({"packet": args}));
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        self.bus.server_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_unless_they_carry_binary() {
        let json = encode_message(MessageType::SocketsJoin, json!({"rooms": ["a"]}), "u1", "/", &[]);
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"type":4,"data":{"rooms":["a"]},"uid":"u1","nsp":"/"}"#
        );
        let bin = [Bytes::from_static(b"\x01")];
        let data = json!({"packet": {"data": [crate::socketio::placeholder(0)]}});
        let mp = encode_message(MessageType::Broadcast, data, "u", "/", &bin);
        assert_eq!(mp[0], 0x84, "a 4-entry msgpack map");
        let (back, attachments) = decode_any(&mp).unwrap();
        assert_eq!(back["type"], 3);
        assert_eq!(&attachments[0][..], b"\x01");
        assert!(has_binary(&json!([{"a": crate::socketio::placeholder(0)}])));
        assert!(!has_binary(&json!([{"a": 1}])));
    }

    /// One recorded publish: type, rooms, whether a request, the JSON text.
    type Published = (MessageType, Vec<Room>, bool, String);

    /// A bus that records what the adapter publishes.
    #[derive(Default)]
    struct Recorder(parking_lot::Mutex<Vec<Published>>);

    impl ClusterBus for Recorder {
        fn publish(&self, to: Outbound<'_>, payload: Vec<u8>) {
            let text = String::from_utf8(payload).expect("JSON");
            self.0.lock().push((to.ty, to.rooms.to_vec(), to.is_request, text));
        }
        fn publish_response(&self, _requester: &str, _payload: Vec<u8>) {}
        fn server_count(&self) -> BoxFuture<'static, usize> {
            Box::pin(async { 1 })
        }
    }

    #[tokio::test]
    async fn operations_have_nodes_wire_shape() {
        let bus = Arc::new(Recorder::default());
        let a = ClusterAdapter::with_uid("/chat", "u1".into(), bus.clone(), Duration::from_secs(5));
        let opts = BroadcastOptions {
            rooms: vec![Room::from("r")],
            except: vec![Room::from("x")],
            flags: BroadcastFlags {
                volatile: true,
                ..Default::default()
            },
        };
        a.broadcast(&Packet::event("/chat", "m", [json!(1)]), &opts);
        a.add_sockets(&opts, &[Room::from("j")]);
        a.del_sockets(&opts, &[Room::from("j")]);
        a.disconnect_sockets(&opts, true);
        a.server_side_emit(&[json!("e"), json!(2)]);
        let (others, _acks) = a
            .broadcast_with_ack(&Packet::event("/chat", "q", [json!(3)]), &opts)
            .await;
        assert_eq!(others, 0, "the recorder's cluster is this server alone");
        let got = bus.0.lock().clone();
        let env = |ty: u64, data: &str| format!(r#"{{"type":{ty},"data":{data},"uid":"u1","nsp":"/chat"}}"#);
        let o = r#"{"rooms":["r"],"except":["x"]}"#;
        assert_eq!(
            got[0],
            (
                MessageType::Broadcast,
                vec![Room::from("r")],
                false,
                env(
                    3,
                    r#"{"packet":{"type":2,"data":["m",1],"nsp":"/chat"},"opts":{"rooms":["r"],"except":["x"],"flags":{"volatile":true}}}"#
                )
            )
        );
        assert_eq!(got[1].3, env(4, &format!(r#"{{"opts":{o},"rooms":["j"]}}"#)));
        assert_eq!(got[2].3, env(5, &format!(r#"{{"opts":{o},"rooms":["j"]}}"#)));
        assert_eq!(got[3].3, env(6, &format!(r#"{{"opts":{o},"close":true}}"#)));
        assert_eq!(got[4].3, env(9, r#"{"packet":["e",2]}"#));
        let (ty, _, is_request, text) = &got[5];
        assert!(*is_request && *ty == MessageType::Broadcast);
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["data"]["requestId"].as_str().map(str::len), Some(16));
        assert!(v["data"]["packet"].get("id").is_none(), "the ack id stays local");
    }
}
