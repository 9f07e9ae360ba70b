//! One Engine.IO connection seen by the Socket.IO server (Node's `Client`): decodes packets,
//! connects namespaces through their middlewares, dispatches packets to sockets, and closes the
//! connection on protocol violations.

use super::Server;
use super::error::ConnectError;
use super::handshake::Handshake;
use super::namespace::{AsyncMiddleware, Namespace};
use super::reason::DisconnectReason;
use super::socket::{Socket, encode_with};
use crate::adapter::{BroadcastOptions, Restored, SessionEvent};
use crate::engineio::{CloseReason, Data};
use crate::metrics;
use crate::socketio::{Connection, Incoming, Packet, Violation};
use crate::transport::{ConnHandler, EngineConn, RequestInfo};
use futures_util::FutureExt as _;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a CONNECT waits for a remote store to restore its session before it gets a fresh one.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by a connection and its sockets.
pub(crate) struct ClientShared {
    pub(crate) conn: EngineConn,
    pub(crate) max_rooms: usize,
    pub(crate) max_pending_acks: usize,
    sockets: Mutex<HashMap<String, Socket>>,
    /// Namespaces whose CONNECT waits for an asynchronous session restore.
    restoring: Mutex<HashSet<String>>,
}

impl ClientShared {
    fn sockets(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Socket>> {
        self.sockets.lock()
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

    fn restoring(&self) -> parking_lot::MutexGuard<'_, HashSet<String>> {
        self.restoring.lock()
    }

    fn close_all(&self, reason: DisconnectReason) {
        let sockets: Vec<Socket> = self.sockets().drain().map(|(_, s)| s).collect();
        for s in sockets {
            s.on_close(reason);
        }
    }
}

/// Closes this server's socket holding session `pid`, if its client reconnects before the dead
/// transport was noticed: its session is persisted ("transport close") so it can be restored, and
/// the client never has two members in a room.
fn retire_local(nsp: &Namespace, pid: &str) {
    if let Some(old) = nsp.socket_by_pid(pid) {
        tracing::debug!(sid = %old.id(), "a newer connection resumes this session; closing the old socket");
        old.on_close(DisconnectReason::TransportClose);
        // Its connection is of no use to anyone once the client moved on.
        if old.0.client.sockets().is_empty() {
            old.0.client.conn.close();
        }
    }
}

/// What [`attach`] did.
enum Attached {
    /// Connected (the socket id) or refused (`None`).
    Done(Option<Arc<str>>),
    /// The socket passed the synchronous middlewares and waits for the asynchronous ones: run
    /// [`finish_pending`] on them.
    Pending(Socket, Vec<AsyncMiddleware>),
}

/// Connects a socket to `nsp` (Node's `_add` and `_doConnect`): a fresh one through the
/// middlewares, or a restored one, which skips them (Node's `skipMiddlewares`), gets its rooms and
/// `data` back and its missed packets before the CONNECT reply.
fn attach(
    shared: &Arc<ClientShared>,
    request: &RequestInfo,
    nsp: &Namespace,
    nsp_name: &str,
    auth: Value,
    restored: Option<Restored>,
    fence: Option<parking_lot::MutexGuard<'_, ()>>,
) -> Attached {
    // Middlewares are application code: never run them under the delivery fence.
    let fence = fence.filter(|_| restored.is_some());
    let handshake = Handshake::new(request, auth);
    let (id, pid): (Arc<str>, Option<Arc<str>>) = match &restored {
        Some(r) => (
            Arc::from(r.session.sid.as_str()),
            Some(Arc::from(r.session.pid.as_str())),
        ),
        None => (
            Arc::from(crate::ids::token()),
            nsp.adapter().recovery().then(|| Arc::from(crate::ids::token())),
        ),
    };
    let socket = Socket::new(
        id.clone(),
        nsp.clone(),
        shared.clone(),
        handshake,
        pid.clone(),
        restored.is_some(),
    );
    if restored.is_none() {
        let middlewares = nsp.hooks().middlewares.read().clone();
        for m in middlewares {
            if let Err(e) = m(&socket) {
                refuse(shared, nsp, nsp_name, e);
                return Attached::Done(None);
            }
        }
        let pending = nsp.hooks().async_middlewares.read().clone();
        if !pending.is_empty() {
            return Attached::Pending(socket, pending);
        }
    }
    Attached::Done(finish(shared, nsp, nsp_name, socket, restored, fence))
}

/// Sends the CONNECT_ERROR of a middleware's refusal.
fn refuse(shared: &ClientShared, nsp: &Namespace, nsp_name: &str, e: ConnectError) {
    tracing::debug!(nsp = %nsp_name, error = %e.message, "connection refused by a middleware");
    let _ = shared.conn.send(
        &encode_with(nsp.parser(), &Packet::connect_error(nsp_name, &e.message, e.data)),
        false,
    );
}

/// Runs the asynchronous middlewares of a pending socket, then connects it (or refuses it).
async fn finish_pending(
    shared: Arc<ClientShared>,
    nsp: Namespace,
    nsp_name: String,
    socket: Socket,
    checks: Vec<AsyncMiddleware>,
) -> Option<Arc<str>> {
    for check in checks {
        if let Err(e) = check(socket.clone()).await {
            refuse(&shared, &nsp, &nsp_name, e);
            return None;
        }
    }
    finish(&shared, &nsp, &nsp_name, socket, None, None)
}

/// The end of [`attach`], once the middlewares let `socket` in: rooms, replay, CONNECT reply,
/// connection handlers. Returns the socket id on success.
fn finish(
    shared: &Arc<ClientShared>,
    nsp: &Namespace,
    nsp_name: &str,
    socket: Socket,
    restored: Option<Restored>,
    fence: Option<parking_lot::MutexGuard<'_, ()>>,
) -> Option<Arc<str>> {
    let send = |p: &Packet| {
        let _ = shared.conn.send(&encode_with(nsp.parser(), p), false);
    };
    let id: Arc<str> = Arc::from(socket.id());
    let pid = socket.pid().cloned();
    // Closed, or closing (a violation while asynchronous middlewares or a restore ran).
    if shared.conn.is_closed() || shared.conn.outbox().close_requested() {
        if let Some(r) = restored {
            // The client left again while its session was restored: keep it for the next try.
            nsp.adapter().persist_session(r.session, SessionEvent::Disconnected);
        }
        return None;
    }
    socket.mark_connected();
    // Under the fence only index updates and queue pushes: the observer (which emits to the admin
    // namespace, whose own delivery takes its fence) hears of the joined rooms after it.
    let mut joined = nsp.add_socket_quiet(&socket);
    if let Some(r) = &restored {
        joined.extend(socket.restore_state(&r.session));
        for p in &r.missed {
            send(p);
        }
        for frames in &r.missed_frames {
            let _ = shared.conn.send(frames, false);
        }
    }
    drop(fence);
    nsp.report_joined(&id, &joined);
    if let Some(r) = &restored {
        let missed = r.missed.len() + r.missed_frames.len();
        metrics::add(&metrics::METRICS.packets_out, missed as u64);
        tracing::debug!(sid = %id, nsp = %nsp_name, missed, "connection state recovered");
        // The old socket may still look alive on another server (its dead transport not noticed
        // yet): disconnect it there, so the client has one member in each room.
        let opts = BroadcastOptions {
            rooms: vec![id.clone()],
            ..BroadcastOptions::default()
        };
        nsp.adapter().disconnect_sockets(&opts, false);
    }
    shared.sockets().insert(nsp_name.to_owned(), socket.clone());
    if shared.conn.is_closed() {
        // The connection closed meanwhile, perhaps after its close_all: do not leave this behind.
        shared.remove(nsp_name, &id);
        socket.on_close(DisconnectReason::TransportClose);
        return None;
    }
    match &pid {
        Some(pid) => send(&Packet::connect_reply_pid(nsp_name, &id, pid)),
        None => send(&Packet::connect_reply(nsp_name, &id)),
    }
    socket.persist(SessionEvent::Connected);
    if let Some(o) = nsp.observer() {
        o.socket_connected(&socket);
    }
    let handlers = nsp.hooks().on_connection.read().clone();
    for h in handlers {
        h(&socket);
    }
    Some(id)
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
        if let Some(o) = server.observer() {
            o.conn_opened(conn.transport());
        }
        SioConnection {
            shared: Arc::new(ClientShared {
                conn,
                max_rooms: cfg.max_rooms_per_socket,
                max_pending_acks: cfg.max_pending_acks,
                sockets: Mutex::default(),
                restoring: Mutex::default(),
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

    /// Keeps the protocol state in step with sockets the server disconnected, and with sockets
    /// an asynchronous restore connected.
    fn sync_namespaces(&mut self) {
        let (gone, added): (Vec<String>, Vec<(String, String)>) = {
            let sockets = self.shared.sockets();
            let gone = self
                .state
                .namespaces()
                .filter(|(n, _)| !sockets.contains_key(*n))
                .map(|(n, _)| n.to_owned())
                .collect();
            let added = sockets
                .iter()
                .filter(|(n, _)| self.state.socket_id(n).is_none())
                .map(|(n, s)| (n.clone(), s.id().to_owned()))
                .collect();
            (gone, added)
        };
        for n in gone {
            self.state.disconnected(&n);
        }
        for (n, id) in added {
            self.state.connected(&n, &id);
        }
    }

    fn connect(&mut self, nsp_name: String, mut auth: Value) {
        let Some(nsp) = self.server.namespace_for(&nsp_name, &auth) else {
            tracing::debug!(nsp = %nsp_name, "connection to an unknown namespace refused");
            self.send(&Packet::connect_error(&nsp_name, "Invalid namespace", None));
            return;
        };
        // Node's `_createSocket`: only string `pid` and `offset` ask for a restore.
        let wanted = match (nsp.adapter().recovery(), auth.get("pid"), auth.get("offset")) {
            (true, Some(Value::String(pid)), Some(Value::String(offset))) => Some((pid.clone(), offset.clone())),
            _ => None,
        };
        // The pid is a capability: used for the restore, never shown to application code,
        // `fetch_sockets` or other servers through `handshake.auth`.
        if nsp.adapter().recovery()
            && let Value::Object(m) = &mut auth
        {
            m.remove("pid");
            m.remove("offset");
        }
        let Some((pid, offset)) = wanted else {
            let attached = attach(&self.shared, &self.request, &nsp, &nsp_name, auth, None, None);
            self.attached(&nsp, nsp_name, attached);
            return;
        };
        retire_local(&nsp, &pid);
        let adapter = nsp.adapter().clone();
        let fence = adapter.delivery_fence();
        let mut fut = adapter.restore_session(&pid, &offset);
        // Polled once here: the in-memory adapter answers at once, under its delivery fence.
        if let Some(restored) = (&mut fut).now_or_never() {
            let restored = restored.filter(|r| nsp.socket(&r.session.sid).is_none());
            let attached = attach(&self.shared, &self.request, &nsp, &nsp_name, auth, restored, fence);
            self.attached(&nsp, nsp_name, attached);
            return;
        }
        drop(fence);
        // A remote store: finish the CONNECT when it answers, or with a fresh socket at the deadline.
        self.shared.restoring().insert(nsp_name.clone());
        let (shared, request) = (self.shared.clone(), self.request.clone());
        tokio::spawn(async move {
            let restored = tokio::time::timeout(RESTORE_TIMEOUT, fut).await.ok().flatten();
            let mut restored = restored.filter(|r| nsp.socket(&r.session.sid).is_none());
            // Settled and attached under the delivery fence, so no packet falls between the
            // replay and the joined rooms, or lands in both.
            let adapter = nsp.adapter().clone();
            let attached = {
                let fence = adapter.delivery_fence();
                // A restore that may have lost packets: a fresh socket (the session is used up,
                // as for any failed restore).
                if let Some(r) = &mut restored
                    && !adapter.settle_restore(r)
                {
                    restored = None;
                }
                attach(&shared, &request, &nsp, &nsp_name, auth, restored, fence)
            };
            if let Attached::Pending(socket, checks) = attached {
                finish_pending(shared.clone(), nsp, nsp_name.clone(), socket, checks).await;
            }
            shared.restoring().remove(&nsp_name);
        });
    }

    /// Records a finished [`attach`], or finishes a pending one in a task (the namespace counts
    /// as connecting meanwhile, as during an asynchronous restore).
    fn attached(&mut self, nsp: &Namespace, nsp_name: String, attached: Attached) {
        match attached {
            Attached::Done(Some(id)) => self.state.connected(&nsp_name, &id),
            Attached::Done(None) => {}
            Attached::Pending(socket, checks) => {
                self.shared.restoring().insert(nsp_name.clone());
                let (shared, nsp) = (self.shared.clone(), nsp.clone());
                tokio::spawn(async move {
                    finish_pending(shared.clone(), nsp, nsp_name.clone(), socket, checks).await;
                    shared.restoring().remove(&nsp_name);
                });
            }
        }
    }

    fn violation(&mut self, v: Violation) {
        tracing::debug!(sid = %self.shared.conn.sid(), reason = %v.reason(), detail = ?v, "closing the connection");
        metrics::inc(&metrics::METRICS.violations);
        self.shared.conn.close();
        if !matches!(v, Violation::Decode(_)) {
            self.shared.close_all(v.reason());
        }
    }
}

impl ConnHandler for SioConnection {
    fn on_message(&mut self, data: Data, _now: Instant) {
        if self.shared.conn.is_closed() {
            return;
        }
        self.sync_namespaces();
        if let Some(o) = self.server.observer() {
            o.packet_in(match &data {
                Data::Text(t) => t.len(),
                Data::Binary(b) => b.len(),
            });
        }
        match self.state.handle_message(data) {
            Ok(None) => {}
            Ok(Some(Incoming::Connect { nsp, .. })) if self.shared.restoring().contains(&nsp) => {
                self.violation(Violation::InvalidState)
            }
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
        self.sync_namespaces();
        if let Err(v) = self.state.handle_timeout(now) {
            self.violation(v);
        }
    }

    fn on_upgrade(&mut self) {
        if let Some(o) = self.server.observer() {
            let sockets: Vec<Socket> = self.shared.sockets().values().cloned().collect();
            for s in &sockets {
                o.socket_upgraded(s);
            }
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.shared.close_all(reason.into());
        if let Some(o) = self.server.observer() {
            o.conn_closed(reason);
        }
    }
}
