//! Namespaces: their sockets, room index, middlewares and connection handlers, local delivery,
//! and dynamic (parent) namespaces that create children on demand.

use super::broadcast::BroadcastOperator;
use super::error::{ConnectError, EmitError};
use super::rooms::{Room, RoomIndex, Sid, SidHash};
use super::socket::{Socket, encode_with};
use crate::adapter::{Adapter, BroadcastOptions};
use crate::engineio::Frame;
use crate::socketio::{Packet, Parser};
use crate::transport::Pushed;
use crate::transport::outbox::Outbox;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Decides whether a socket may connect; `Err` is sent to the client as CONNECT_ERROR.
pub type Middleware = Arc<dyn Fn(&Socket) -> Result<(), ConnectError> + Send + Sync>;
/// An asynchronous middleware (I/O such as a session lookup): runs after the synchronous ones,
/// with the CONNECT reply held until it answers.
pub type AsyncMiddleware =
    Arc<dyn Fn(Socket) -> crate::adapter::BoxFuture<'static, Result<(), ConnectError>> + Send + Sync>;
/// Runs for each new socket (Node's `connection` event).
pub type ConnectionHandler = Arc<dyn Fn(&Socket) + Send + Sync>;

/// Middlewares and connection handlers, shared by a parent namespace with its children.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) middlewares: RwLock<Vec<Middleware>>,
    pub(crate) async_middlewares: RwLock<Vec<AsyncMiddleware>>,
    pub(crate) on_connection: RwLock<Vec<ConnectionHandler>>,
}

/// What a room holds for each member: the socket, and its connection's outbound queue, so a
/// broadcast reaches the queue straight from the room's member array.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    socket: Socket,
    outbox: Arc<Outbox>,
}

/// A namespace. Cheap to clone.
#[derive(Clone)]
pub struct Namespace(Arc<NamespaceInner>);

pub(crate) struct NamespaceInner {
    name: Arc<str>,
    sockets: RwLock<HashMap<Sid, Socket, SidHash>>,
    /// Private session ids of connected sockets (connection state recovery), to their socket ids.
    pids: RwLock<HashMap<Arc<str>, Sid>>,
    rooms: RwLock<RoomIndex<Member>>,
    hooks: Arc<Hooks>,
    adapter: Arc<dyn Adapter>,
    /// The server's wire format, for encoding broadcasts once.
    parser: Parser,
    ack_ids: AtomicU64,
    server_events: RwLock<HashMap<String, ServerEventHandler>>,
    observer: super::observer::ObserverSlot,
}

/// Handles a `server_side_emit` event from another server.
pub type ServerEventHandler = Arc<dyn Fn(&[Value]) + Send + Sync>;

/// A namespace handle that does not keep it alive (held by its adapter).
#[derive(Clone)]
pub struct WeakNamespace(std::sync::Weak<NamespaceInner>);

impl WeakNamespace {
    /// The namespace, if it still exists.
    pub fn upgrade(&self) -> Option<Namespace> {
        self.0.upgrade().map(Namespace)
    }
}

/// Delivery counts of one local broadcast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Sockets the packet was queued for.
    pub queued: usize,
    /// Volatile packets dropped.
    pub dropped: usize,
}

impl Namespace {
    pub(crate) fn new(name: &str, adapter: Arc<dyn Adapter>, hooks: Arc<Hooks>, parser: Parser) -> Namespace {
        Namespace(Arc::new(NamespaceInner {
            name: Arc::from(name),
            sockets: RwLock::default(),
            pids: RwLock::default(),
            rooms: RwLock::default(),
            hooks,
            adapter,
            parser,
            ack_ids: AtomicU64::new(0),
            server_events: RwLock::default(),
            observer: super::observer::ObserverSlot::new(),
        }))
    }

    pub(crate) fn set_observer(&self, observer: Arc<dyn super::observer::ServerObserver>) {
        let _ = self.0.observer.set(observer);
    }

