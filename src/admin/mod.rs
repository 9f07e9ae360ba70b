//! The Socket.IO Admin UI (`@socket.io/admin-ui` 0.5.1) for the whole cluster: its namespace
//! protocol (auth and sessions, `config`, `server_stats`, `all_sockets`, the development-mode
//! events and the `emit`/`join`/`leave`/`_disconnect` commands) and the embedded UI at `/admin/`.
//!
//! The namespace is an ordinary namespace on the cluster's adapter, so what one instance emits to
//! it (its stats, its sockets' events) reaches the admin UIs connected to any instance, as with
//! Node's `instrument()` on a Redis adapter.

pub mod auth;
mod commands;
mod observer;
pub mod serialize;
pub mod stats;
pub mod ui;

pub use auth::{Credentials, SessionStore};
pub use observer::AdminObserver;

use crate::server::{Namespace, Server, Socket};
use crate::transport::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often each instance emits `server_stats` (Node's 2 s).
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How long `all_sockets` waits for the other instances' sockets.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(5);

/// What the admin namespace shows and allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminMode {
    /// Every socket, room and event live (`socket_connected`, `event_received`, …), as Node's
    /// default `development` mode.
    Development,
    /// Server stats and aggregated counters only.
    Production,
}

/// Settings of the admin namespace.
#[derive(Clone, Debug)]
pub struct AdminOptions {
    /// Namespace name (`/admin`).
    pub namespace: String,
    /// `None`: no authentication (`ADMIN_AUTH=off`).
    pub credentials: Option<Credentials>,
    /// Development or production.
    pub mode: AdminMode,
    /// Drops the commands (`emit`, `join`, `leave`, `_disconnect`).
    pub readonly: bool,
    /// The `serverId` shown by the UI (the instance id).
    pub server_id: String,
    /// Whether the namespace is shared with other instances (a Redis adapter): live events are
    /// then emitted even with no UI connected here.
    pub clustered: bool,
}

/// The features this server offers the UI (`config.supportedFeatures`).
pub fn supported_features(options: &AdminOptions) -> Vec<&'static str> {
    let mut features = Vec::new();
    if !options.readonly {
        features.extend(["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]);
    }
    features.push("AGGREGATED_EVENTS");
    if options.mode == AdminMode::Development {
        features.push("ALL_EVENTS");
    }
    features
}

/// Turns the admin namespace on for `io`: installs the observer, the auth middleware, the
/// connection handler and the stats task. Call once, inside the runtime.
pub fn attach(io: &Server, engine: Engine, options: AdminOptions, store: SessionStore) -> Arc<AdminObserver> {
    let options = Arc::new(options);
    let admin = io.of(&options.namespace);
    let observer = Arc::new(AdminObserver::new(&admin, options.mode, options.clustered));
    if !io.set_observer(observer.clone()) {
        tracing::warn!("an observer was already installed; admin events are not reported");
    }
    let auth = Arc::new(auth::Authenticator::new(options.credentials.clone(), store));
    match &options.credentials {
        None => tracing::warn!(
            namespace = %options.namespace,
            "ADMIN_AUTH=off: the admin namespace accepts anyone; use only on a trusted network"
        ),
        Some(c) => tracing::info!(namespace = %options.namespace, username = %c.username, "admin namespace enabled"),
    }
    {
        let auth = auth.clone();
        admin.use_async_middleware(move |socket| auth.check(socket));
    }
    {
        let io = io.clone();
        let options = options.clone();
        admin.on_connection(move |socket| on_admin_connection(&io, socket, &options, &auth));
    }
    stats::spawn(
        io.clone(),
        engine,
        admin,
        observer.clone(),
        options.server_id.clone(),
        Instant::now(),
    );
    observer
}

fn on_admin_connection(io: &Server, socket: &Socket, options: &AdminOptions, auth: &auth::Authenticator) {
    if let Some(session) = auth.take_issued(socket.id()) {
        let _ = socket.emit("session", session);
    }
    if !options.readonly {
        commands::register(io, socket);
    }
    let _ = socket.emit("config", json!({ "supportedFeatures": supported_features(options) }));
    if options.mode == AdminMode::Development {
        let io = io.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let sockets = fetch_all_sockets(&io).await;
            let _ = socket.emit("all_sockets", Value::Array(sockets));
        });
    }
}

/// Every socket of every namespace in the cluster, serialized as the UI expects.
pub async fn fetch_all_sockets(io: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut namespaces: Vec<Namespace> = io.namespaces();
    namespaces.sort_by(|a, b| a.name().cmp(b.name()));
    for nsp in namespaces {
        let name = nsp.name().to_owned();
        match tokio::time::timeout(FETCH_DEADLINE, nsp.broadcast().fetch_sockets()).await {
            Ok(sockets) => out.extend(sockets.iter().map(|s| serialize::remote_socket(s, &name))),
            Err(_) => tracing::warn!(nsp = %name, "all_sockets: the cluster did not answer within 5 s"),
        }
    }
    out
}
