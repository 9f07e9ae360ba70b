//! The classic Redis adapter, wire-compatible with `@socket.io/redis-adapter` 8.x
//! (`createAdapter`): broadcasts as msgpack `[uid, packet, opts]` on `prefix#nsp#[room#]`,
//! requests and responses as JSON (msgpack for broadcast-with-ack) on `prefix-request#nsp#` and
//! `prefix-response#nsp#`, server count via `PUBSUB NUMSUB` of the request channel.

use super::codec::{
    self, CodecError, decode_mp, mp_to_json, opts_from_json, opts_to_json, packet_from_mp, packet_to_mp,
};
use super::hub::{FetchTable, Outgoing, Publisher, Routed};
use super::service::{PubSubMessage, RedisService};
use crate::adapter::{Adapter, BoxFuture, BroadcastOptions, RemoteAck, SocketInfo};
use crate::metrics::{self, METRICS};
use crate::server::namespace::WeakNamespace;
use crate::server::rooms::Room;
use crate::socketio::Packet;
use rmpv::Value as Mp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Request types of `@socket.io/redis-adapter` (its `RequestType` enum).
pub mod request_type {
    /// Legacy: socket ids in rooms.
    pub const SOCKETS: u64 = 0;
    /// All rooms of the cluster.
    pub const ALL_ROOMS: u64 = 1;
    /// Make sockets join rooms.
    pub const REMOTE_JOIN: u64 = 2;
    /// Make sockets leave rooms.
    pub const REMOTE_LEAVE: u64 = 3;
    /// Disconnect sockets.
    pub const REMOTE_DISCONNECT: u64 = 4;
    /// Fetch sockets.
    pub const REMOTE_FETCH: u64 = 5;
    /// `serverSideEmit`.
    pub const SERVER_SIDE_EMIT: u64 = 6;
    /// Broadcast expecting acks.
    pub const BROADCAST: u64 = 7;
    /// Response: how many clients a server targeted.
    pub const BROADCAST_CLIENT_COUNT: u64 = 8;
    /// Response: one client's ack.
    pub const BROADCAST_ACK: u64 = 9;
}
use request_type as rt;

pub use crate::ids::uid6;

/// The classic adapter of one namespace.
pub struct ClassicAdapter {
    nsp_name: String,
    uid: String,
    channel: String,
    request_channel: String,
    response_channel: String,
    specific_response_channel: String,
    service: RedisService,
    publisher: Publisher,
    requests_timeout: Duration,
    nsp: OnceLock<WeakNamespace>,
    fetches: FetchTable,
    ack_requests: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<RemoteAck>>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses the `sockets` of a fetch response.
pub(super) fn socket_infos(v: Option<&Value>) -> Vec<SocketInfo> {
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

/// This server's matching sockets as a fetch response lists them.
pub(super) fn local_sockets_json(nsp: &crate::server::Namespace, opts: &BroadcastOptions) -> Vec<Value> {
    let mut sockets = Vec::new();
    nsp.for_each_local(opts, |s| {
        sockets.push(json!({"id": s.id(), "handshake": s.handshake().to_json(), "rooms": s.rooms(), "data": s.data()}))
    });
    sockets
}

/// The `clientCount` a peer reported (0 when missing or not a count; capped at `usize::MAX`).
pub(super) fn client_count(v: &Value) -> usize {
    v.get("clientCount")
        .and_then(Value::as_u64)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) fn opts_json(opts: &BroadcastOptions) -> Value {
    let mut v = opts_to_json(opts);
    if let Some(o) = v.as_object_mut() {
        o.remove("flags");
    }
    v
}

pub(super) fn rooms_json(rooms: &[Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::from(&**r)).collect())
}

impl ClassicAdapter {
    /// The adapter of namespace `nsp` with key prefix `prefix`.
    pub fn new(
        nsp: &str,
        prefix: &str,
        service: RedisService,
        publisher: Publisher,
        requests_timeout: Duration,
    ) -> ClassicAdapter {
        let uid = uid6();
        let response_channel = format!("{prefix}-response#{nsp}#");
        ClassicAdapter {
            nsp_name: nsp.to_owned(),
            channel: format!("{prefix}#{nsp}#"),
            request_channel: format!("{prefix}-request#{nsp}#"),
            specific_response_channel: format!("{response_channel}{uid}#"),
            response_channel,
            uid,
            service,
            publisher,
            requests_timeout,
            nsp: OnceLock::new(),
            fetches: FetchTable::default(),
            ack_requests: Arc::default(),
        }
    }

