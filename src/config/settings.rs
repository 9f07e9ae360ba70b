//! The table of settings: one `clap` declaration per setting (its environment variable, its
//! flag, its default and its help line), from which `--help` is printed and
//! [`Env`](super::Env) takes its defaults.
//!
//! To add a setting, add one field to the group it belongs to:
//!
//! ```text
//! /// What it does, in one line (the --help line).
//! #[arg(long, env = "MY_SETTING", default_value = "10")]
//! pub my_setting: Option<OsString>,
//! ```
//!
//! then read it in `Config::from_vars` with `env.parse("MY_SETTING", "a number")?` (or
//! `env.millis`, `env.raw` when unset means something). The flag is the variable in kebab case
//! (`--my-setting`). Leave `default_value` out when the default is derived from other settings
//! and say it in the help line instead. Values are strings here: `Config::from_vars` parses and
//! checks them, so a bad value names its variable whether it came from the environment or a flag.
//! The `every_setting_read_is_in_the_help` test fails for a variable read but not declared here.

use super::ConfigError;
use clap::{ArgMatches, Args, Command, CommandFactory, Parser, ValueEnum};
use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::LazyLock;

/// Settings both binaries read.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonSettings {
    /// Address to bind (also the webhook's).
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: Option<OsString>,
    /// This instance's name in logs, /health, /stats and its sids' prefix (default: hostname-pid).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<OsString>,
    /// Log format: pretty or json (one object per line); RUST_LOG filters (default info).
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: Option<OsString>,
    /// Webhook port; sio-server: off disables its in-process webhook, and 4000 taken (not set) only warns.
    #[arg(long, env = "WEBHOOK_PORT", default_value = "4000")]
    pub webhook_port: Option<OsString>,
    /// HMAC-SHA256 key of the webhook, at least 32 bytes; unset: requests are not signed.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<OsString>,
    /// Milliseconds a client may take to send request headers (and a webhook body).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value = "10000")]
    pub header_read_timeout_ms: Option<OsString>,
    /// Milliseconds a write may wait for a peer that reads nothing before the connection is reset.
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value = "10000")]
    pub write_timeout_ms: Option<OsString>,
    /// Milliseconds a graceful shutdown may take.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value = "10000")]
    pub shutdown_grace_ms: Option<OsString>,
}

