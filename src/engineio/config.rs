//! Engine.IO settings, with Node's `engine.io` defaults.

use std::time::Duration;

/// Per-server Engine.IO settings. Defaults are Node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Time between server pings (`pingInterval`, 25 s).
    pub ping_interval: Duration,
    /// Time to wait for a pong after a ping (`pingTimeout`, 20 s).
    pub ping_timeout: Duration,
    /// Time a probing WebSocket has to complete the upgrade (`upgradeTimeout`, 10 s).
    pub upgrade_timeout: Duration,
    /// Largest accepted message or polling body, in bytes (`maxHttpBufferSize`, 1e6).
    pub max_payload: usize,
    /// Whether polling sessions may upgrade to WebSocket.
    pub allow_upgrades: bool,
    /// Enabled transports.
    pub transports: Transports,
    /// How long a closing polling session waits for the GET that carries its close packet (30 s).
    pub close_timeout: Duration,
}

/// Which transports the server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// HTTP long-polling.
    pub polling: bool,
    /// WebSocket.
    pub websocket: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_payload: 1_000_000,
            allow_upgrades: true,
            transports: Transports {
                polling: true,
                websocket: true,
            },
            close_timeout: Duration::from_millis(30_000),
        }
    }
}

impl EngineConfig {
    /// The `upgrades` a session opened on `transport` may offer.
    pub fn upgrades_for(&self, transport: TransportKind) -> &'static [&'static str] {
        match transport {
            TransportKind::Polling if self.allow_upgrades && self.transports.websocket => &["websocket"],
            _ => &[],
        }
    }
}

/// The two Engine.IO transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }

    /// Parses a `transport` query parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}