    /// Channels and patterns to subscribe to: `(psubscribe, subscribe)`.
    pub fn subscriptions(&self) -> (Vec<String>, Vec<String>) {
        (
            vec![format!("{}*", self.channel)],
            vec![
                self.request_channel.clone(),
                self.response_channel.clone(),
                self.specific_response_channel.clone(),
            ],
        )
    }

    fn namespace(&self) -> Option<crate::server::Namespace> {
        self.nsp.get()?.upgrade()
    }

    fn publish_json(&self, channel: &str, v: &Value) {
        self.publisher.send(Outgoing {
            channel: channel.to_owned(),
            payload: v.to_string().into_bytes(),
            sharded: false,
        });
    }

    fn publish_mp(&self, channel: &str, v: &Mp) {
        let mut buf = Vec::new();
        let _ = rmpv::encode::write_value(&mut buf, v);
        self.publisher.send(Outgoing {
            channel: channel.to_owned(),
            payload: buf,
            sharded: false,
        });
    }

    fn on_broadcast(&self, channel: &str, payload: &[u8]) -> Result<(), CodecError> {
        let room = &channel[self.channel.len()..];
        let room = room.strip_suffix('#').unwrap_or(room);
        let Some(nsp) = self.namespace() else { return Ok(()) };
        let own = codec::peek_broadcast_uid(payload) == Some(self.uid.as_bytes());
        if !room.is_empty() && !nsp.has_local_room(room) {
            // Counted from the uid alone: the packet is never decoded.
            if !own {
                metrics::inc(&METRICS.adapter_messages_in);
            }
            metrics::adapter_broadcast_in(own, 0);
            return Ok(());
        }
        let (uid, packet, mut opts) = codec::decode_broadcast(payload)?;
        if uid == self.uid || packet.nsp != self.nsp_name {
            metrics::adapter_broadcast_in(uid == self.uid, 0);
            return Ok(());
        }
        metrics::inc(&METRICS.adapter_messages_in);
        opts.flags.local = true;
        let d = nsp.local_broadcast(&packet, &opts);
        metrics::adapter_broadcast_in(false, d.queued + d.dropped);
        Ok(())
    }

    fn decode_request(payload: &[u8]) -> Result<(Value, Vec<bytes::Bytes>), CodecError> {
        if payload.first() == Some(&b'{') {
            let v = serde_json::from_slice(payload).map_err(|e| CodecError::Undecodable(e.to_string()))?;
            return Ok((v, Vec::new()));
        }
        let mut attachments = Vec::new();
        let v = mp_to_json(decode_mp(payload)?, &mut attachments);
        Ok((v, attachments))
    }

