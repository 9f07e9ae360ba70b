//! The sharded Redis adapter, compatible with `@socket.io/redis-adapter`'s
//! `createShardedAdapter` (socket.io-adapter's `ClusterAdapter` messages over Redis ≥ 7 sharded
//! pub/sub): `{type, data, uid, nsp}` as JSON (msgpack when it carries binary) on `prefix#nsp#`,
//! one channel per public room (`prefix#nsp#room#`, the default "dynamic" mode) and responses on
//! `prefix#nsp#<requester uid>#`.

use super::classic::{client_count, local_sockets_json, lock, opts_json, rooms_json, socket_infos};
use super::codec::{CodecError, decode_mp, json_to_mp, mp_to_json, opts_from_json, opts_to_json};
use super::hub::{FetchTable, Outgoing, Publisher, Routed};
use super::service::{PubSubMessage, RedisService};
use super::subs::RoomSubscriptions;
use crate::adapter::{Adapter, BoxFuture, BroadcastOptions, RemoteAck, SocketInfo};
use crate::metrics::{self, METRICS};
use crate::server::namespace::WeakNamespace;
use crate::server::rooms::Room;
use crate::socketio::Packet;
use crate::socketio::packet::placeholder_num;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// socket.io-adapter's `MessageType`.
pub mod message_type {
    /// Broadcast (with `requestId`: expecting acks).
    pub const BROADCAST: u64 = 3;
    /// Make sockets join rooms.
    pub const SOCKETS_JOIN: u64 = 4;
    /// Make sockets leave rooms.
    pub const SOCKETS_LEAVE: u64 = 5;
    /// Disconnect sockets.
    pub const DISCONNECT_SOCKETS: u64 = 6;
    /// Fetch sockets.
    pub const FETCH_SOCKETS: u64 = 7;
    /// Response to a fetch.
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    /// `serverSideEmit`.
    pub const SERVER_SIDE_EMIT: u64 = 9;
    /// Response to a `serverSideEmit` with ack.
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    /// How many clients a server targeted for a broadcast with acks.
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    /// One client's ack.
    pub const BROADCAST_ACK: u64 = 12;
}
use message_type as mt;

use crate::ids::hex16 as random_hex;

/// Whether a room name looks like a socket id (Node: a 20-character string).
fn looks_like_socket_id(room: &str) -> bool {
    room.chars().count() == 20
}

fn has_binary(v: &Value) -> bool {
    matches!(placeholder_num(v), Some(Some(_)))
        || match v {
            Value::Array(a) => a.iter().any(has_binary),
            Value::Object(o) => o.values().any(has_binary),
            _ => false,
        }
}

/// The sharded adapter of one namespace.
pub struct ShardedAdapter {
    nsp_name: String,
    uid: String,
    channel: String,
    response_channel: String,
    service: RedisService,
    publisher: Publisher,
    requests_timeout: Duration,
    nsp: OnceLock<WeakNamespace>,
    fetches: FetchTable,
    ack_requests: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<RemoteAck>>>>,
    room_subs: RoomSubscriptions,
}

impl ShardedAdapter {
    /// The adapter of namespace `nsp` with channel prefix `prefix`.
    pub fn new(
        nsp: &str,
        prefix: &str,
        service: RedisService,
        publisher: Publisher,
        requests_timeout: Duration,
    ) -> ShardedAdapter {
        let uid = random_hex();
        let channel = format!("{prefix}#{nsp}#");
        ShardedAdapter {
            nsp_name: nsp.to_owned(),
            response_channel: format!("{channel}{uid}#"),
            channel,
            uid,
            room_subs: RoomSubscriptions::spawn(service.clone()),
            service,
            publisher,
            requests_timeout,
            nsp: OnceLock::new(),
            fetches: FetchTable::default(),
            ack_requests: Arc::default(),
        }
    }

    /// Channels to `SSUBSCRIBE` at start.
    pub fn subscriptions(&self) -> Vec<String> {
        vec![self.channel.clone(), self.response_channel.clone()]
    }