/// Settings of the Socket.IO server only.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerSettings {
    /// HTTP port (Socket.IO, demo page, health, stats, metrics); client-suite: 3210.
    #[arg(long, env = "PORT", default_value = "3000")]
    pub port: Option<OsString>,
    /// Path of the Engine.IO endpoint and the client bundle.
    #[arg(long, env = "SOCKETIO_PATH", default_value = "/socket.io")]
    pub socketio_path: Option<OsString>,
    /// Allowed origins: * (any) or a comma-separated list (default: unset, no CORS headers).
    #[arg(long, env = "CORS_ORIGIN")]
    pub cors_origin: Option<OsString>,
    /// Engine.IO heartbeat interval, ms.
    #[arg(long, env = "PING_INTERVAL", default_value = "25000")]
    pub ping_interval: Option<OsString>,
    /// Engine.IO heartbeat timeout, ms.
    #[arg(long, env = "PING_TIMEOUT", default_value = "20000")]
    pub ping_timeout: Option<OsString>,
    /// Largest message or polling body, bytes.
    #[arg(long, env = "MAX_HTTP_BUFFER_SIZE", default_value = "1000000")]
    pub max_http_buffer_size: Option<OsString>,
    /// Milliseconds a connection may stay without joining a namespace.
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "45000")]
    pub connect_timeout: Option<OsString>,
    /// Most open sessions per instance (0 = no limit).
    #[arg(long, env = "MAX_CONNECTIONS", default_value = "20000")]
    pub max_connections: Option<OsString>,
    /// Most handshakes per second from one client address (0 = off).
    #[arg(long, env = "HANDSHAKE_RATE_PER_IP", default_value = "0")]
    pub handshake_rate_per_ip: Option<OsString>,
    /// Sessions one address may hold once the instance is half full (0 = off) (default: MAX_CONNECTIONS/10, at least 10).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<OsString>,
    /// Sessions one address may hold that sent no message yet (0 = off) (default: MAX_CONNECTIONS/20, at least 10).
    #[arg(long, env = "MAX_HALF_OPEN_PER_IP")]
    pub max_half_open_per_ip: Option<OsString>,
    /// Comma-separated networks whose X-Forwarded-For names the client (default: nobody).
    #[arg(long, env = "TRUSTED_PROXIES")]
    pub trusted_proxies: Option<OsString>,
    /// Most rooms one socket may be in (its own room included).
    #[arg(long, env = "MAX_ROOMS_PER_SOCKET", default_value = "1000")]
    pub max_rooms_per_socket: Option<OsString>,
    /// Longest accepted event name, bytes.
    #[arg(long, env = "MAX_EVENT_NAME_LENGTH", default_value = "1024")]
    pub max_event_name_length: Option<OsString>,
    /// Most acks one socket may be waiting for.
    #[arg(long, env = "MAX_PENDING_ACKS", default_value = "1000")]
    pub max_pending_acks: Option<OsString>,
    /// Per-connection outbound queue, bytes (the hard limit is 3x).
    #[arg(long, env = "OUTBOUND_QUEUE_BYTES", default_value = "8388608")]
    pub outbound_queue_bytes: Option<OsString>,
    /// Chat messages per second one socket may send, burst 2 s worth (0 = off).
    #[arg(long, env = "CHAT_RATE_MESSAGES", default_value = "0")]
    pub chat_rate_messages: Option<OsString>,
    /// Bytes of chat messages per second one socket may send, burst 2 s worth (0 = off).
    #[arg(long, env = "CHAT_RATE_BYTES", default_value = "0")]
    pub chat_rate_bytes: Option<OsString>,
    /// Connection state recovery: true or false (needs the in-memory or a recovering Redis adapter).
    #[arg(long, env = "RECOVERY", default_value = "true")]
    pub recovery: Option<OsString>,
    /// Milliseconds a disconnected socket's session stays restorable.
    #[arg(long, env = "RECOVERY_MAX_DISCONNECTION_MS", default_value = "120000")]
    pub recovery_max_disconnection_ms: Option<OsString>,
    /// Most bytes of packets the in-memory adapter keeps per namespace for recovery (oldest dropped).
    #[arg(long, env = "RECOVERY_LOG_BYTES", default_value = "16777216")]
    pub recovery_log_bytes: Option<OsString>,
    /// Most bytes of saved sessions (rooms, data) kept per namespace for recovery (oldest dropped).
    #[arg(long, env = "RECOVERY_SESSION_BYTES", default_value = "67108864")]
    pub recovery_session_bytes: Option<OsString>,
    /// Socket.IO parser every client must use: default, or msgpack (socket.io-msgpack-parser 3.x).
    #[arg(long, env = "PARSER", default_value = "default")]
    pub parser: Option<OsString>,
    /// gzip/deflate polling responses of 1 KiB or more when the client accepts it: on or off.
    #[arg(long, env = "HTTP_COMPRESSION", default_value = "on")]
    pub http_compression: Option<OsString>,
    /// permessage-deflate (no context takeover, 1 KiB threshold) for WebSocket clients that offer it: on or off.
    #[arg(long, env = "PER_MESSAGE_DEFLATE", default_value = "off")]
    pub per_message_deflate: Option<OsString>,
    /// Admin UI user name; setting it (with ADMIN_PASSWORD_HASH) turns the admin namespace on.
    #[arg(long, env = "ADMIN_USERNAME")]
    pub admin_username: Option<OsString>,
    /// bcrypt hash of the admin password (make one with `sio-server admin-hash`).
    #[arg(long, env = "ADMIN_PASSWORD_HASH", hide_env_values = true)]
    pub admin_password_hash: Option<OsString>,
    /// Admin UI authentication: basic, or off (the namespace is then open to anyone; a warning is logged).
    #[arg(long, env = "ADMIN_AUTH", default_value = "basic")]
    pub admin_auth: Option<OsString>,
    /// Namespace of the admin UI protocol.
    #[arg(long, env = "ADMIN_NAMESPACE", default_value = "/admin")]
    pub admin_namespace: Option<OsString>,
    /// Admin mode: development (live socket and event updates) or production (aggregated counters only).
    #[arg(long, env = "ADMIN_MODE", default_value = "development")]
    pub admin_mode: Option<OsString>,
    /// true: the admin UI can watch but not emit, join, leave or disconnect.
    #[arg(long, env = "ADMIN_READONLY", default_value = "false")]
    pub admin_readonly: Option<OsString>,
}