    fn on_request(&self, payload: &[u8]) -> Result<(), CodecError> {
        let Some(nsp) = self.namespace() else { return Ok(()) };
        let ty = if payload.first() == Some(&b'{') {
            let (req, _) = Self::decode_request(payload)?;
            return self.on_json_request(&nsp, req);
        } else {
            decode_mp(payload)?
        };
        // msgpack requests: BROADCAST (with acks).
        let kind = codec::mp_get(&ty, "type").and_then(Mp::as_u64);
        if kind != Some(rt::BROADCAST) {
            return Err(CodecError::Shape("unexpected msgpack request"));
        }
        let request_id = codec::mp_get(&ty, "requestId")
            .and_then(Mp::as_str)
            .unwrap_or("")
            .to_owned();
        if request_id.is_empty() || lock(&self.ack_requests).contains_key(&request_id) {
            return Ok(());
        }
        let packet = codec::mp_get(&ty, "packet")
            .cloned()
            .ok_or(CodecError::Shape("packet"))?;
        let mut packet = packet_from_mp(packet)?;
        let opts = codec::mp_get(&ty, "opts")
            .cloned()
            .map(|o| opts_from_json(&mp_to_json(o, &mut Vec::new())))
            .unwrap_or_default();
        let opts = BroadcastOptions {
            flags: Default::default(),
            ..opts
        };
        metrics::inc(&METRICS.adapter_messages_in);
        packet.nsp = self.nsp_name.clone();
        packet.id = Some(nsp.next_ack_id());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let targets = nsp.local_broadcast_with_ack(&packet, &opts, &tx);
        drop(tx);
        let count = targets.len();
        self.publish_json(
            &self.response_channel,
            &json!({"type": rt::BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": count}),
        );
        let publisher = self.publisher.clone();
        let channel = self.response_channel.clone();
        let timeout = self.requests_timeout;
        let id = packet.id.unwrap_or_default();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut answered = 0;
            while answered < count {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(arg)) => {
                        answered += 1;
                        let msg = Mp::Map(vec![
                            (Mp::from("type"), Mp::from(rt::BROADCAST_ACK)),
                            (Mp::from("requestId"), Mp::from(request_id.as_str())),
                            (Mp::from("packet"), codec::json_to_mp(&arg, &[])),
                        ]);
                        let mut buf = Vec::new();
                        let _ = rmpv::encode::write_value(&mut buf, &msg);
                        publisher.send(Outgoing {
                            channel: channel.clone(),
                            payload: buf,
                            sharded: false,
                        });
                    }
                    _ => break,
                }
            }
            for s in targets {
                s.forget_ack(id);
            }
        });
        Ok(())
    }

    fn on_json_request(&self, nsp: &crate::server::Namespace, req: Value) -> Result<(), CodecError> {
        let ty = req
            .get("type")
            .and_then(Value::as_u64)
            .ok_or(CodecError::Shape("type"))?;
        let request_id = req.get("requestId").and_then(Value::as_str).map(str::to_owned);
        let own = req.get("uid").and_then(Value::as_str) == Some(self.uid.as_str())
            || request_id.as_ref().is_some_and(|id| self.fetches.contains(id));
        if own {
            return Ok(());
        }
        metrics::inc(&METRICS.adapter_messages_in);
        let opts = req.get("opts").map(opts_from_json);
        let rooms: Vec<Room> = req
            .get("rooms")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| r.as_str().map(Room::from)).collect())
            .unwrap_or_default();
        let respond = |v: Value| self.publish_json(&self.response_channel, &v);
        match ty {
            rt::SOCKETS => {
                let opts = BroadcastOptions {
                    rooms: rooms.clone(),
                    ..Default::default()
                };
                let mut ids = Vec::new();
                nsp.for_each_local(&opts, |s| ids.push(Value::from(s.id())));
                respond(json!({"requestId": request_id, "sockets": ids}));
            }
            rt::ALL_ROOMS => respond(json!({"requestId": request_id, "rooms": nsp.local_rooms()})),
            rt::REMOTE_JOIN | rt::REMOTE_LEAVE | rt::REMOTE_DISCONNECT => match opts {
                Some(opts) => match ty {
                    rt::REMOTE_JOIN => nsp.local_add_sockets(&opts, &rooms),
                    rt::REMOTE_LEAVE => nsp.local_del_sockets(&opts, &rooms),
                    _ => {
                        nsp.local_disconnect_sockets(&opts, req.get("close").and_then(Value::as_bool).unwrap_or(false))
                    }
                },
                None => {
                    // Legacy single-socket form: {requestId, type, sid, room | close}.
                    let sid = req.get("sid").and_then(Value::as_str).unwrap_or("");
                    let Some(socket) = nsp.socket(sid) else { return Ok(()) };
                    let room = req.get("room").and_then(Value::as_str).unwrap_or("");
                    match ty {
                        rt::REMOTE_JOIN => {
                            let _ = socket.join(room);
                        }
                        rt::REMOTE_LEAVE => socket.leave(room),
                        _ => socket.disconnect(req.get("close").and_then(Value::as_bool).unwrap_or(false)),
                    }
                    respond(json!({"requestId": request_id}));
                }
            },
            rt::REMOTE_FETCH => {
                let opts = opts.unwrap_or_default();
                respond(json!({"requestId": request_id, "sockets": local_sockets_json(nsp, &opts)}));
            }
            rt::SERVER_SIDE_EMIT => {
                let data: Vec<Value> = req.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
                nsp.dispatch_server_event(&data);
                if let Some(id) = request_id {
                    // The listener API has no ack: answer with null so a waiting Node server completes.
                    respond(json!({"type": rt::SERVER_SIDE_EMIT, "requestId": id, "data": Value::Null}));
                }
            }
            _ => return Err(CodecError::Shape("unknown request type")),
        }
        Ok(())
    }

    fn on_response(&self, payload: &[u8]) -> Result<(), CodecError> {
        let (resp, _) = Self::decode_request(payload)?;
        let Some(request_id) = resp.get("requestId").and_then(Value::as_str) else {
            return Ok(());
        };
        if let Some(tx) = lock(&self.ack_requests).get(request_id) {
            match resp.get("type").and_then(Value::as_u64) {
                Some(rt::BROADCAST_CLIENT_COUNT) => {
                    let _ = tx.send(RemoteAck::ClientCount(client_count(&resp)));
                }
                Some(rt::BROADCAST_ACK) => {
                    let _ = tx.send(RemoteAck::Ack(resp.get("packet").cloned().unwrap_or(Value::Null)));
                }
                _ => {}
            }
            return Ok(());
        }
        self.fetches.answer(request_id, socket_infos(resp.get("sockets")));
        Ok(())
    }

    async fn numsub(service: &RedisService, channel: &str) -> usize {
        match service.numsub(channel, false).await {
            Ok(n) => n.max(1),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count servers; assuming this one alone");
                1
            }
        }
    }
}

