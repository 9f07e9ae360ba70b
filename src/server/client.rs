//! One Engine.IO connection seen by the Socket.IO server (Node's `Client`): decodes packets,
//! connects namespaces through their middlewares, dispatches packets to sockets, and closes the
//! connection on protocol violations.

use super::Server;
use super::handshake::Handshake;
use super::reason::DisconnectReason;
use super::socket::{Socket, encode_with};
use crate::engineio::{CloseReason, Data, sid};
use crate::metrics;
use crate::socketio::{Connection, Incoming, Packet, Violation};
use crate::transport::{ConnHandler, EngineConn, RequestInfo};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// State shared by a connection and its sockets.
pub(crate) struct ClientShared {
    pub(crate) conn: EngineConn,
    pub(crate) max_rooms: usize,
    pub(crate) max_pending_acks: usize,
    sockets: Mutex<HashMap<String, Socket>>,
}

impl ClientShared {
    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Socket>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the socket of `nsp` if it is `id`.
    pub(crate) fn remove(&self, nsp: &str, id: &str) {
        let mut map = self.sockets();
        if map.get(nsp).is_some_and(|s| s.id() == id) {
            map.remove(nsp);
        }
    }

    /// `socket.disconnect(true)`: every socket of the connection, then the connection itself.
    pub(crate) fn disconnect_all(&self) {
        let sockets: Vec<Socket> = self.sockets().values().cloned().collect();
        for s in sockets {
            s.disconnect(false);
        }
        self.conn.close();
    }

    fn close_all(&self, reason: DisconnectReason) {
        let sockets: Vec<Socket> = self.sockets().drain().map(|(_, s)| s).collect();
        for s in sockets {
            s.on_close(reason);
        }
    }
}

/// The Socket.IO side of one Engine.IO connection.
pub(crate) struct SioConnection {
    server: Server,
    shared: Arc<ClientShared>,
    state: Connection,
    request: RequestInfo,
}

impl SioConnection {
    pub(crate) fn new(server: Server, conn: EngineConn, request: &RequestInfo, now: Instant) -> SioConnection {
        let cfg = server.config();
        let state = Connection::with_parser(cfg.decoder_limits, cfg.parser, cfg.connect_timeout, now);
        SioConnection {
            shared: Arc::new(ClientShared {
                conn,
                max_rooms: cfg.max_rooms_per_socket,
                max_pending_acks: cfg.max_pending_acks,
                sockets: Mutex::default(),
            }),
            server,
            state,
            request: request.clone(),
        }
    }

    fn send(&self, packet: &Packet) {
        let _ = self
            .shared
            .conn
            .send(&encode_with(self.server.config().parser, packet), false);
    }

    /// Keeps the protocol state in step with sockets the server disconnected.
    fn sync_namespaces(&mut self) {
        let gone: Vec<String> = {
            let sockets = self.shared.sockets();
            self.state
                .namespaces()
                .filter(|(n, _)| !sockets.contains_key(*n))
                .map(|(n, _)| n.to_owned())
                .collect()
        };
        for n in gone {
            self.state.disconnected(&n);
        }
    }

    fn connect(&mut self, nsp_name: String, auth: Value) {
        let Some(nsp) = self.server.namespace_for(&nsp_name, &auth) else {
            tracing::debug!(nsp = %nsp_name, "connection to an unknown namespace refused");
            self.send(&Packet::connect_error(&nsp_name, "Invalid namespace", None));
            return;
        };
        let id: Arc<str> = Arc::from(sid::random_id());
        let handshake = Handshake::new(&self.request, auth);
        let socket = Socket::new(id.clone(), nsp.clone(), self.shared.clone(), handshake);
        let middlewares = nsp
            .hooks()
            .middlewares
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for m in middlewares {
            if let Err(e) = m(&socket) {
                tracing::debug!(nsp = %nsp_name, error = %e.message, "connection refused by a middleware");
                self.send(&Packet::connect_error(&nsp_name, &e.message, e.data));
                return;
            }
        }
        if self.shared.conn.is_closed() {
            return;
        }
        socket.mark_connected();
        nsp.add_socket(&socket);
        self.shared.sockets().insert(nsp_name.clone(), socket.clone());
        self.state.connected(&nsp_name, &id);
        self.send(&Packet::connect_reply(&nsp_name, &id));
        let handlers = nsp
            .hooks()
            .on_connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for h in handlers {
            h(&socket);
        }
    }

    fn violation(&mut self, v: Violation) {
        tracing::debug!(sid = %self.shared.conn.sid(), reason = v.reason(), detail = ?v, "closing the connection");
        metrics::inc(&metrics::METRICS.violations);
        self.shared.conn.close();
        if !matches!(v, Violation::Decode(_)) {
            self.shared.close_all(DisconnectReason::ForcedServerClose);
        }
    }
}

impl ConnHandler for SioConnection {
    fn on_message(&mut self, data: Data, _now: Instant) {
        if self.shared.conn.is_closed() {
            return;
        }
        self.sync_namespaces();
        match self.state.handle_message(data) {
            Ok(None) => {}
            Ok(Some(Incoming::Connect { nsp, auth })) => {
                metrics::inc(&metrics::METRICS.packets_in[0]);
                self.connect(nsp, auth)
            }
            Ok(Some(Incoming::Packet(p)))
                if p.event_name()
                    .is_some_and(|n| n.len() > self.server.config().max_event_name_len) =>
            {
                metrics::inc(&metrics::METRICS.limit_event_name);
                let len = p.event_name().map_or(0, str::len);
                tracing::info!(sid = %self.shared.conn.sid(), len, "event name too long; dropped");
            }
            Ok(Some(Incoming::Packet(p))) => {
                metrics::inc(&metrics::METRICS.packets_in[p.wire_type().as_u8() as usize]);
                let socket = self.shared.sockets().get(&p.nsp).cloned();
                match socket {
                    Some(s) => s.on_packet(p),
                    None => self.violation(Violation::InvalidState),
                }
            }
            Err(v) => self.violation(v),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.state.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Err(v) = self.state.handle_timeout(now) {
            self.violation(v);
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.shared.close_all(reason.into());
    }
}