/// Redis settings (both binaries): the adapter of `sio-server`, the emitter of `sio-webhook`.
#[derive(Args, Clone, Debug, Default)]
pub struct RedisSettings {
    /// none, standalone or cluster (default: none, or standalone when REDIS_URL/REDIS_HOST is set).
    #[arg(long, env = "REDIS_MODE")]
    pub redis_mode: Option<OsString>,
    /// Standalone Redis: redis://host:port, or redis://:password@host:port.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<OsString>,
    /// Standalone Redis without a URL: its host.
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<OsString>,
    /// Standalone Redis without a URL: its port.
    #[arg(long, env = "REDIS_PORT", default_value = "6379")]
    pub redis_port: Option<OsString>,
    /// Password of REDIS_HOST and of every Cluster node.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<OsString>,
    /// Cluster nodes, JSON [{"host":"…","port":6379},…]; list them all.
    #[arg(long, env = "REDIS_NODES")]
    pub redis_nodes: Option<OsString>,
    /// classic (PUBLISH/PSUBSCRIBE), sharded (SPUBLISH/SSUBSCRIBE, Redis >= 7) or streams (XADD/XREAD, recovers sessions).
    #[arg(long, env = "REDIS_ADAPTER", default_value = "classic")]
    pub redis_adapter: Option<OsString>,
    /// Channel prefix (the adapters' key option).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "socket.io")]
    pub redis_key_prefix: Option<OsString>,
    /// Redis command timeout, ms.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value = "5000")]
    pub redis_timeout_ms: Option<OsString>,
    /// Byte limit of the publish queue and of the incoming queue, each; past it the oldest go.
    #[arg(long, env = "REDIS_QUEUE_BYTES", default_value = "67108864")]
    pub redis_queue_bytes: Option<OsString>,
}

/// Which server `sio-server` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The protocol test servers on 127.0.0.1:PORT (/engine.io/ and /socket.io/).
    Conformance,
    /// The server of socket.io-client's own test suite on 127.0.0.1:PORT (3210 unless set).
    ClientSuite,
    /// Reads a password on stdin, prints its bcrypt hash for ADMIN_PASSWORD_HASH, and exits.
    AdminHash,
}

/// `sio-server`'s command line. Every setting is an environment variable; a flag overrides it.
#[derive(Debug, Parser)]
#[command(
    name = "sio-server",
    version,
    about = "A Socket.IO v4 server: the chat product, or a protocol test server (MODE).",
    after_help = "Every setting is read from its environment variable; the flag overrides it. See README.md, \"Configuration\"."
)]
pub struct ServerCli {
    /// Run a test server instead of the product.
    #[arg(value_enum)]
    pub mode: Option<Mode>,
    /// Settings both binaries read.
    #[command(flatten)]
    pub common: CommonSettings,
    /// The server's own settings.
    #[command(flatten, next_help_heading = "Server")]
    pub server: ServerSettings,
    /// Redis.
    #[command(flatten, next_help_heading = "Redis")]
    pub redis: RedisSettings,
}

/// The values given explicitly (flag or environment variable, in that order of precedence) in
/// `matches` of `cmd`, by variable name. Defaults are left out: [`Env`](super::Env) applies them.
/// A value that is not UTF-8 is an error naming its variable.
pub fn given_values(cmd: &Command, matches: &ArgMatches) -> Result<HashMap<String, String>, ConfigError> {
    use clap::parser::ValueSource;
    let mut given = HashMap::new();
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        let id = arg.get_id().as_str();
        if !matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let Some(value) = matches.get_one::<OsString>(id) else {
            continue;
        };
        let value = value.to_str().ok_or_else(|| ConfigError {
            var: TABLE.get_key_value(var).map_or("setting", |(k, _)| k.as_str()),
            value: "<hidden>".into(),
            reason: "not valid UTF-8".into(),
        })?;
        given.insert(var.to_owned(), value.to_owned());
    }
    Ok(given)
}

/// Every setting of both binaries: variable name → its default, if it has a fixed one.
static TABLE: LazyLock<HashMap<String, Option<String>>> = LazyLock::new(|| {
    let commands = [ServerCli::command(), crate::webhook::config::WebhookCli::command()];
    commands
        .iter()
        .flat_map(|cmd| cmd.get_arguments())
        .filter_map(|arg| {
            let var = arg.get_env()?.to_str()?.to_owned();
            let default = arg
                .get_default_values()
                .first()
                .and_then(|d| d.to_str())
                .map(str::to_owned);
            Some((var, default))
        })
        .collect()
});

/// The fixed default of `var`, if it is a declared setting that has one.
pub fn default_of(var: &str) -> Option<&'static str> {
    TABLE.get(var)?.as_deref()
}

/// Whether `var` is declared in the table.
pub fn is_declared(var: &str) -> bool {
    TABLE.contains_key(var)
}
