//! The adapter boundary: what a namespace asks of the other servers of a cluster.
//!
//! Local work (the room index, local delivery) is always done by the namespace itself; an
//! [`Adapter`] only carries operations to other servers. The in-memory default,
//! [`MemoryAdapter`], is a single server: every remote operation finds nothing.

pub mod redis;
pub mod streams;

use crate::server::rooms::Room;
use crate::socketio::Packet;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Flags of a broadcast (Node's `BroadcastFlags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// May be dropped when a client is not ready.
    pub volatile: bool,
    /// Only this server's sockets.
    pub local: bool,
    /// How long to wait for acks.
    pub timeout: Option<Duration>,
}

/// Which sockets a cluster-wide operation targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Rooms to target (all sockets when empty).
    pub rooms: Vec<Room>,
    /// Rooms whose members are excluded.
    pub except: Vec<Room>,
    /// Flags.
    pub flags: BroadcastFlags,
}

/// A socket as seen from anywhere in the cluster (Node's `RemoteSocket` data).
#[derive(Clone, Debug, PartialEq)]
pub struct SocketInfo {
    /// Socket id.
    pub id: String,
    /// Handshake, serialized as Node does.
    pub handshake: Value,
    /// Rooms the socket is in.
    pub rooms: Vec<String>,
    /// `socket.data`.
    pub data: Value,
}

/// Acks arriving from other servers for one broadcast-with-ack.
#[derive(Debug)]
pub enum RemoteAck {
    /// A server reports how many of its clients were targeted.
    ClientCount(usize),
    /// One client's ack (its first argument).
    Ack(Value),
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
