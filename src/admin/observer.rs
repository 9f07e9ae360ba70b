//! The admin's [`ServerObserver`]: aggregated counters (atomics, in every mode) and, in
//! development mode, the live events the UI shows, emitted to the admin namespace cluster-wide.

use super::AdminMode;
use super::serialize::{self, ADMIN_KEY};
use super::stats::Counters;
use crate::engineio::{CloseReason, TransportKind};
use crate::server::namespace::WeakNamespace;
use crate::server::{DisconnectReason, Namespace, ServerObserver, Socket};
use crate::socketio::Packet;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reports a server's activity to its admin namespace.
pub struct AdminObserver {
    admin: WeakNamespace,
    admin_name: String,
    mode: AdminMode,
    /// Whether other instances share the admin namespace (their UIs need this one's events).
    clustered: bool,
    /// Counters drained into each `server_stats`.
    pub counters: Counters,
    own: AtomicUsize,
}

/// The time argument of the UI's events (a JS `Date`, serialized as ISO-8601).
fn now() -> Value {
    Value::String(crate::time::iso8601(crate::time::now_ms()))
}

impl AdminObserver {
    pub(super) fn new(admin: &Namespace, mode: AdminMode, clustered: bool) -> AdminObserver {
        AdminObserver {
            admin: admin.downgrade(),
            admin_name: admin.name().to_owned(),
            mode,
            clustered,
            counters: Counters::default(),
            own: AtomicUsize::new(0),
        }
    }

    /// Emits to every admin UI of the cluster.
    fn emit(&self, event: &str, args: Vec<Value>) {
        if let Some(admin) = self.admin.upgrade()
            && let Err(e) = admin.broadcast().emit_args(event, args, Vec::new())
        {
            tracing::debug!(event, error = %e, "admin event not sent");
        }
    }

    fn dev(&self) -> bool {
        self.mode == AdminMode::Development
    }

    /// Whether live events can reach a UI: development mode, and a UI connected here or possibly
    /// on another instance. A single instance with no UI skips the per-event work.
    fn live(&self) -> bool {
        self.dev() && (self.clustered || self.own.load(Ordering::Relaxed) > 0)
    }
}

impl ServerObserver for AdminObserver {
    fn wants_events(&self) -> bool {
        self.live()
    }

    fn conn_opened(&self, _transport: TransportKind) {
        self.counters.raw_connection();
    }

    fn conn_closed(&self, reason: CloseReason) {
        self.counters.raw_disconnection(reason);
    }

    fn packet_in(&self, bytes: usize) {
        self.counters.packet_in(bytes);
    }

    fn packets_out(&self, count: usize, bytes: usize) {
        self.counters.packets_out(count, bytes);
    }

    fn socket_connected(&self, socket: &Socket) {
        if socket.nsp().name() == self.admin_name {
            self.own.fetch_add(1, Ordering::Relaxed);
        }
        if !self.dev() {
            return;
        }
        // As Node does: client id and transport kept in `socket.data._admin`, so they travel
        // with `fetch_sockets` to the UIs on other instances.
        let mut data = match socket.data() {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        data.insert(
            ADMIN_KEY.into(),
            json!({"clientId": serialize::client_id(socket.conn_id()), "transport": socket.transport().as_str()}),
        );
        socket.set_data(Value::Object(data));
        if self.live() {
            self.emit("socket_connected", vec![serialize::local_socket(socket), now()]);
        }
    }

    fn socket_upgraded(&self, socket: &Socket) {
        if !self.dev() {
            return;
        }
        let transport = socket.transport().as_str();
        let mut data = socket.data();
        if let Some(admin) = data.get_mut(ADMIN_KEY).and_then(Value::as_object_mut) {
            admin.insert("transport".into(), Value::from(transport));
            socket.set_data(data);
        }
        if !self.live() {
            return;
        }
        self.emit(
            "socket_updated",
            vec![json!({"id": socket.id(), "nsp": socket.nsp().name(), "transport": transport})],
        );
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        if socket.nsp().name() == self.admin_name {
            self.own.fetch_sub(1, Ordering::Relaxed);
        }
        if self.live() {
            self.emit(
                "socket_disconnected",
                vec![
                    socket.nsp().name().into(),
                    socket.id().into(),
                    reason.as_str().into(),
                    now(),
                ],
            );
        }
    }

    fn room_joined(&self, nsp: &str, room: &str, id: &str) {
        // Not for the admin namespace itself (as `event_sent`): its sockets are the UIs.
        if self.live() && nsp != self.admin_name {
            self.emit("room_joined", vec![nsp.into(), room.into(), id.into(), now()]);
        }
    }

    fn room_left(&self, nsp: &str, room: &str, id: &str) {
        if self.live() && nsp != self.admin_name {
            self.emit("room_left", vec![nsp.into(), room.into(), id.into(), now()]);
        }
    }

    fn event_received(&self, socket: &Socket, args: &[Value]) {
        if self.live() && socket.nsp().name() != self.admin_name {
            self.emit(
                "event_received",
                vec![
                    socket.nsp().name().into(),
                    socket.id().into(),
                    Value::Array(args.to_vec()),
                    now(),
                ],
            );
        }
    }

    fn event_sent(&self, nsp: &str, id: &str, packet: &Packet) {
        // Never for the admin namespace itself: reporting those would report the report.
        if !self.live() || nsp == self.admin_name {
            return;
        }
        let args = packet.data.clone().unwrap_or(Value::Array(Vec::new()));
        self.emit("event_sent", vec![nsp.into(), id.into(), args, now()]);
    }

    fn own_connections(&self) -> usize {
        self.own.load(Ordering::Relaxed)
    }
}
