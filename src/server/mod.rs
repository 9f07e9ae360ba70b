//! The Socket.IO server: namespaces (static and dynamic), sockets, rooms, acks and broadcasts,
//! on top of the Engine.IO transports. Its API follows Node's `socket.io`.

pub mod ack;
pub mod broadcast;
mod client;
pub mod error;
pub mod handshake;
pub mod namespace;
pub mod observer;
pub mod reason;
#[cfg(test)]
mod recovery_tests;
pub mod rooms;
pub mod socket;

pub use ack::AckReply;
pub use broadcast::BroadcastOperator;
pub use error::{AckError, ConnectError, EmitError};
pub use handshake::Handshake;
pub use namespace::{Namespace, ParentNamespace};
pub use observer::ServerObserver;
pub use reason::DisconnectReason;
pub use socket::{AckSender, Event, Socket, encode_frames, encode_with};

use crate::adapter::{AdapterFactory, MemoryAdapter, SessionAwareFactory};
use crate::socketio::{DecoderLimits, Parser};
use crate::transport::{ConnHandler, EngineConn, EngineHandler, RequestInfo};
use namespace::Hooks;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket.IO settings, with Node's defaults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a connection may stay without joining a namespace (45 s).
    pub connect_timeout: Duration,
    /// Decoder limits (at most 10 attachments per packet).
    pub decoder_limits: DecoderLimits,
    /// Most rooms one socket may be in, its own room included (`MAX_ROOMS_PER_SOCKET`, 1000).
    pub max_rooms_per_socket: usize,
    /// Longest accepted event name, bytes (`MAX_EVENT_NAME_LENGTH`, 1024); longer events are dropped.
    pub max_event_name_len: usize,
    /// Most acks a socket may wait for at once (`MAX_PENDING_ACKS`, 1000).
    pub max_pending_acks: usize,
    /// Connection state recovery with the in-memory adapter of [`Server::new`] (`RECOVERY`; off
    /// here, on for the chat server). With [`Server::with_adapter`] the adapter decides.
    pub recovery: bool,
    /// How long a disconnected session stays restorable (`RECOVERY_MAX_DISCONNECTION_MS`, 120 s).
    pub recovery_max_disconnection: Duration,
    /// Most bytes of packets kept per namespace for recovery (`RECOVERY_LOG_BYTES`, 16 MiB).
    pub recovery_log_bytes: usize,
    /// Most bytes of saved sessions per namespace (`RECOVERY_SESSION_BYTES`, 64 MiB).
    pub recovery_session_bytes: usize,
    /// The Socket.IO parser every client uses (`PARSER`, default).
    pub parser: Parser,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connect_timeout: Duration::from_millis(45_000),
            decoder_limits: DecoderLimits::default(),
            max_rooms_per_socket: 1000,
            max_event_name_len: 1024,
            max_pending_acks: 1000,
            recovery: false,
            recovery_max_disconnection: Duration::from_millis(120_000),
            recovery_log_bytes: 16 << 20,
            recovery_session_bytes: 64 << 20,
            parser: Parser::Default,
        }
    }
}

/// The Socket.IO server (Node's `io`). Cheap to clone.
#[derive(Clone)]
pub struct Server(Arc<ServerInner>);

struct ServerInner {
    config: ServerConfig,
    adapters: Arc<dyn AdapterFactory>,
    namespaces: RwLock<HashMap<String, Namespace>>,
    parents: RwLock<Vec<ParentNamespace>>,
    observer: observer::ObserverSlot,
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

impl Server {
    /// A server with the in-memory adapter, session-aware when `config.recovery` is on.
    pub fn new(config: ServerConfig) -> Server {
        if config.recovery {
            let factory = SessionAwareFactory {
                max_disconnection: config.recovery_max_disconnection,
                max_log_bytes: config.recovery_log_bytes,
                max_session_bytes: config.recovery_session_bytes,
                parser: config.parser,
            };
            return Server::with_adapter(config, Arc::new(factory));
        }
        Server::with_adapter(config, Arc::new(MemoryAdapter))
    }

