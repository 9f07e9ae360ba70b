//! The adapter boundary: what a namespace asks of the other servers of a cluster.
//!
//! Local work (the room index, local delivery) is always done by the namespace itself; an
//! [`Adapter`] only carries operations to other servers. The in-memory default,
//! [`MemoryAdapter`], is a single server: every remote operation finds nothing.
//!
//! Layers, bottom up: [`types`] (rooms and broadcast options, shared with the server), [`pubsub`]
//! (a pub/sub driver trait with an in-memory bus for tests), [`cluster`] (the request tables,
//! codec and `ClusterAdapter` message handling every cluster adapter shares), [`redis`] (the
//! Redis driver and the classic and sharded adapters built on the two layers below).
//!
//! With connection state recovery, an adapter also owns delivery ([`Adapter::deliver`] assigns
//! each packet its offset) and the sessions of disconnected sockets ([`Adapter::persist_session`],
//! [`Adapter::restore_session`]); [`SessionAwareAdapter`] does it on one server.

pub mod cluster;
pub mod pubsub;
pub mod redis;
pub mod session;
pub mod streams;
pub mod types;

pub use session::{SessionAwareAdapter, SessionAwareFactory};
pub use types::{BroadcastFlags, BroadcastOptions, RemoteAck, Room, SocketInfo};

use crate::engineio::Frame;
use crate::socketio::Packet;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A socket's recoverable state (Node's `Session`). Its `Debug` hides the pid.
#[derive(Clone, Default, PartialEq)]
pub struct Session {
    /// Socket id, kept across the recovery.
    pub sid: String,
    /// Private session id (120 random bits): a capability, never logged.
    pub pid: String,
    /// Rooms, its own id included.
    pub rooms: Vec<String>,
    /// `socket.data`.
    pub data: Value,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("pid", &"<hidden>")
            .field("rooms", &self.rooms)
            .field("data", &self.data)
            .finish()
    }
}

/// Why [`Adapter::persist_session`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The socket connected (or was restored).
    Connected,
    /// It joined or left a room, or its `data` changed.
    Changed,
    /// It closed for a recoverable reason: keep the session for the recovery window.
    Disconnected,
    /// It closed for good (not a recoverable reason): a write-through store drops the session.
    Ended,
}

/// A restored session and the packets its socket missed, in order, each carrying its offset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// The session.
    pub session: Session,
    /// EVENT packets emitted to its rooms after the client's offset, decoded from a remote store.
    pub missed: Vec<Packet>,
    /// The same, as the frames an in-memory log kept (shared, not copied; sent after `missed`).
    pub missed_frames: Vec<Vec<Frame>>,
    /// Where the restore's read of a remote log ended (a stream entry id), for
    /// [`Adapter::settle_restore`]; `None` for stores that do not need it.
    pub read_to: Option<(u64, u64)>,
}

/// An adapter operation that could not be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The store or bus did not take the packet (e.g. Redis unreachable or erroring).
    #[error("adapter unavailable: {0}")]
    Unavailable(String),
    /// The store may or may not have taken it (e.g. a command sent, then a timeout or a dropped
    /// connection): it may still be delivered.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Whether a packet gets an offset (Node's `addOffsetIfNecessary`): an EVENT without ack id, not
/// volatile.
pub fn needs_offset(packet: &Packet, opts: &BroadcastOptions) -> bool {
    packet.ty == crate::socketio::PacketType::Event && packet.id.is_none() && !opts.flags.volatile
}

/// Appends `offset` as the last argument of an EVENT packet (Node's `packet.data.push(offset)`).
pub fn push_offset(packet: &mut Packet, offset: &str) {
    if let Some(Value::Array(args)) = &mut packet.data {
        args.push(Value::String(offset.to_owned()));
    }
}