impl Routed for ClassicAdapter {
    fn route(&self, msg: &PubSubMessage) -> Option<usize> {
        let c = msg.channel.as_str();
        if c == self.request_channel || c == self.response_channel || c == self.specific_response_channel {
            return Some(usize::MAX);
        }
        c.starts_with(&self.channel).then_some(self.channel.len())
    }

    fn deliver(&self, msg: PubSubMessage) {
        let c = msg.channel.as_str();
        let result = if c == self.request_channel {
            self.on_request(&msg.payload)
        } else if c.starts_with(&self.response_channel) {
            self.on_response(&msg.payload)
        } else {
            self.on_broadcast(c, &msg.payload)
        };
        if let Err(e) = result {
            tracing::debug!(channel = %msg.channel, error = %e, "ignored adapter message");
        }
    }
}

impl Adapter for ClassicAdapter {
    fn init(&self, nsp: WeakNamespace) {
        let _ = self.nsp.set(nsp);
    }

    fn is_healthy(&self) -> bool {
        self.service.is_healthy()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        let mut channel = self.channel.clone();
        if opts.rooms.len() == 1 {
            channel.push_str(&opts.rooms[0]);
            channel.push('#');
        }
        let mut packet = packet.clone();
        packet.nsp = self.nsp_name.clone();
        let payload = codec::encode_broadcast(&self.uid, &packet, opts);
        self.publisher.send(Outgoing {
            channel,
            payload,
            sharded: false,
        });
    }

    fn broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<mpsc::UnboundedReceiver<RemoteAck>>)> {
        let request_id = uid6();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.ack_requests).insert(request_id.clone(), tx);
        let mut remote = packet.clone();
        remote.id = None;
        remote.nsp = self.nsp_name.clone();
        let msg = Mp::Map(vec![
            (Mp::from("uid"), Mp::from(self.uid.as_str())),
            (Mp::from("requestId"), Mp::from(request_id.as_str())),
            (Mp::from("type"), Mp::from(rt::BROADCAST)),
            (Mp::from("packet"), packet_to_mp(&remote)),
            (Mp::from("opts"), codec::opts_to_mp(opts)),
        ]);
        self.publish_mp(&self.request_channel, &msg);
        let service = self.service.clone();
        let channel = self.request_channel.clone();
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        let acks = self.ack_requests.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            lock(&acks).remove(&request_id);
        });
        Box::pin(async move {
            let servers = Self::numsub(&service, &channel).await.saturating_sub(1);
            (servers, Some(rx))
        })
    }

    fn fetch_sockets(&self, opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        let service = self.service.clone();
        let request_channel = self.request_channel.clone();
        let request_id = uid6();
        let request =
            json!({"uid": self.uid, "requestId": request_id, "type": rt::REMOTE_FETCH, "opts": opts_json(opts)});
        let fetches = self.fetches.clone();
        let publisher = self.publisher.clone();
        let timeout = self.requests_timeout;
        Box::pin(async move {
            let others = Self::numsub(&service, &request_channel).await.saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let rx = fetches.start(&request_id, others);
            publisher.send(Outgoing {
                channel: request_channel,
                payload: request.to_string().into_bytes(),
                sharded: false,
            });
            fetches.wait(&request_id, rx, timeout).await
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let req =
            json!({"uid": self.uid, "type": rt::REMOTE_JOIN, "opts": opts_json(opts), "rooms": rooms_json(rooms)});
        self.publish_json(&self.request_channel, &req);
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let req =
            json!({"uid": self.uid, "type": rt::REMOTE_LEAVE, "opts": opts_json(opts), "rooms": rooms_json(rooms)});
        self.publish_json(&self.request_channel, &req);
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        let req = json!({"uid": self.uid, "type": rt::REMOTE_DISCONNECT, "opts": opts_json(opts), "close": close});
        self.publish_json(&self.request_channel, &req);
    }

    fn server_side_emit(&self, args: &[Value]) {
        let req = json!({"uid": self.uid, "type": rt::SERVER_SIDE_EMIT, "data": args});
        self.publish_json(&self.request_channel, &req);
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let service = self.service.clone();
        let channel = self.request_channel.clone();
        Box::pin(async move { Self::numsub(&service, &channel).await })
    }
}
