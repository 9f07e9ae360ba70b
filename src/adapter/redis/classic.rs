//! The classic Redis adapter, wire-compatible with `@socket.io/redis-adapter` 8.x
//! (`createAdapter`): broadcasts as msgpack `[uid, packet, opts]` on `prefix#nsp#[room#]`,
//! requests and responses as JSON (msgpack for broadcast-with-ack) on `prefix-request#nsp#` and
//! `prefix-response#nsp#`, server count via `PUBSUB NUMSUB` of the request channel. It runs on
//! any [`PubSub`] driver; the request table, relay and codec are the shared cluster core.

use crate::adapter::cluster::codec::{
    self, CodecError, decode_any, decode_mp, encode_mp, mp_to_json, opts_from_json, packet_from_mp, packet_to_mp,
};
use crate::adapter::cluster::local::{client_count, local_sockets_json, opts_json, rooms_json, rooms_of, socket_infos};
use crate::adapter::cluster::requests::relay_acks;
use crate::adapter::cluster::{RequestType, Requests};
use crate::adapter::pubsub::{PubSub, PubSubMessage, Routed};
use crate::adapter::{Adapter, BoxFuture, BroadcastOptions, RemoteAck, Room, SocketInfo};
use crate::metrics::{self, METRICS};
use crate::server::Namespace;
use crate::server::namespace::WeakNamespace;
use crate::socketio::Packet;
use rmpv::Value as Mp;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::adapter::cluster::local::uid6;

/// The classic adapter of one namespace.
pub struct ClassicAdapter {
    nsp_name: String,
    uid: String,
    channel: String,
    request_channel: String,
    response_channel: String,
    specific_response_channel: String,
    driver: Arc<dyn PubSub>,
    requests_timeout: Duration,
    nsp: OnceLock<WeakNamespace>,
    requests: Requests,
}

/// How many servers subscribe to `channel` (at least this one; 1 when Redis cannot tell).
async fn count_servers(count: BoxFuture<'static, Result<usize, String>>) -> usize {
    match count.await {
        Ok(n) => n.max(1),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count servers; assuming this one alone");
            1
        }
    }
}

impl ClassicAdapter {
    /// The adapter of namespace `nsp` with key prefix `prefix` over `driver`; subscribes its
    /// pattern and channels.
    pub fn new(nsp: &str, prefix: &str, driver: Arc<dyn PubSub>, requests_timeout: Duration) -> ClassicAdapter {
        let uid = uid6();
        let response_channel = format!("{prefix}-response#{nsp}#");
        let a = ClassicAdapter {
            nsp_name: nsp.to_owned(),
            channel: format!("{prefix}#{nsp}#"),
            request_channel: format!("{prefix}-request#{nsp}#"),
            specific_response_channel: format!("{response_channel}{uid}#"),
            response_channel,
            uid,
            driver,
            requests_timeout,
            nsp: OnceLock::new(),
            requests: Requests::new(),
        };
        a.driver.psubscribe(format!("{}*", a.channel));
        for c in [&a.request_channel, &a.response_channel, &a.specific_response_channel] {
            a.driver.subscribe(c.clone());
        }
        a
    }

    fn namespace(&self) -> Option<Namespace> {
        self.nsp.get()?.upgrade()
    }

    fn publish_json(&self, channel: &str, v: &Value) {
        self.driver.publish(channel.to_owned(), v.to_string().into_bytes());
    }

