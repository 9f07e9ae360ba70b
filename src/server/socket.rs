//! A socket: one client's connection to one namespace, with its event handlers, rooms and acks.

use super::ack::{AckReply, AckWaiter};
use super::broadcast::BroadcastOperator;
use super::client::ClientShared;
use super::error::{AckError, EmitError};
use super::handshake::Handshake;
use super::namespace::Namespace;
use super::reason::DisconnectReason;
use super::rooms::{Room, Sid};
use crate::engineio::{Frame, Str, TransportKind};
use crate::socketio::{Packet, PacketType, Parser, packet::RESERVED_EVENTS};
use crate::transport::Pushed;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// An event received from a client.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event name.
    pub name: String,
    /// Arguments after the name (binary attachments appear as placeholders).
    pub args: Vec<Value>,
    /// Binary attachments.
    pub binary: Vec<Bytes>,
}

impl Event {
    /// Deserializes argument `i`.
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Result<T, serde_json::Error> {
        T::deserialize(self.args.get(i).unwrap_or(&Value::Null))
    }
}

/// Handles one event; runs on the connection's task, in arrival order.
pub type EventHandler = Arc<dyn Fn(&Socket, Event, Option<AckSender>) + Send + Sync>;
type DisconnectHandler = Box<dyn FnOnce(&Socket, DisconnectReason) + Send>;

/// Answers a client's ack request (the callback passed as the last argument of `emit`).
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Acks with these arguments.
    pub fn send_args(self, args: Vec<Value>, binary: Vec<Bytes>) -> Result<(), EmitError> {
        let packet = Packet::ack(self.socket.nsp().name(), self.id, args).with_attachments(binary);
        self.socket.send_packet(&packet, false)
    }

    /// Acks with one argument.
    pub fn send(self, data: impl Serialize) -> Result<(), EmitError> {
        let v = serde_json::to_value(data).map_err(|e| EmitError::Serialize(e.to_string()))?;
        self.send_args(vec![v], Vec::new())
    }

    /// The ack id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// A connected socket. Cheap to clone.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.id)
            .field("nsp", &self.0.nsp.name())
            .finish()
    }
}

pub(crate) struct SocketInner {
    pub(crate) id: Sid,
    pub(crate) nsp: Namespace,
    pub(crate) client: Arc<ClientShared>,
    pub(crate) handshake: Handshake,
    /// By event name; a short list (a socket has a handful) found by a linear scan, with no
    /// allocation for `&'static str` names.
    handlers: RwLock<Vec<(Cow<'static, str>, EventHandler)>>,
    on_disconnecting: Mutex<Vec<DisconnectHandler>>,
    on_disconnect: Mutex<Vec<DisconnectHandler>>,
    acks: Mutex<HashMap<u64, AckWaiter>>,
    connected: AtomicBool,
    data: Mutex<Value>,
    /// Private session id when connection state recovery is on (never logged).
    pid: Option<Arc<str>>,
    /// Whether this socket was restored from a previous session.
    recovered: bool,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

/// Encodes a packet once into the frames of one Engine.IO message sequence.
pub fn encode_frames(packet: &Packet) -> Vec<Frame> {
    let mut text = String::with_capacity(64);
    text.push('4');
    packet.encode_text_into(&mut text);
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(Str::from(text)));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}

/// Encodes a packet once for `parser`: the default parser's frames, or one msgpack binary message.
pub fn encode_with(parser: Parser, packet: &Packet) -> Vec<Frame> {
    match parser {
        Parser::Default => encode_frames(packet),
        Parser::Msgpack => vec![Frame::Binary(Bytes::from(crate::socketio::msgpack::encode(packet)))],
    }
}

/// Builds an EVENT packet, refusing reserved names.
pub(crate) fn event_packet(nsp: &str, event: &str, args: Vec<Value>, binary: Vec<Bytes>) -> Result<Packet, EmitError> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(EmitError::Reserved(event.to_owned()));
    }
    Ok(Packet::event(nsp, event, args).with_attachments(binary))
}

pub(crate) fn to_value(data: impl Serialize) -> Result<Value, EmitError> {
    serde_json::to_value(data).map_err(|e| EmitError::Serialize(e.to_string()))
}

impl Socket {
    pub(crate) fn new(
        id: Sid,
        nsp: Namespace,
        client: Arc<ClientShared>,
        handshake: Handshake,
        pid: Option<Arc<str>>,
        recovered: bool,
    ) -> Socket {
        Socket(Arc::new(SocketInner {
            id,
            nsp,
            client,
            handshake,
            handlers: RwLock::default(),
            on_disconnecting: Mutex::default(),
            on_disconnect: Mutex::default(),
            acks: Mutex::default(),
            connected: AtomicBool::new(false),
            data: Mutex::new(Value::Null),
            pid,
            recovered,
        }))
    }