    /// The server's observer (the Admin UI), if one is installed.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn super::observer::ServerObserver>> {
        self.0.observer.get()
    }

    /// The observer, if it wants per-socket events (room changes included) right now.
    fn event_observer(&self) -> Option<&Arc<dyn super::observer::ServerObserver>> {
        self.observer().filter(|o| o.wants_events())
    }

    /// The Socket.IO parser its packets are encoded with.
    pub fn parser(&self) -> Parser {
        self.0.parser
    }

    /// The name, e.g. `/` or `/chat`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The namespace's adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.0.adapter
    }

    /// Adds a middleware (Node's `nsp.use`), run in order for each connecting socket.
    pub fn use_middleware(&self, f: impl Fn(&Socket) -> Result<(), ConnectError> + Send + Sync + 'static) {
        self.0.hooks.middlewares.write().push(Arc::new(f));
    }

    /// Adds an asynchronous middleware (run after the synchronous ones, in order): for checks that
    /// wait on I/O, which must never block a runtime worker.
    pub fn use_async_middleware(
        &self,
        f: impl Fn(Socket) -> crate::adapter::BoxFuture<'static, Result<(), ConnectError>> + Send + Sync + 'static,
    ) {
        self.0.hooks.async_middlewares.write().push(Arc::new(f));
    }

    /// Adds a connection handler (Node's `nsp.on("connection")`).
    pub fn on_connection(&self, f: impl Fn(&Socket) + Send + Sync + 'static) {
        self.0.hooks.on_connection.write().push(Arc::new(f));
    }

    pub(crate) fn hooks(&self) -> &Hooks {
        &self.0.hooks
    }

    /// The next outgoing ack id (one counter per namespace, as in Node).
    pub fn next_ack_id(&self) -> u64 {
        self.0.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn rooms_read(&self) -> RwLockReadGuard<'_, RoomIndex<Member>> {
        self.0.rooms.read()
    }

    pub(crate) fn rooms_write(&self) -> RwLockWriteGuard<'_, RoomIndex<Member>> {
        self.0.rooms.write()
    }

    fn sockets_read(&self) -> RwLockReadGuard<'_, HashMap<Sid, Socket, SidHash>> {
        self.0.sockets.read()
    }

    /// Adds `socket` and its own room without telling the observer: returns the rooms joined, for
    /// [`Namespace::report_joined`] once no lock (delivery fence) is held.
    pub(crate) fn add_socket_quiet(&self, socket: &Socket) -> Vec<Room> {
        // The socket's own Arc, so lookups from the room index compare pointers, not strings.
        let id: Sid = socket.0.id.clone();
        self.0.sockets.write().insert(id.clone(), socket.clone());
        if let Some(pid) = socket.pid() {
            self.pids_write().insert(pid.clone(), id.clone());
        }
        self.join_rooms_quiet(&id, [id.clone()])
    }

    /// Tells the observer (if it wants events) that socket `id` joined `rooms`. Never call it
    /// under a lock: the observer emits to the admin namespace.
    pub(crate) fn report_joined(&self, id: &Sid, rooms: &[Room]) {
        if let Some(observer) = self.event_observer() {
            for room in rooms {
                observer.room_joined(self.name(), room, id);
            }
        }
    }

    fn pids_write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Sid>> {
        self.0.pids.write()
    }

    /// The connected socket of this server holding private session id `pid`.
    pub(crate) fn socket_by_pid(&self, pid: &str) -> Option<Socket> {
        let id = self.0.pids.read().get(pid).cloned()?;
        self.socket(&id)
    }

    pub(crate) fn remove_socket(&self, id: &Sid) {
        let observer = self.event_observer();
        let (deleted, left) = {
            let mut rooms = self.rooms_write();
            let left: Vec<Room> = match observer {
                Some(_) => rooms
                    .rooms_of(id)
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            (rooms.del_all(id), left)
        };
        if let Some(o) = observer {
            for room in &left {
                o.room_left(self.name(), room, id);
            }
        }
        let removed = self.0.sockets.write().remove(id);
        if let Some(pid) = removed.as_ref().and_then(Socket::pid) {
            let mut pids = self.pids_write();
            if pids.get(pid).is_some_and(|s| s == id) {
                pids.remove(pid);
            }
        }
        for room in &deleted {
            self.0.adapter.on_room_deleted(room);
        }
    }

    /// Adds socket `id` (connected here) to `rooms`, telling the adapter about rooms this creates.
    pub(crate) fn join_rooms(&self, id: &Sid, rooms: impl IntoIterator<Item = Room>) {
        let joined = self.join_rooms_quiet(id, rooms);
        self.report_joined(id, &joined);
    }

    /// [`Namespace::join_rooms`] without telling the observer: returns the rooms the socket was
    /// not in yet (computed only when an observer wants events), for [`Namespace::report_joined`].
    pub(crate) fn join_rooms_quiet(&self, id: &Sid, rooms: impl IntoIterator<Item = Room>) -> Vec<Room> {
        let Some(socket) = self.sockets_read().get(id).cloned() else {
            return Vec::new();
        };
        let member = Member {
            outbox: socket.0.client.conn.outbox().clone(),
            socket,
        };
        // The socket's own Arc, so member lookups compare pointers.
        let id = member.socket.0.id.clone();
        if self.event_observer().is_none() {
            let created = self.rooms_write().add_all(&id, &member, rooms);
            for room in &created {
                self.0.adapter.on_room_created(room);
            }
            return Vec::new();
        }
        // Observed: report the rooms the socket was not in yet (Node's `join-room`), once the
        // index lock is released.
        let (created, joined) = {
            let mut index = self.rooms_write();
            let rooms: Vec<Room> = rooms.into_iter().collect();
            let before = index.rooms_of(&id);
            let joined: Vec<Room> = rooms
                .iter()
                .filter(|r| !before.is_some_and(|b| b.contains(*r)))
                .cloned()
                .collect();
            (index.add_all(&id, &member, rooms), joined)
        };
        for room in &created {
            self.0.adapter.on_room_created(room);
        }
        joined
    }

    /// Removes socket `id` from `room`, telling the adapter if that deletes it.
    pub(crate) fn leave_room(&self, id: &Sid, room: &str) {
        let Some(observer) = self.event_observer() else {
            let deleted = self.rooms_write().del(id, room);
            if let Some(room) = deleted {
                self.0.adapter.on_room_deleted(&room);
            }
            return;
        };
        let (deleted, was_in) = {
            let mut index = self.rooms_write();
            let was_in = index.rooms_of(id).is_some_and(|r| r.contains(room));
            (index.del(id, room), was_in)
        };
        if let Some(room) = deleted {
            self.0.adapter.on_room_deleted(&room);
        }
        if was_in {
            observer.room_left(self.name(), room, id);
        }
    }

    /// Whether `room` has members on this server.
    pub fn has_local_room(&self, room: &str) -> bool {
        self.rooms_read().has_room(room)
    }

    /// Whether `room` is a socket's own room (its id) on this server.
    pub fn is_local_socket_room(&self, room: &str) -> bool {
        self.rooms_read().is_socket(room)
    }

    /// The rooms with members on this server.
    pub fn local_rooms(&self) -> Vec<String> {
        self.rooms_read().all_rooms().map(|r| r.to_string()).collect()
    }

    /// A handle that does not keep the namespace alive.
    pub fn downgrade(&self) -> WeakNamespace {
        WeakNamespace(Arc::downgrade(&self.0))
    }

    /// Registers a listener for `server_side_emit` events named `event` from other servers.
    pub fn on_server_event(&self, event: &str, f: impl Fn(&[Value]) + Send + Sync + 'static) {
        self.0.server_events.write().insert(event.to_owned(), Arc::new(f));
    }

    /// Delivers a `server_side_emit` from another server (`[event, ...args]`) to its listener.
    pub fn dispatch_server_event(&self, data: &[Value]) {
        let Some(event) = data.first().and_then(Value::as_str) else {
            return;
        };
        let handler = self.0.server_events.read().get(event).cloned();
        match handler {
            Some(h) => h(&data[1..]),
            None => tracing::debug!(nsp = %self.name(), event, "server-side event without listener"),
        }
    }

    /// A connected socket of this server by id.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        self.sockets_read().get(id).cloned()
    }

    /// This server's connected sockets.
    pub fn local_sockets(&self) -> Vec<Socket> {
        self.sockets_read().values().cloned().collect()
    }

    /// How many sockets are connected to this namespace on this server.
    pub fn local_len(&self) -> usize {
        self.sockets_read().len()
    }

    /// This server's sockets matching `opts`, collected under the rooms read lock and returned
    /// after it is released.
    pub(crate) fn local_targets(&self, opts: &BroadcastOptions) -> Vec<Socket> {
        let mut targets = Vec::new();
        self.rooms_read()
            .for_each_target(&opts.rooms, &opts.except, |_, m| targets.push(m.socket.clone()));
        targets
    }

    /// Calls `f` for each local socket matching `opts`. The sockets are collected first and `f`
    /// runs without the rooms lock, so it may call back into anything that takes it
    /// (`Socket::rooms`, `join`, `leave`, `disconnect`): a second read of std's `RwLock` while a
    /// writer waits would deadlock.
    pub(crate) fn for_each_local(&self, opts: &BroadcastOptions, mut f: impl FnMut(&Socket)) {
        for socket in self.local_targets(opts) {
            f(&socket);
        }
    }

    /// Delivers a packet to this server's matching sockets, encoded once (Node's
    /// `adapter.broadcast` local part).
    pub fn local_broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Delivered {
        self.local_broadcast_frames(&encode_with(self.0.parser, packet), opts, Some(packet))
    }

    /// Like [`Namespace::local_broadcast`], for a packet already encoded into its frames; `packet`
    /// (the decoded form, when the caller has it) is only for the observer's `event_sent`.
    pub fn local_broadcast_frames(
        &self,
        frames: &[Frame],
        opts: &BroadcastOptions,
        packet: Option<&Packet>,
    ) -> Delivered {
        let (d, sent_to) = self.push_frames(frames, opts);
        self.report_sent(frames, d, &sent_to, packet);
        d
    }

    /// The queue pushes of [`Namespace::local_broadcast_frames`], without telling the observer
    /// (so a caller holding a lock reports later): the counts and, when the observer wants
    /// events, the sockets it was queued for.
    pub(crate) fn push_frames(&self, frames: &[Frame], opts: &BroadcastOptions) -> (Delivered, Vec<Sid>) {
        let mut d = Delivered::default();
        // Targets for the observer's `event_sent`, collected only when it wants them.
        let want = self.event_observer().is_some();
        let mut sent_to = Vec::new();
        let rooms = self.rooms_read();
        rooms.for_each_target(&opts.rooms, &opts.except, |sid, m| {
            match m.outbox.push(frames, opts.flags.volatile) {
                Pushed::Queued => {
                    d.queued += 1;
                    if want {
                        sent_to.push(sid.clone());
                    }
                }
                Pushed::DroppedVolatile => d.dropped += 1,
                // An overflowing connection is being closed: its client resyncs on reconnect.
                Pushed::Closed | Pushed::Overflow => {}
            }
        });
        drop(rooms);
        let m = &crate::metrics::METRICS;
        crate::metrics::inc(&m.broadcasts);
        crate::metrics::add(&m.deliveries, d.queued as u64);
        crate::metrics::add(&m.packets_out, d.queued as u64);
        crate::metrics::add(&m.dropped_volatile, d.dropped as u64);
        (d, sent_to)
    }

    /// The observer part of [`Namespace::local_broadcast_frames`]: outgoing counts, and
    /// `event_sent` for each of `sent_to` when `packet` is given. Never call it under a lock.
    pub(crate) fn report_sent(&self, frames: &[Frame], d: Delivered, sent_to: &[Sid], packet: Option<&Packet>) {
        let Some(o) = self.observer() else { return };
        let bytes: usize = frames.iter().map(crate::engineio::Frame::len).sum();
        o.packets_out(d.queued, bytes.saturating_mul(d.queued));
        if let Some(packet) = packet.filter(|_| o.wants_events()) {
            for sid in sent_to {
                o.event_sent(self.name(), sid, packet);
            }
        }
    }

    /// Sends `packet` (which carries the ack id) to this server's matching sockets, each registered
    /// to report its ack (first argument) on `acks`. Returns the sockets it was queued for.
    pub fn local_broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
        acks: &tokio::sync::mpsc::UnboundedSender<Value>,
    ) -> Vec<Socket> {
        let Some(id) = packet.id else { return Vec::new() };
        let frames = encode_with(self.0.parser, packet);
        let mut targets = Vec::new();
        self.for_each_local(opts, |s| {
            s.register_ack(id, super::ack::AckWaiter::Many(acks.clone()));
            if s.0.client.conn.send(&frames, opts.flags.volatile) == Pushed::Queued {
                targets.push(s.clone());
            } else {
                s.forget_ack(id);
            }
        });
        crate::metrics::inc(&crate::metrics::METRICS.broadcasts);
        crate::metrics::add(&crate::metrics::METRICS.deliveries, targets.len() as u64);
        targets
    }

    /// Makes this server's matching sockets join `rooms`.
    pub fn local_add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for s in self.local_targets(opts) {
            self.join_rooms(&s.0.id, rooms.iter().cloned());
            s.persist(crate::adapter::SessionEvent::Changed);
        }
    }

    /// Makes this server's matching sockets leave `rooms`.
    pub fn local_del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for s in self.local_targets(opts) {
            for room in rooms {
                self.leave_room(&s.0.id, room);
            }
            s.persist(crate::adapter::SessionEvent::Changed);
        }
    }

    /// Disconnects this server's matching sockets.
    pub fn local_disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        for s in self.local_targets(opts) {
            s.disconnect(close);
        }
    }

    /// A broadcast operator over the whole namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// Targets a room.
    pub fn to(&self, room: &str) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Excludes a room.
    pub fn except(&self, room: &str) -> BroadcastOperator {
        self.broadcast().except(room)
    }

    /// Emits to every socket of the namespace, cluster-wide.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.broadcast().emit(event, data)
    }

    /// Emits to the other servers' `server_side_emit` listeners.
    pub fn server_side_emit(&self, args: &[Value]) {
        self.0.adapter.server_side_emit(args);
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("name", &self.0.name).finish()
    }
}

/// Decides whether a dynamic namespace name (with the client's auth) is allowed.
pub type NamespaceMatcher = Arc<dyn Fn(&str, &Value) -> bool + Send + Sync>;

/// A dynamic namespace (Node's `io.of(regex | fn)`): children are created on first connection and
/// share its middlewares and connection handlers.
#[derive(Clone)]
pub struct ParentNamespace {
    pub(crate) matcher: NamespaceMatcher,
    pub(crate) hooks: Arc<Hooks>,
}

impl ParentNamespace {
    /// Adds a middleware for every child namespace.
    pub fn use_middleware(&self, f: impl Fn(&Socket) -> Result<(), ConnectError> + Send + Sync + 'static) {
        self.hooks.middlewares.write().push(Arc::new(f));
    }

    /// Adds a connection handler for every child namespace.
    pub fn on_connection(&self, f: impl Fn(&Socket) + Send + Sync + 'static) {
        self.hooks.on_connection.write().push(Arc::new(f));
    }
}
