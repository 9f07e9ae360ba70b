//! The hook points an observer (the Admin UI namespace) sees: connections, sockets, rooms and
//! events. A server without an observer pays one `OnceLock::get` branch per hook, nothing else.

use super::reason::DisconnectReason;
use super::socket::Socket;
use crate::engineio::{CloseReason, TransportKind};
use crate::socketio::Packet;
use serde_json::Value;
use std::sync::Arc;

/// Watches a server. Every method has an empty default; hooks run on the caller's task and must
/// not block (queue, count, or spawn instead).
pub trait ServerObserver: Send + Sync + 'static {
    /// Whether per-socket events (`event_received`, `event_sent`, `room_joined`, `room_left`) are
    /// wanted now; when false the server skips collecting them.
    fn wants_events(&self) -> bool {
        false
    }
    /// An Engine.IO connection opened on `transport`.
    fn conn_opened(&self, _transport: TransportKind) {}
    /// An Engine.IO connection closed.
    fn conn_closed(&self, _reason: CloseReason) {}
    /// A message of `bytes` bytes arrived.
    fn packet_in(&self, _bytes: usize) {}
    /// `count` packets of `bytes` bytes in all were queued for clients.
    fn packets_out(&self, _count: usize, _bytes: usize) {}
    /// A socket connected (before the namespace's connection handlers run).
    fn socket_connected(&self, _socket: &Socket) {}
    /// A socket's connection moved to WebSocket.
    fn socket_upgraded(&self, _socket: &Socket) {}
    /// A socket disconnected.
    fn socket_disconnected(&self, _socket: &Socket, _reason: DisconnectReason) {}
    /// Socket `id` of `nsp` joined `room`.
    fn room_joined(&self, _nsp: &str, _room: &str, _id: &str) {}
    /// Socket `id` of `nsp` left `room`.
    fn room_left(&self, _nsp: &str, _room: &str, _id: &str) {}
    /// A socket received an event (`args` = `[name, ...args]`).
    fn event_received(&self, _socket: &Socket, _args: &[Value]) {}
    /// An event packet was queued for socket `id` of `nsp`.
    fn event_sent(&self, _nsp: &str, _id: &str, _packet: &Packet) {}
    /// Connections that are the observer's own (admin UIs), left out of `/stats` and presence.
    fn own_connections(&self) -> usize {
        0
    }
}

/// The observer slot of a server and of each of its namespaces: set once, read with one load.
pub(crate) type ObserverSlot = std::sync::OnceLock<Arc<dyn ServerObserver>>;