    /// Whether the connection state was recovered after a temporary disconnection: same id,
    /// rooms and `data`, and the missed packets were sent before the CONNECT reply.
    pub fn recovered(&self) -> bool {
        self.0.recovered
    }

    /// The private session id, when recovery is on (never log it).
    pub(crate) fn pid(&self) -> Option<&Arc<str>> {
        self.0.pid.as_ref()
    }

    /// The recoverable state of this socket, when recovery is on.
    pub(crate) fn session(&self) -> Option<crate::adapter::Session> {
        let pid = self.0.pid.as_ref()?;
        Some(crate::adapter::Session {
            sid: self.0.id.to_string(),
            pid: pid.to_string(),
            rooms: self.rooms(),
            data: self.data(),
        })
    }

    /// Puts back a restored session's rooms and `data` (before the CONNECT reply). Returns the
    /// rooms joined, which the caller reports to the observer once it holds no lock.
    pub(crate) fn restore_state(&self, session: &crate::adapter::Session) -> Vec<Room> {
        *lock(&self.0.data) = session.data.clone();
        self.nsp()
            .join_rooms_quiet(&self.0.id, session.rooms.iter().map(|r| Room::from(r.as_str())))
    }

    /// Tells a recovering adapter that this socket's session changed (write-through stores).
    pub(crate) fn persist(&self, event: crate::adapter::SessionEvent) {
        if let Some(session) = self.session() {
            self.nsp().adapter().persist_session(session, event);
        }
    }