    fn dynamic_channel(&self, room: &str) -> String {
        format!("{}{room}#", self.channel)
    }

    fn namespace(&self) -> Option<crate::server::Namespace> {
        self.nsp.get()?.upgrade()
    }

    /// Encodes `{type, data, uid, nsp}`: JSON, or msgpack when `data` holds binary.
    fn encode(&self, ty: u64, data: Value, attachments: &[Bytes]) -> Vec<u8> {
        if attachments.is_empty() || !has_binary(&data) {
            return json!({"type": ty, "data": data, "uid": self.uid, "nsp": self.nsp_name})
                .to_string()
                .into_bytes();
        }
        let msg = rmpv::Value::Map(vec![
            (rmpv::Value::from("type"), rmpv::Value::from(ty)),
            (rmpv::Value::from("data"), json_to_mp(&data, attachments)),
            (rmpv::Value::from("uid"), rmpv::Value::from(self.uid.as_str())),
            (rmpv::Value::from("nsp"), rmpv::Value::from(self.nsp_name.as_str())),
        ]);
        let mut out = Vec::new();
        let _ = rmpv::encode::write_value(&mut out, &msg);
        out
    }

    fn publish(&self, channel: String, ty: u64, data: Value, attachments: &[Bytes]) {
        let payload = self.encode(ty, data, attachments);
        self.publisher.send(Outgoing {
            channel,
            payload,
            sharded: true,
        });
    }

    fn respond(&self, requester: &str, ty: u64, data: Value) {
        self.publish(format!("{}{requester}#", self.channel), ty, data, &[]);
    }

    fn decode(payload: &[u8]) -> Result<(Value, Vec<Bytes>), CodecError> {
        if payload.first() == Some(&b'{') {
            return serde_json::from_slice(payload)
                .map(|v| (v, Vec::new()))
                .map_err(|e| CodecError::Undecodable(e.to_string()));
        }
        let mut attachments = Vec::new();
        Ok((mp_to_json(decode_mp(payload)?, &mut attachments), attachments))
    }

    fn packet_of(&self, v: Option<&Value>, attachments: Vec<Bytes>) -> Result<Packet, CodecError> {
        let v = v.ok_or(CodecError::Shape("packet"))?;
        let mut packet = super::codec::packet_from_mp(json_to_mp(v, &attachments))?;
        packet.nsp = self.nsp_name.clone();
        Ok(packet)
    }