    /// Publishes `{uid, type, ...fields}` on the request channel.
    fn request(&self, ty: RequestType, fields: Value) {
        let mut o = serde_json::Map::new();
        o.insert("uid".into(), Value::from(self.uid.as_str()));
        o.insert("type".into(), Value::from(ty.code()));
        if let Value::Object(fields) = fields {
            o.extend(fields);
        }
        self.publish_json(&self.request_channel, &Value::Object(o));
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

    fn on_request(&self, payload: &[u8]) -> Result<(), CodecError> {
        let Some(nsp) = self.namespace() else { return Ok(()) };
        if payload.first() == Some(&b'{') {
            let (req, _) = decode_any(payload)?;
            return self.on_json_request(&nsp, req);
        }
        // msgpack requests: BROADCAST (with acks).
        let req = decode_mp(payload)?;
        let kind = codec::mp_get(&req, "type").and_then(Mp::as_u64);
        if kind != Some(RequestType::Broadcast.code()) {
            return Err(CodecError::Shape("unexpected msgpack request"));
        }
        let request_id = codec::mp_get(&req, "requestId")
            .and_then(Mp::as_str)
            .unwrap_or("")
            .to_owned();
        if request_id.is_empty() || self.requests.is_ack_request(&request_id) {
            return Ok(());
        }
        let packet = codec::mp_get(&req, "packet")
            .cloned()
            .ok_or(CodecError::Shape("packet"))?;
        let mut packet = packet_from_mp(packet)?;
        let opts = codec::mp_get(&req, "opts")
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
        let (tx, rx) = mpsc::unbounded_channel();
        let targets = nsp.local_broadcast_with_ack(&packet, &opts, &tx);
        drop(tx);
        let count_reply = json!({"type": RequestType::BroadcastClientCount.code(), "requestId": request_id, "clientCount": targets.len()});
        self.publish_json(&self.response_channel, &count_reply);
        let (driver, channel) = (self.driver.clone(), self.response_channel.clone());
        relay_acks(
            rx,
            targets,
            packet.id.unwrap_or_default(),
            self.requests_timeout,
            move |arg| {
                let msg = Mp::Map(vec![
                    (Mp::from("type"), Mp::from(RequestType::BroadcastAck.code())),
                    (Mp::from("requestId"), Mp::from(request_id.as_str())),
                    (Mp::from("packet"), codec::json_to_mp(&arg, &[])),
                ]);
                driver.publish(channel.clone(), encode_mp(&msg));
            },
        );
        Ok(())
    }

    fn on_json_request(&self, nsp: &Namespace, req: Value) -> Result<(), CodecError> {
        let code = req
            .get("type")
            .and_then(Value::as_u64)
            .ok_or(CodecError::Shape("type"))?;
        let request_id = req.get("requestId").and_then(Value::as_str).map(str::to_owned);
        let own = req.get("uid").and_then(Value::as_str) == Some(self.uid.as_str())
            || request_id.as_ref().is_some_and(|id| self.requests.contains(id));
        if own {
            return Ok(());
        }
        metrics::inc(&METRICS.adapter_messages_in);
        let ty = RequestType::from_code(code).ok_or(CodecError::Shape("unknown request type"))?;
        let opts = req.get("opts").map(opts_from_json);
        let rooms = rooms_of(req.get("rooms"));
        let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
        let respond = |v: Value| self.publish_json(&self.response_channel, &v);
        match (ty, opts) {
            (RequestType::Sockets, _) => {
                let opts = BroadcastOptions {
                    rooms,
                    ..Default::default()
                };
                let mut ids = Vec::new();
                nsp.for_each_local(&opts, |s| ids.push(Value::from(s.id())));
                respond(json!({"requestId": request_id, "sockets": ids}));
            }
            (RequestType::AllRooms, _) => respond(json!({"requestId": request_id, "rooms": nsp.local_rooms()})),
            (RequestType::RemoteJoin, Some(opts)) => nsp.local_add_sockets(&opts, &rooms),
            (RequestType::RemoteLeave, Some(opts)) => nsp.local_del_sockets(&opts, &rooms),
            (RequestType::RemoteDisconnect, Some(opts)) => nsp.local_disconnect_sockets(&opts, close),
            (RequestType::RemoteJoin | RequestType::RemoteLeave | RequestType::RemoteDisconnect, None) => {
                // Legacy single-socket form: {requestId, type, sid, room | close}.
                let sid = req.get("sid").and_then(Value::as_str).unwrap_or("");
                let Some(socket) = nsp.socket(sid) else { return Ok(()) };
                let room = req.get("room").and_then(Value::as_str).unwrap_or("");
                match ty {
                    RequestType::RemoteJoin => {
                        let _ = socket.join(room);
                    }
                    RequestType::RemoteLeave => socket.leave(room),
                    _ => socket.disconnect(close),
                }
                respond(json!({"requestId": request_id}));
            }
            (RequestType::RemoteFetch, opts) => {
                let opts = opts.unwrap_or_default();
                respond(json!({"requestId": request_id, "sockets": local_sockets_json(nsp, &opts)}));
            }
            (RequestType::ServerSideEmit, _) => {
                let data: Vec<Value> = req.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
                nsp.dispatch_server_event(&data);
                if let Some(id) = request_id {
                    // The listener API has no ack: answer with null so a waiting Node server completes.
                    respond(json!({"type": RequestType::ServerSideEmit.code(), "requestId": id, "data": Value::Null}));
                }
            }
            (RequestType::Broadcast | RequestType::BroadcastClientCount | RequestType::BroadcastAck, _) => {
                return Err(CodecError::Shape("unexpected JSON request type"));
            }
        }
        Ok(())
    }

    fn on_response(&self, payload: &[u8]) -> Result<(), CodecError> {
        let (resp, _) = decode_any(payload)?;
        let Some(request_id) = resp.get("requestId").and_then(Value::as_str) else {
            return Ok(());
        };
        if self.requests.is_ack_request(request_id) {
            let ty = resp
                .get("type")
                .and_then(Value::as_u64)
                .and_then(RequestType::from_code);
            match ty {
                Some(RequestType::BroadcastClientCount) => {
                    self.requests
                        .ack(request_id, RemoteAck::ClientCount(client_count(&resp)));
                }
                Some(RequestType::BroadcastAck) => {
                    let ack = RemoteAck::Ack(resp.get("packet").cloned().unwrap_or(Value::Null));
                    self.requests.ack(request_id, ack);
                }
                _ => {}
            }
            return Ok(());
        }
        self.requests
            .answer_fetch(request_id, socket_infos(resp.get("sockets")));
        Ok(())
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
        self.driver.is_healthy()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        let mut channel = self.channel.clone();
        if opts.rooms.len() == 1 {
            channel.push_str(&opts.rooms[0]);
            channel.push('#');
        }
        let mut packet = packet.clone();
        packet.nsp = self.nsp_name.clone();
        self.driver
            .publish(channel, codec::encode_broadcast(&self.uid, &packet, opts));
    }

    fn broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<mpsc::UnboundedReceiver<RemoteAck>>)> {
        let request_id = uid6();
        let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
        let rx = self.requests.start_acks(&request_id, timeout);
        let mut remote = packet.clone();
        remote.id = None;
        remote.nsp = self.nsp_name.clone();
        let msg = Mp::Map(vec![
            (Mp::from("uid"), Mp::from(self.uid.as_str())),
            (Mp::from("requestId"), Mp::from(request_id.as_str())),
            (Mp::from("type"), Mp::from(RequestType::Broadcast.code())),
            (Mp::from("packet"), packet_to_mp(&remote)),
            (Mp::from("opts"), codec::opts_to_mp(opts)),
        ]);
        self.driver.publish(self.request_channel.clone(), encode_mp(&msg));
        let count = self.driver.numsub(&self.request_channel);
        Box::pin(async move { (count_servers(count).await.saturating_sub(1), Some(rx)) })
    }

    fn fetch_sockets(&self, opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        let request_id = uid6();
        let request = json!({"uid": self.uid, "requestId": request_id, "type": RequestType::RemoteFetch.code(), "opts": opts_json(opts)});
        let count = self.driver.numsub(&self.request_channel);
        let (driver, channel) = (self.driver.clone(), self.request_channel.clone());
        let (requests, timeout) = (self.requests.clone(), self.requests_timeout);
        Box::pin(async move {
            let others = count_servers(count).await.saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let rx = requests.start_fetch(&request_id, others, timeout);
            driver.publish(channel, request.to_string().into_bytes());
            rx.await.unwrap_or_default()
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.request(
            RequestType::RemoteJoin,
            json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)}),
        );
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.request(
            RequestType::RemoteLeave,
            json!({"opts": opts_json(opts), "rooms": rooms_json(rooms)}),
        );
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        self.request(
            RequestType::RemoteDisconnect,
            json!({"opts": opts_json(opts), "close": close}),
        );
    }

    fn server_side_emit(&self, args: &[Value]) {
        self.request(RequestType::ServerSideEmit, json!({"data": args}));
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        Box::pin(count_servers(self.driver.numsub(&self.request_channel)))
    }
}