    /// Resolves once the session writes queued so far (this socket's changes among them) were
    /// attempted, best effort (see [`crate::adapter::Adapter::sessions_written`]).
    pub fn sessions_written(&self) -> futures_util::future::BoxFuture<'static, bool> {
        self.nsp().adapter().sessions_written()
    }

    /// The socket id (what the client sees as `socket.id`).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The socket's namespace.
    pub fn nsp(&self) -> &Namespace {
        &self.0.nsp
    }

    /// The handshake details.
    pub fn handshake(&self) -> &Handshake {
        &self.0.handshake
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// The underlying Engine.IO transport.
    pub fn transport(&self) -> TransportKind {
        self.0.client.conn.transport()
    }

    /// The Engine.IO session id.
    pub fn conn_id(&self) -> &str {
        self.0.client.conn.sid()
    }

    /// `socket.data`: arbitrary JSON shared with `fetch_sockets` across the cluster.
    pub fn data(&self) -> Value {
        lock(&self.0.data).clone()
    }

    /// Sets `socket.data`.
    pub fn set_data(&self, data: Value) {
        *lock(&self.0.data) = data;
        if self.connected() {
            self.persist(crate::adapter::SessionEvent::Changed);
        }
    }

    /// Registers the handler of `event` (replacing an earlier one).
    pub fn on(
        &self,
        event: impl Into<Cow<'static, str>>,
        handler: impl Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    ) {
        let event = event.into();
        let mut list = self.0.handlers.write();
        match list.iter_mut().find(|(name, _)| *name == event) {
            Some(entry) => entry.1 = Arc::new(handler),
            None => list.push((event, Arc::new(handler))),
        }
    }

    /// Registers a handler whose first argument is deserialized as `T`. A payload that does not
    /// deserialize is passed to `on_error` with the serde error instead.
    pub fn on_typed<T: DeserializeOwned>(
        &self,
        event: impl Into<Cow<'static, str>>,
        handler: impl Fn(&Socket, T, Option<AckSender>) + Send + Sync + 'static,
        on_error: impl Fn(&Socket, serde_json::Error, Option<AckSender>) + Send + Sync + 'static,
    ) {
        self.on(event, move |s, ev, ack| match ev.arg::<T>(0) {
            Ok(v) => handler(s, v, ack),
            Err(e) => on_error(s, e, ack),
        });
    }

    /// Runs `f` when the socket starts disconnecting (its rooms are still intact).
    pub fn on_disconnecting(&self, f: impl FnOnce(&Socket, DisconnectReason) + Send + 'static) {
        lock(&self.0.on_disconnecting).push(Box::new(f));
    }

    /// Runs `f` once the socket has disconnected.
    pub fn on_disconnect(&self, f: impl FnOnce(&Socket, DisconnectReason) + Send + 'static) {
        lock(&self.0.on_disconnect).push(Box::new(f));
    }

    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        crate::metrics::inc(&crate::metrics::METRICS.packets_out);
        let frames = encode_with(self.0.nsp.parser(), packet);
        let pushed = self.0.client.conn.send(&frames, volatile);
        if let Some(o) = self.nsp().observer()
            && pushed == Pushed::Queued
        {
            o.packets_out(1, frames.iter().map(Frame::len).sum());
            if o.wants_events() && matches!(packet.ty, PacketType::Event | PacketType::BinaryEvent) {
                o.event_sent(self.nsp().name(), &self.0.id, packet);
            }
        }
        match pushed {
            Pushed::Closed | Pushed::Overflow => Err(EmitError::Disconnected),
            Pushed::Queued | Pushed::DroppedVolatile => Ok(()),
        }
    }

    /// Emits `event` with one argument to this client.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.emit_args(event, vec![to_value(data)?], Vec::new())
    }

    /// Emits `event` with any number of arguments and binary attachments (referenced by
    /// [`crate::socketio::placeholder`]s in `args`).
    pub fn emit_args(&self, event: &str, args: Vec<Value>, binary: Vec<Bytes>) -> Result<(), EmitError> {
        let packet = event_packet(self.nsp().name(), event, args, binary)?;
        let adapter = self.nsp().adapter();
        if adapter.recovery() {
            // As Node: through the adapter to the socket's own room, so the packet gets an offset
            // and is replayed if the client recovers. The delivery goes on if the future is dropped.
            // A closed or overflowing connection still logs it (a recovering client gets it) but
            // the caller hears it did not reach the live connection, as without recovery.
            let down =
                |s: &Socket| !s.connected() || s.0.client.conn.is_closed() || s.0.client.conn.outbox().overflowed();
            let was_down = down(self);
            drop(adapter.deliver(self.nsp(), packet, &self.own_room()));
            if was_down || down(self) {
                return Err(EmitError::Disconnected);
            }
            return Ok(());
        }
        self.send_packet(&packet, false)
    }

    /// Options targeting this socket's own room.
    fn own_room(&self) -> crate::adapter::BroadcastOptions {
        crate::adapter::BroadcastOptions {
            rooms: vec![self.0.id.clone()],
            ..Default::default()
        }
    }

    /// Emits `event` and drops it if the client is not ready to receive it (`socket.volatile`).
    pub fn emit_volatile(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        let packet = event_packet(self.nsp().name(), event, vec![to_value(data)?], Vec::new())?;
        self.send_packet(&packet, true)
    }

    /// Emits `event` with one argument and waits up to `timeout` for the client's ack.
    pub fn emit_with_ack(
        &self,
        event: &str,
        data: impl Serialize,
        timeout: Duration,
    ) -> impl Future<Output = Result<AckReply, AckError>> + Send + 'static {
        let (args, sent) = match to_value(data) {
            Ok(v) => (vec![v], Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        let fut = sent.map(|()| self.emit_args_with_ack(event, args, Vec::new(), timeout));
        async move { fut?.await }
    }

    /// Emits `event` with any number of arguments (no argument at all, too) and binary
    /// attachments, and waits up to `timeout` for the client's ack.
    pub fn emit_args_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        binary: Vec<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<AckReply, AckError>> + Send + 'static {
        let sent = self.send_with_ack(event, args, binary);
        let socket = self.clone();
        async move {
            let (id, rx) = sent?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => {
                    lock(&socket.0.acks).remove(&id);
                    Err(AckError::Timeout(Vec::new()))
                }
            }
        }
    }

    fn send_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        binary: Vec<Bytes>,
    ) -> Result<(u64, oneshot::Receiver<AckReply>), EmitError> {
        let id = self.nsp().next_ack_id();
        let packet = event_packet(self.nsp().name(), event, args, binary)?.with_id(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut acks = lock(&self.0.acks);
            if acks.len() >= self.0.client.max_pending_acks {
                crate::metrics::inc(&crate::metrics::METRICS.limit_acks);
                return Err(EmitError::Limit("too many pending acks"));
            }
            acks.insert(id, AckWaiter::One(tx));
        }
        if let Err(e) = self.send_packet(&packet, false) {
            lock(&self.0.acks).remove(&id);
            return Err(e);
        }
        Ok((id, rx))
    }

    pub(crate) fn register_ack(&self, id: u64, waiter: AckWaiter) {
        lock(&self.0.acks).insert(id, waiter);
    }

    pub(crate) fn forget_ack(&self, id: u64) {
        lock(&self.0.acks).remove(&id);
    }

    /// Joins a room. Refused (logged and counted) past `max_rooms_per_socket`.
    pub fn join(&self, room: &str) -> Result<(), EmitError> {
        self.join_all([room])
    }

    /// Joins several rooms; all or none.
    pub fn join_all<'a>(&self, rooms: impl IntoIterator<Item = &'a str>) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let rooms: Vec<Room> = rooms.into_iter().map(Room::from).collect();
        let max = self.0.client.max_rooms;
        // One read of the index for both counts, released before `join_rooms` takes the write lock.
        let (current, new) = {
            let idx = self.nsp().rooms_read();
            let joined = idx.rooms_of(&self.0.id);
            let new = rooms.iter().filter(|r| !joined.is_some_and(|s| s.contains(*r))).count();
            (joined.map_or(0, |r| r.len()), new)
        };
        if current + new > max {
            crate::metrics::inc(&crate::metrics::METRICS.limit_rooms);
            tracing::info!(sid = %self.0.id, max, "room limit reached; join refused");
            return Err(EmitError::Limit("too many rooms"));
        }
        self.nsp().join_rooms(&self.0.id, rooms);
        self.persist(crate::adapter::SessionEvent::Changed);
        Ok(())
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.nsp().leave_room(&self.0.id, room);
        self.persist(crate::adapter::SessionEvent::Changed);
    }

    /// The rooms this socket is in (always including its own id).
    pub fn rooms(&self) -> Vec<String> {
        let idx = self.nsp().rooms_read();
        let mut rooms: Vec<String> = idx
            .rooms_of(&self.0.id)
            .map(|r| r.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.nsp().clone()).except(self.id())
    }

    /// Targets a room, excluding this socket (`socket.to(room)`).
    pub fn to(&self, room: &str) -> BroadcastOperator {
        self.operator().to(room)
    }

    /// Excludes a room, and this socket (`socket.except(room)`).
    pub fn except(&self, room: &str) -> BroadcastOperator {
        self.operator().except(room)
    }

    /// Targets every socket of the namespace but this one (`socket.broadcast`).
    pub fn broadcast(&self) -> BroadcastOperator {
        self.operator()
    }

    /// Like [`Socket::broadcast`], on this server only (`socket.local`).
    pub fn local(&self) -> BroadcastOperator {
        self.operator().local()
    }

    /// Disconnects this socket (`socket.disconnect()`), or the whole connection with every
    /// namespace on it (`socket.disconnect(true)`).
    pub fn disconnect(&self, close: bool) {
        if close {
            self.0.client.disconnect_all();
            return;
        }
        if !self.connected() {
            return;
        }
        let _ = self.send_packet(&Packet::disconnect(self.nsp().name()), false);
        self.on_close(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Handles a packet from the client for this namespace.
    pub(crate) fn on_packet(&self, packet: Packet) {
        match packet.ty {
            PacketType::Event | PacketType::BinaryEvent => {
                let Some(name) = packet.event_name().map(str::to_owned) else {
                    return;
                };
                let handler = {
                    let list = self.0.handlers.read();
                    list.iter().find(|(n, _)| *n == name).map(|(_, h)| h.clone())
                };
                if let Some(o) = self.nsp().observer()
                    && o.wants_events()
                {
                    o.event_received(
                        self,
                        packet
                            .data
                            .as_ref()
                            .and_then(Value::as_array)
                            .map_or(&[], Vec::as_slice),
                    );
                }
                let args = packet.args().to_vec();
                let ack = packet.id.map(|id| AckSender {
                    socket: self.clone(),
                    id,
                });
                match handler {
                    Some(h) => h(
                        self,
                        Event {
                            name,
                            args,
                            binary: packet.attachments,
                        },
                        ack,
                    ),
                    None => tracing::trace!(sid = %self.0.id, event = %name, "no handler"),
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else { return };
                let waiter = lock(&self.0.acks).remove(&id);
                match waiter {
                    Some(w) => w.complete(AckReply {
                        args: packet.args().to_vec(),
                        binary: packet.attachments,
                    }),
                    None => tracing::debug!(sid = %self.0.id, id, "ack for an unknown id ignored"),
                }
            }
            PacketType::Disconnect => self.on_close(DisconnectReason::ClientNamespaceDisconnect),
            PacketType::Connect | PacketType::ConnectError => {}
        }
    }

    pub(crate) fn mark_connected(&self) {
        self.0.connected.store(true, Ordering::Release);
    }

    /// Tears the socket down (Node's `_onclose`): `disconnecting`, leave rooms, `disconnect`.
    pub(crate) fn on_close(&self, reason: DisconnectReason) {
        if !self.0.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let disconnecting = std::mem::take(&mut *lock(&self.0.on_disconnecting));
        for f in disconnecting {
            f(self, reason);
        }
        if reason.is_recoverable() {
            // Rooms are still intact here, as in Node's `_onclose`.
            self.persist(crate::adapter::SessionEvent::Disconnected);
        } else {
            self.persist(crate::adapter::SessionEvent::Ended);
        }
        self.nsp().remove_socket(&self.0.id);
        self.0.client.remove(self.nsp().name(), &self.0.id);
        lock(&self.0.acks).clear();
        self.0.handlers.write().clear();
        let disconnect = std::mem::take(&mut *lock(&self.0.on_disconnect));
        for f in disconnect {
            f(self, reason);
        }
        if let Some(o) = self.nsp().observer() {
            o.socket_disconnected(self, reason);
        }
        tracing::debug!(sid = %self.0.id, nsp = %self.nsp().name(), %reason, "socket disconnected");
    }
}