    fn on_message(&self, payload: &[u8]) -> Result<(), CodecError> {
        let (msg, attachments) = Self::decode(payload)?;
        let uid = msg.get("uid").and_then(Value::as_str).unwrap_or("");
        if uid == self.uid || msg.get("nsp").and_then(Value::as_str) != Some(self.nsp_name.as_str()) {
            if uid == self.uid && msg.get("type").and_then(Value::as_u64) == Some(mt::BROADCAST) {
                metrics::adapter_broadcast_in(true, 0);
            }
            return Ok(());
        }
        let Some(nsp) = self.namespace() else { return Ok(()) };
        metrics::inc(&METRICS.adapter_messages_in);
        let ty = msg
            .get("type")
            .and_then(Value::as_u64)
            .ok_or(CodecError::Shape("type"))?;
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let opts = data.get("opts").map(opts_from_json).unwrap_or_default();
        let request_id = data.get("requestId").and_then(Value::as_str).map(str::to_owned);
        let rooms: Vec<Room> = data
            .get("rooms")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| r.as_str().map(Room::from)).collect())
            .unwrap_or_default();
        match ty {
            mt::BROADCAST => {
                let mut packet = self.packet_of(data.get("packet"), attachments)?;
                match request_id {
                    None => {
                        let opts = BroadcastOptions {
                            flags: crate::adapter::BroadcastFlags {
                                local: true,
                                ..opts.flags
                            },
                            ..opts
                        };
                        let d = nsp.local_broadcast(&packet, &opts);
                        metrics::adapter_broadcast_in(false, d.queued + d.dropped);
                    }
                    Some(id) => self.remote_broadcast_with_ack(&nsp, &mut packet, &opts, id, uid.to_owned()),
                }
            }
            mt::SOCKETS_JOIN => nsp.local_add_sockets(&opts, &rooms),
            mt::SOCKETS_LEAVE => nsp.local_del_sockets(&opts, &rooms),
            mt::DISCONNECT_SOCKETS => {
                nsp.local_disconnect_sockets(&opts, data.get("close").and_then(Value::as_bool).unwrap_or(false))
            }
            mt::FETCH_SOCKETS => {
                let sockets = local_sockets_json(&nsp, &opts);
                self.respond(
                    uid,
                    mt::FETCH_SOCKETS_RESPONSE,
                    json!({"requestId": request_id, "sockets": sockets}),
                );
            }
            mt::SERVER_SIDE_EMIT => {
                let packet: Vec<Value> = data
                    .get("packet")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                nsp.dispatch_server_event(&packet);
                if let Some(id) = request_id {
                    self.respond(
                        uid,
                        mt::SERVER_SIDE_EMIT_RESPONSE,
                        json!({"requestId": id, "packet": Value::Null}),
                    );
                }
            }
            mt::FETCH_SOCKETS_RESPONSE | mt::BROADCAST_CLIENT_COUNT | mt::BROADCAST_ACK => self.on_response(&msg),
            _ => {}
        }
        Ok(())
    }

    fn remote_broadcast_with_ack(
        &self,
        nsp: &crate::server::Namespace,
        packet: &mut Packet,
        opts: &BroadcastOptions,
        request_id: String,
        requester: String,
    ) {
        packet.id = Some(nsp.next_ack_id());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let targets = nsp.local_broadcast_with_ack(packet, opts, &tx);
        drop(tx);
        let count = targets.len();
        self.respond(
            &requester,
            mt::BROADCAST_CLIENT_COUNT,
            json!({"requestId": request_id, "clientCount": count}),
        );
        let publisher = self.publisher.clone();
        let channel = format!("{}{requester}#", self.channel);
        let (uid, nsp_name) = (self.uid.clone(), self.nsp_name.clone());
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        let id = packet.id.unwrap_or_default();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            for _ in 0..count {
                let Ok(Some(arg)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                    break;
                };
                let msg = json!({"type": mt::BROADCAST_ACK, "data": {"requestId": request_id, "packet": arg}, "uid": uid, "nsp": nsp_name});
                publisher.send(Outgoing {
                    channel: channel.clone(),
                    payload: msg.to_string().into_bytes(),
                    sharded: true,
                });
            }
            for s in targets {
                s.forget_ack(id);
            }
        });
    }

    fn on_response(&self, msg: &Value) {
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let Some(id) = data.get("requestId").and_then(Value::as_str) else {
            return;
        };
        match msg.get("type").and_then(Value::as_u64) {
            Some(mt::BROADCAST_CLIENT_COUNT) => {
                if let Some(tx) = lock(&self.ack_requests).get(id) {
                    let _ = tx.send(RemoteAck::ClientCount(client_count(&data)));
                }
            }
            Some(mt::BROADCAST_ACK) => {
                if let Some(tx) = lock(&self.ack_requests).get(id) {
                    let _ = tx.send(RemoteAck::Ack(data.get("packet").cloned().unwrap_or(Value::Null)));
                }
            }
            Some(mt::FETCH_SOCKETS_RESPONSE) => self.fetches.answer(id, socket_infos(data.get("sockets"))),
            _ => {}
        }
    }

    async fn count_servers(service: &RedisService, channel: &str) -> usize {
        service.numsub(channel, true).await.unwrap_or(1).max(1)
    }
}

impl Routed for ShardedAdapter {
    fn route(&self, msg: &PubSubMessage) -> Option<usize> {
        msg.channel.starts_with(&self.channel).then_some(self.channel.len())
    }