/// Cluster operations of one namespace.
pub trait Adapter: Send + Sync + 'static {
    /// Called once the namespace exists, with a handle the adapter may keep to act on it.
    fn init(&self, _nsp: crate::server::namespace::WeakNamespace) {}

    /// A room got its first member on this server.
    fn on_room_created(&self, _room: &Room) {}

    /// A room lost its last member on this server.
    fn on_room_deleted(&self, _room: &Room) {}

    /// Whether other servers can be reached (for `/health`).
    fn is_healthy(&self) -> bool {
        true
    }

    /// Sends a broadcast to the other servers (never called for `local` broadcasts).
    fn broadcast(&self, _packet: &Packet, _opts: &BroadcastOptions) {}

    /// Sends a broadcast expecting acks to the other servers; returns how many servers will
    /// answer and a stream of their counts and acks.
    fn broadcast_with_ack(
        &self,
        _packet: &Packet,
        _opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<tokio::sync::mpsc::UnboundedReceiver<RemoteAck>>)> {
        Box::pin(async { (0, None) })
    }

    /// Sockets matching `opts` on the other servers.
    fn fetch_sockets(&self, _opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        Box::pin(async { Vec::new() })
    }

    /// Makes matching sockets on other servers join `rooms`.
    fn add_sockets(&self, _opts: &BroadcastOptions, _rooms: &[Room]) {}

    /// Makes matching sockets on other servers leave `rooms`.
    fn del_sockets(&self, _opts: &BroadcastOptions, _rooms: &[Room]) {}

    /// Disconnects matching sockets on other servers.
    fn disconnect_sockets(&self, _opts: &BroadcastOptions, _close: bool) {}

    /// Emits an event to the other servers' `serverSideEmit` listeners.
    fn server_side_emit(&self, _args: &[Value]) {}

    /// How many servers share this namespace (including this one).
    fn server_count(&self) -> BoxFuture<'static, usize> {
        Box::pin(async { 1 })
    }

    /// Whether this adapter does connection state recovery (offsets, sessions). When false the
    /// server sends no `pid`, adds no offsets and never calls the methods below.
    fn recovery(&self) -> bool {
        false
    }

    /// Delivers a packet to the whole cluster, local sockets included, when [`Adapter::recovery`]
    /// is on. A recovering adapter assigns the offset ([`needs_offset`], [`push_offset`]) before
    /// any local delivery (a Streams adapter: once `XADD` returned its id) and resolves once the
    /// packet is durable. The work starts when `deliver` is called, not when the future is first
    /// polled, and successive calls are delivered in call order; dropping the future does not
    /// cancel the delivery. The default is the plain path: local broadcast and [`Adapter::broadcast`].
    fn deliver(
        &self,
        nsp: &crate::server::Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        nsp.local_broadcast(&packet, opts);
        if !opts.flags.local {
            self.broadcast(&packet, opts);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    /// A lock every local delivery of [`Adapter::deliver`] takes first. The server holds it from a
    /// synchronous [`Adapter::restore_session`] until the restored socket has joined its rooms and
    /// got its missed packets, so no packet falls between the two (lost) or lands in both
    /// (duplicated). `None` (the default): no such guarantee. Never held while application code runs.
    fn delivery_fence(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        None
    }

    /// Called under [`Adapter::delivery_fence`] once an asynchronous [`Adapter::restore_session`]
    /// answered, just before the restored socket joins its rooms: the adapter trims or completes
    /// the missed packets so that, with what its local deliveries bring after, each arrives once.
    /// `false`: it cannot prove none was lost; the socket then gets a fresh session instead.
    fn settle_restore(&self, _restored: &mut Restored) -> bool {
        true
    }

    /// Records a socket's session (its id, pid, rooms and data). Called on connect and on each
    /// change for a write-through store, and on a recoverable disconnect, after which the session
    /// must stay restorable for the recovery window. Fire and forget: an implementation starts the
    /// write at once, in call order, and logs its failures.
    fn persist_session(&self, _session: Session, _event: SessionEvent) {}

    /// Resolves once the session writes queued so far in this process
    /// ([`Adapter::persist_session`]) were attempted, or a deadline passed: best effort, so that
    /// a join or leave acknowledged after it survives a `kill -9` of the instance right after.
    /// `true` means the last batch of writes succeeded, not that every write did. At once
    /// without a store, or while the store is known unreachable (waiting would not help).
    fn sessions_written(&self) -> BoxFuture<'static, bool> {
        Box::pin(std::future::ready(true))
    }

    /// Takes the session `pid` (single use) if it was persisted in this namespace within the
    /// window and `offset` is still known, with the packets emitted to its rooms after `offset`.
    /// `None` for anything else, including an unreachable store: the client gets a fresh socket.
    fn restore_session(&self, _pid: &str, _offset: &str) -> BoxFuture<'static, Option<Restored>> {
        Box::pin(std::future::ready(None))
    }
}

/// The single-server adapter.
#[derive(Debug, Default)]
pub struct MemoryAdapter;

impl Adapter for MemoryAdapter {}

/// Builds the adapter of each namespace.
pub trait AdapterFactory: Send + Sync + 'static {
    /// The adapter for namespace `nsp`.
    fn create(&self, nsp: &str) -> Arc<dyn Adapter>;
}

impl AdapterFactory for MemoryAdapter {
    fn create(&self, _nsp: &str) -> Arc<dyn Adapter> {
        Arc::new(MemoryAdapter)
    }
}
