//! What runs on top of an Engine.IO connection: the [`EngineHandler`] that accepts sessions and the
//! per-connection [`ConnHandler`], plus [`EngineConn`], the handle they send through.

use super::outbox::{Outbox, Pushed};
use crate::engineio::{CloseReason, Data, Frame, TransportKind};
use http::HeaderMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

/// The HTTP request that opened a session (Node's `socket.request`).
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Request headers.
    pub headers: Arc<HeaderMap>,
    /// The raw query string.
    pub query: String,
    /// The request path and query (`/socket.io/?EIO=4&…`).
    pub url: String,
    /// The peer address (Node's `handshake.address`).
    pub remote: SocketAddr,
    /// The client's address for per-address limits and logs: the peer, or the client a trusted
    /// proxy names in `X-Forwarded-For` (`TRUSTED_PROXIES`).
    pub client: IpAddr,
    /// Whether the request came over TLS (never, for this server; kept for the handshake object).
    pub secure: bool,
}

/// Accepts new Engine.IO sessions.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened; returns what handles its messages.
    fn on_open(&self, conn: EngineConn, request: &RequestInfo, now: Instant) -> Box<dyn ConnHandler>;
}

/// Handles one connection's messages, on the connection's driver task (never concurrently).
pub trait ConnHandler: Send + 'static {
    /// A message arrived.
    fn on_message(&mut self, data: Data, now: Instant);
    /// The next instant [`ConnHandler::handle_timeout`] must run.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// A deadline from [`ConnHandler::poll_timeout`] passed.
    fn handle_timeout(&mut self, _now: Instant) {}
    /// The session moved to WebSocket.
    fn on_upgrade(&mut self) {}
    /// The session closed; the last call.
    fn on_close(&mut self, reason: CloseReason);
}

/// A cheap handle to send on a connection and to close it, usable from any thread.
#[derive(Clone, Debug)]
pub struct EngineConn {
    sid: Arc<str>,
    outbox: Arc<Outbox>,
    transport: Arc<AtomicU8>,
}

impl EngineConn {
    pub(crate) fn new(sid: Arc<str>, outbox: Arc<Outbox>, transport: Arc<AtomicU8>) -> EngineConn {
        EngineConn { sid, outbox, transport }
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The outbound queue (rooms keep it beside the socket, for broadcasts).
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Queues the frames of one packet.
    pub fn send(&self, frames: &[Frame], volatile: bool) -> Pushed {
        self.outbox.push(frames, volatile)
    }

    /// Closes the connection after what is queued ("forced close").
    pub fn close(&self) {
        self.outbox.request_close();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.outbox.is_closed()
    }

    /// Bytes queued and not yet handed to the transport.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued_bytes()
    }

    /// The current transport.
    pub fn transport(&self) -> TransportKind {
        transport_from_u8(self.transport.load(Ordering::Relaxed))
    }
}

pub(crate) fn transport_to_u8(t: TransportKind) -> u8 {
    match t {
        TransportKind::Polling => 0,
        TransportKind::WebSocket => 1,
    }
}

pub(crate) fn transport_from_u8(v: u8) -> TransportKind {
    if v == 1 {
        TransportKind::WebSocket
    } else {
        TransportKind::Polling
    }
}