    fn deliver(&self, msg: PubSubMessage) {
        let result = if msg.channel == self.response_channel {
            Self::decode(&msg.payload).map(|(v, _)| self.on_response(&v))
        } else {
            self.on_message(&msg.payload)
        };
        if let Err(e) = result {
            tracing::debug!(channel = %msg.channel, error = %e, "ignored adapter message");
        }
    }
}

impl Adapter for ShardedAdapter {
    fn init(&self, nsp: WeakNamespace) {
        let _ = self.nsp.set(nsp);
    }

    fn on_room_created(&self, room: &Room) {
        // A socket's own room (its id) is never a channel, as in Node's sharded adapter.
        let public = self.namespace().is_some_and(|n| !n.is_local_socket_room(room));
        if public {
            self.room_subs.acquire(self.dynamic_channel(room));
        }
    }

    fn on_room_deleted(&self, room: &Room) {
        // A no-op for rooms never subscribed (socket ids).
        self.room_subs.release(&self.dynamic_channel(room));
    }

    fn is_healthy(&self) -> bool {
        self.service.is_healthy()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        let channel = match opts.rooms.as_slice() {
            [room] if !looks_like_socket_id(room) => self.dynamic_channel(room),
            _ => self.channel.clone(),
        };
        let data = json!({"packet": packet_json(packet), "opts": opts_to_json(opts)});
        self.publish(channel, mt::BROADCAST, data, &packet.attachments);
    }

    fn broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<mpsc::UnboundedReceiver<RemoteAck>>)> {
        let request_id = random_hex();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.ack_requests).insert(request_id.clone(), tx);
        let mut remote = packet.clone();
        remote.id = None;
        let data = json!({"packet": packet_json(&remote), "requestId": request_id, "opts": opts_to_json(opts)});
        self.publish(self.channel.clone(), mt::BROADCAST, data, &remote.attachments);
        let acks = self.ack_requests.clone();
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            lock(&acks).remove(&request_id);
        });
        let (service, channel) = (self.service.clone(), self.channel.clone());
        Box::pin(async move {
            (
                Self::count_servers(&service, &channel).await.saturating_sub(1),
                Some(rx),
            )
        })
    }

    fn fetch_sockets(&self, opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        let request_id = random_hex();
        let (service, channel) = (self.service.clone(), self.channel.clone());
        let payload = self.encode(
            mt::FETCH_SOCKETS,
            json!({"opts": opts_to_json(opts), "requestId": request_id}),
            &[],
        );
        let (publisher, fetches, timeout) = (self.publisher.clone(), self.fetches.clone(), self.requests_timeout);
        Box::pin(async move {
            let others = Self::count_servers(&service, &channel).await.saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let rx = fetches.start(&request_id, others);
            publisher.send(Outgoing {
                channel,
                payload,
                sharded: true,
            });
            fetches.wait(&request_id, rx, timeout).await
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.publish(
            self.channel.clone(),
            mt::SOCKETS_JOIN,
            json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)}),
            &[],
        );
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.publish(
            self.channel.clone(),
            mt::SOCKETS_LEAVE,
            json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)}),
            &[],
        );
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        self.publish(
            self.channel.clone(),
            mt::DISCONNECT_SOCKETS,
            json!({"opts": opts_json(opts), "close": close}),
            &[],
        );
    }

    fn server_side_emit(&self, args: &[Value]) {
        self.publish(self.channel.clone(), mt::SERVER_SIDE_EMIT, json!({"packet": args}), &[]);
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let (service, channel) = (self.service.clone(), self.channel.clone());
        Box::pin(async move { Self::count_servers(&service, &channel).await })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_id_rooms_use_the_base_channel() {
        assert!(looks_like_socket_id("AbCdEfGhIjKlMnOpQrSt"));
        assert!(!looks_like_socket_id("room-1"));
        assert_eq!(random_hex().len(), 16);
        assert!(has_binary(&json!([{"a": crate::socketio::placeholder(0)}])));
        assert!(!has_binary(&json!([{"a": 1}])));
    }

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
}