    /// A server whose namespaces use adapters from `adapters`.
    pub fn with_adapter(config: ServerConfig, adapters: Arc<dyn AdapterFactory>) -> Server {
        let server = Server(Arc::new(ServerInner {
            config,
            adapters,
            namespaces: RwLock::default(),
            parents: RwLock::default(),
            observer: observer::ObserverSlot::new(),
        }));
        server.of("/");
        server
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The namespace `name`, created if needed (Node's `io.of(name)`).
    pub fn of(&self, name: &str) -> Namespace {
        let name = normalize(name);
        if let Some(n) = self.0.namespaces.read().get(&name) {
            return n.clone();
        }
        self.create(&name, Arc::new(Hooks::default()))
    }

    fn create(&self, name: &str, hooks: Arc<Hooks>) -> Namespace {
        let mut map = self.0.namespaces.write();
        map.entry(name.to_owned())
            .or_insert_with(|| {
                let nsp = Namespace::new(name, self.0.adapters.create(name), hooks, self.0.config.parser);
                if let Some(o) = self.0.observer.get() {
                    nsp.set_observer(o.clone());
                }
                nsp.adapter().init(nsp.downgrade());
                nsp
            })
            .clone()
    }

    /// A dynamic namespace: names for which `matcher(name, auth)` is true are created on first
    /// connection (Node's `io.of(fn)`).
    pub fn of_fn(&self, matcher: impl Fn(&str, &Value) -> bool + Send + Sync + 'static) -> ParentNamespace {
        let parent = ParentNamespace {
            matcher: Arc::new(matcher),
            hooks: Arc::new(Hooks::default()),
        };
        self.0.parents.write().push(parent.clone());
        parent
    }

    /// A dynamic namespace for names matching `pattern` (Node's `io.of(/regex/)`).
    pub fn of_regex(&self, pattern: &str) -> Result<ParentNamespace, regex_lite::Error> {
        let re = regex_lite::Regex::new(pattern)?;
        Ok(self.of_fn(move |name, _| re.is_match(name)))
    }

    /// The namespace a CONNECT for `name` goes to, creating a dynamic child if a parent allows it.
    pub(crate) fn namespace_for(&self, name: &str, auth: &Value) -> Option<Namespace> {
        if let Some(n) = self.0.namespaces.read().get(name) {
            return Some(n.clone());
        }
        let parents = self.0.parents.read().clone();
        let parent = parents.into_iter().find(|p| (p.matcher)(name, auth))?;
        Some(self.create(name, parent.hooks.clone()))
    }

    /// The existing namespaces.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.0.namespaces.read().values().cloned().collect()
    }

    /// Installs the observer (the Admin UI), once; existing and future namespaces report to it.
    /// Returns false if one was already set.
    pub fn set_observer(&self, observer: Arc<dyn ServerObserver>) -> bool {
        if self.0.observer.set(observer.clone()).is_err() {
            return false;
        }
        // Under the namespaces lock, so a namespace created meanwhile cannot miss it.
        let map = self.0.namespaces.read();
        for nsp in map.values() {
            nsp.set_observer(observer.clone());
        }
        true
    }

    /// The observer, if one is installed.
    pub fn observer(&self) -> Option<&Arc<dyn ServerObserver>> {
        self.0.observer.get()
    }

    /// Connections that are the observer's own (admin UIs), not application clients.
    pub fn observer_connections(&self) -> usize {
        self.observer().map_or(0, |o| o.own_connections())
    }

    /// The main namespace `/`.
    pub fn sockets(&self) -> Namespace {
        self.of("/")
    }

    /// Connected sockets on this server, all namespaces.
    pub fn local_socket_count(&self) -> usize {
        self.namespaces().iter().map(Namespace::local_len).sum()
    }

    /// The Engine.IO handler that runs this server on each session.
    pub fn engine_handler(&self) -> Arc<dyn EngineHandler> {
        Arc::new(self.clone())
    }
}

impl EngineHandler for Server {
    fn on_open(&self, conn: EngineConn, request: &RequestInfo, now: Instant) -> Box<dyn ConnHandler> {
        Box::new(client::SioConnection::new(self.clone(), conn, request, now))
    }
}
