//! The vocabulary shared by the server and the adapters: rooms, broadcast options and flags, a
//! socket as seen from another server, remote acks. It sits below both, so the adapter modules
//! need no server type to describe what they carry (the server re-exports [`Room`] from
//! `server::rooms` for its own callers).

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A room name.
pub type Room = Arc<str>;

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
