//! The Socket.IO server: namespaces (static and dynamic), sockets, rooms, acks and broadcasts,
//! on top of the Engine.IO transports. Its API follows Node's `socket.io`.

pub mod ack;
pub mod broadcast;
mod client;
pub mod error;
pub mod handshake;
pub mod namespace;
pub mod reason;
pub mod rooms;
pub mod socket;

pub use ack::AckReply;
pub use broadcast::BroadcastOperator;
pub use error::{AckError, ConnectError, EmitError};
pub use handshake::Handshake;
pub use namespace::{Namespace, ParentNamespace};
pub use reason::DisconnectReason;
pub use socket::{AckSender, Event, Socket};

use crate::adapter::{AdapterFactory, MemoryAdapter};
use crate::socketio::{DecoderLimits, Parser};
use crate::transport::{ConnHandler, EngineConn, EngineHandler, RequestInfo};
use namespace::Hooks;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

impl Server {
    /// A server with the in-memory adapter.
    pub fn new(config: ServerConfig) -> Server {
        Server::with_adapter(config, Arc::new(MemoryAdapter))
    }

    /// A server whose namespaces use adapters from `adapters`.
    pub fn with_adapter(config: ServerConfig, adapters: Arc<dyn AdapterFactory>) -> Server {
        let server = Server(Arc::new(ServerInner {
            config,
            adapters,
            namespaces: RwLock::default(),
            parents: RwLock::default(),
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
        if let Some(n) = self.0.namespaces.read().unwrap_or_else(|e| e.into_inner()).get(&name) {
            return n.clone();
        }
        self.create(&name, Arc::new(Hooks::default()))
    }

    fn create(&self, name: &str, hooks: Arc<Hooks>) -> Namespace {
        let mut map = self.0.namespaces.write().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| {
                let nsp = Namespace::new(name, self.0.adapters.create(name), hooks, self.0.config.parser);
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
        self.0
            .parents
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(parent.clone());
        parent
    }

    /// A dynamic namespace for names matching `pattern` (Node's `io.of(/regex/)`).
    pub fn of_regex(&self, pattern: &str) -> Result<ParentNamespace, regex_lite::Error> {
        let re = regex_lite::Regex::new(pattern)?;
        Ok(self.of_fn(move |name, _| re.is_match(name)))
    }

    /// The namespace a CONNECT for `name` goes to, creating a dynamic child if a parent allows it.
    pub(crate) fn namespace_for(&self, name: &str, auth: &Value) -> Option<Namespace> {
        if let Some(n) = self.0.namespaces.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Some(n.clone());
        }
        let parents = self.0.parents.read().unwrap_or_else(|e| e.into_inner()).clone();
        let parent = parents.into_iter().find(|p| (p.matcher)(name, auth))?;
        Some(self.create(name, parent.hooks.clone()))
    }

    /// The existing namespaces.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.0
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The main namespace `/`.
    pub fn sockets(&self) -> Namespace {
        self.of("/")
    }

    /// Connected sockets on this server, all namespaces.
    pub fn local_socket_count(&self) -> usize {
        self.namespaces().iter().map(Namespace::local_len).sum()
    }

    /// Disconnects every socket with reason "server shutting down".
    pub fn disconnect_all_local(&self) {
        for nsp in self.namespaces() {
            for s in nsp.local_sockets() {
                s.on_close(DisconnectReason::ServerShuttingDown);
            }
        }
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
