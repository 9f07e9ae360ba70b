//! Server configuration from the environment and flags (ARCHITECTURE.md, "Configuration"), with
//! Node's defaults. A bad value is a startup error naming the variable, never a silent default.
//! The settings, their flags, defaults and help lines are declared once, in [`settings`] (its
//! doc says how to add one); this module parses and checks their values into a [`Config`].

pub mod settings;

pub use settings::{Mode, ServerCli};

use crate::adapter::redis::service::redact;
use crate::adapter::redis::{AdapterKind, RedisConfig, RedisTarget};
use crate::engineio::EngineConfig;
use crate::transport::TrustedProxies;
use std::net::IpAddr;
use std::time::Duration;
use thiserror::Error;

/// A configuration value that could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the in-process webhook listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookPort {
    /// Disabled (`WEBHOOK_PORT=off`).
    Off,
    /// The default port 4000; if taken, the server warns and runs without the webhook.
    Default(u16),
    /// A port set explicitly; failing to bind it is an error.
    Explicit(u16),
}

/// Everything `sio-server` reads from its environment. Its `Debug` hides the secrets.
#[derive(Clone)]
pub struct Config {
    /// `HOST` (0.0.0.0).
    pub host: IpAddr,
    /// `PORT` (3000).
    pub port: u16,
    /// `INSTANCE_ID` (hostname-pid).
    pub instance_id: String,
    /// `SOCKETIO_PATH` (`/socket.io`): where the Engine.IO endpoint and the client bundle live.
    pub path: String,
    /// `CORS_ORIGIN`: `*`, or a comma-separated list of origins. Unset: no CORS headers.
    pub cors_origin: Option<String>,
    /// Engine.IO settings (`PING_INTERVAL`, `PING_TIMEOUT`, `MAX_HTTP_BUFFER_SIZE`).
    pub engine: EngineConfig,
    /// `CONNECT_TIMEOUT` (45000 ms).
    pub connect_timeout: Duration,
    /// `LOG_FORMAT` (pretty).
    pub log_format: LogFormat,
    /// `PARSER` (default): the Socket.IO parser every client must use (`default` or `msgpack`).
    pub parser: crate::socketio::Parser,
    /// `HTTP_COMPRESSION` (on): gzip/deflate polling responses of 1 KiB or more when the client accepts it.
    pub http_compression: bool,
    /// `PER_MESSAGE_DEFLATE` (off): permessage-deflate for WebSocket clients that offer it.
    pub per_message_deflate: bool,
    /// `WEBHOOK_PORT` (4000).
    pub webhook_port: WebhookPort,
    /// Redis (`REDIS_MODE` and friends); `None` runs the in-memory adapter.
    pub redis: Option<RedisConfig>,
    /// `WEBHOOK_SECRET`: HMAC key required of webhook requests when set.
    pub webhook_secret: Option<String>,
    /// `SHUTDOWN_GRACE_MS` (10000): how long a graceful shutdown waits for clients to be told and
    /// queues to be flushed.
    pub shutdown_grace: Duration,
    /// `RECOVERY` (true): connection state recovery (in-memory adapter; needs a recovering adapter with Redis).
    pub recovery: bool,
    /// `RECOVERY_MAX_DISCONNECTION_MS` (120000): how long a disconnected session stays restorable.
    pub recovery_max_disconnection: Duration,
    /// `RECOVERY_LOG_BYTES` (16 MiB): most bytes of packets kept per namespace for recovery.
    pub recovery_log_bytes: usize,
    /// `RECOVERY_SESSION_BYTES` (64 MiB): most bytes of saved sessions (rooms, data) per namespace.
    pub recovery_session_bytes: usize,
    /// Limits against abuse.
    pub limits: Limits,
    /// `TRUSTED_PROXIES` (empty): proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// The Socket.IO Admin UI namespace (`ADMIN_*`); `None` when off (the default).
    pub admin: Option<AdminSettings>,
}

/// The Admin UI settings (`ADMIN_USERNAME`, `ADMIN_PASSWORD_HASH`, `ADMIN_AUTH`,
/// `ADMIN_NAMESPACE`, `ADMIN_MODE`, `ADMIN_READONLY`).
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// The user; `None` only with `ADMIN_AUTH=off`.
    pub credentials: Option<crate::admin::Credentials>,
    /// `ADMIN_NAMESPACE` (`/admin`).
    pub namespace: String,
    /// `ADMIN_MODE` (`development`, as Node's default; or `production`).
    pub mode: crate::admin::AdminMode,
    /// `ADMIN_READONLY` (false): no `emit`/`join`/`leave`/`_disconnect` commands.
    pub readonly: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("instance_id", &self.instance_id)
            .field("path", &self.path)
            .field("cors_origin", &self.cors_origin)
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field("log_format", &self.log_format)
            .field("parser", &self.parser)
            .field("http_compression", &self.http_compression)
            .field("per_message_deflate", &self.per_message_deflate)
            .field("webhook_port", &self.webhook_port)
            // RedisTarget's Debug redacts the URLs' passwords.
            .field("redis", &self.redis)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("shutdown_grace", &self.shutdown_grace)
            .field("recovery", &self.recovery)
            .field("recovery_max_disconnection", &self.recovery_max_disconnection)
            .field("recovery_log_bytes", &self.recovery_log_bytes)
            .field("recovery_session_bytes", &self.recovery_session_bytes)
            .field("limits", &self.limits)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Limits against abuse; each has an environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_CONNECTIONS` (20000; 0 = none).
    pub max_connections: usize,
    /// `HANDSHAKE_RATE_PER_IP` per second (0 = off, the default).
    pub handshake_rate_per_ip: u32,
    /// `MAX_CONNECTIONS_PER_IP` (a tenth of `MAX_CONNECTIONS`, at least 10; 0 = off): what one
    /// address may hold once the instance is half full.
    pub max_connections_per_ip: usize,
    /// `MAX_HALF_OPEN_PER_IP` (a twentieth of `MAX_CONNECTIONS`, at least 10; 0 = off): sessions
    /// one address may hold that have not sent a message yet.
    pub max_half_open_per_ip: usize,
    /// `MAX_ROOMS_PER_SOCKET` (1000).
    pub max_rooms_per_socket: usize,
    /// `MAX_EVENT_NAME_LENGTH` in bytes (1024).
    pub max_event_name_len: usize,
    /// `MAX_PENDING_ACKS` per socket (1000).
    pub max_pending_acks: usize,
    /// `OUTBOUND_QUEUE_BYTES` per connection (8 MiB): the soft limit; the hard limit is 3x.
    pub outbound_queue_bytes: usize,
    /// `HEADER_READ_TIMEOUT_MS` (10000): how long a client may take to send request headers.
    pub header_read_timeout: Duration,
    /// `WRITE_TIMEOUT_MS` (10000): how long a write may wait for a peer that reads nothing before
    /// its connection is reset.
    pub write_timeout: Duration,
    /// `CHAT_RATE_MESSAGES` (0 = off): chat messages per second per socket, burst 2 s worth.
    pub chat_rate_messages: u32,
    /// `CHAT_RATE_BYTES` (0 = off): bytes of chat messages per second per socket, burst 2 s worth.
    pub chat_rate_bytes: u64,
}

/// Reads the values given for variables through `get` (the environment, flags, or a test's map);
/// a variable given no value (or an empty one) takes its default from the [`settings`] table.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value given for `var`, trimmed; `None` when unset or empty.
    pub(crate) fn raw(&self, var: &'static str) -> Option<String> {
        debug_assert!(settings::is_declared(var), "{var} is not declared in config::settings");
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The value given for `var`, else its default from the table.
    pub(crate) fn value(&self, var: &'static str) -> Option<String> {
        self.raw(var).or_else(|| settings::default_of(var).map(str::to_owned))
    }

    /// `var` parsed as `what`, its default when not given.
    pub(crate) fn parse<T: std::str::FromStr>(&self, var: &'static str, what: &str) -> Result<T, ConfigError> {
        let v = self.value(var).ok_or_else(|| bad(var, "", "required"))?;
        v.parse().map_err(|_| ConfigError {
            var,
            value: v,
            reason: format!("expected {what}"),
        })
    }

    /// `var` as a whole number of milliseconds, greater than 0.
    pub(crate) fn millis(&self, var: &'static str) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse(var, "a whole number of milliseconds")?;
        if ms == 0 {
            return Err(ConfigError {
                var,
                value: "0".into(),
                reason: "must be greater than 0".into(),
            });
        }
        Ok(Duration::from_millis(ms))
    }

    /// `var` as a size in bytes, greater than 0.
    pub(crate) fn bytes(&self, var: &'static str) -> Result<usize, ConfigError> {
        let n: usize = self.parse(var, "a size in bytes")?;
        if n == 0 {
            return Err(bad(var, "0", "must be greater than 0"));
        }
        Ok(n)
    }

    /// Every yes/no setting: `true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`, in any case; its
    /// default when not given.
    pub(crate) fn flag(&self, var: &'static str) -> Result<bool, ConfigError> {
        let v = self.value(var).ok_or_else(|| bad(var, "", "required"))?;
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(bad(var, &v, "expected true or false (also on/off, yes/no, 1/0)")),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&Env(|k| std::env::var(k).ok()))
    }

    /// Reads the command line of `sio-server` and the process environment; exits on `--help`,
    /// `--version` or an unknown flag (status 2). `client-suite` listens on 3210 unless PORT is given.
    pub fn from_command_line() -> Result<(Option<Mode>, Config), ConfigError> {
        use clap::CommandFactory;
        let cmd = ServerCli::command();
        let matches = cmd.clone().get_matches();
        Config::from_matches(&cmd, &matches)
    }

    /// Reads the flags and environment variables clap found in `matches` of `cmd`.
    fn from_matches(cmd: &clap::Command, matches: &clap::ArgMatches) -> Result<(Option<Mode>, Config), ConfigError> {
        use clap::FromArgMatches;
        let cli = ServerCli::from_arg_matches(matches).unwrap_or_else(|e| e.exit());
        let mut given = settings::given_values(cmd, matches)?;
        if cli.mode == Some(Mode::ClientSuite) {
            // The client's suite connects to localhost:3210; PORT (or --port) moves it.
            given
                .entry("PORT".into())
                .or_insert_with(|| crate::client_suite::DEFAULT_PORT.to_string());
        }
        let config = Config::from_vars(&Env(move |k: &str| given.get(k).cloned()))?;
        Ok((cli.mode, config))
    }

    /// Reads variables from `env`.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        let host = env.parse("HOST", "an IP address")?;
        let port = env.parse("PORT", "a port number (0-65535)")?;
        let instance_id = env.raw("INSTANCE_ID").unwrap_or_else(default_instance_id);
        if instance_id.len() > 64
            || instance_id
                .chars()
                .any(|c| c.is_control() || c == '.' || c.is_whitespace())
        {
            return Err(ConfigError {
                var: "INSTANCE_ID",
                value: instance_id,
                reason: "at most 64 characters, no spaces, dots or control characters".into(),
            });
        }
        let path = env.value("SOCKETIO_PATH").unwrap_or_default();
        let path = path.trim_end_matches('/').to_owned();
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', '{', '}', ' ']) {
            return Err(ConfigError {
                var: "SOCKETIO_PATH",
                value: path,
                reason: "expected an absolute path such as /socket.io".into(),
            });
        }
        let engine = EngineConfig {
            ping_interval: env.millis("PING_INTERVAL")?,
            ping_timeout: env.millis("PING_TIMEOUT")?,
            max_payload: env.parse("MAX_HTTP_BUFFER_SIZE", "a size in bytes")?,
            ..EngineConfig::default()
        };
        let connect_timeout = env.millis("CONNECT_TIMEOUT")?;
        let log_format = match env.value("LOG_FORMAT").as_deref() {
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            other => {
                return Err(ConfigError {
                    var: "LOG_FORMAT",
                    value: other.unwrap_or_default().into(),
                    reason: "expected pretty or json".into(),
                });
            }
        };
        let webhook_port = match env.raw("WEBHOOK_PORT") {
            None => WebhookPort::Default(env.parse("WEBHOOK_PORT", "a port number or off")?),
            Some(v) if v.eq_ignore_ascii_case("off") => WebhookPort::Off,
            Some(v) => WebhookPort::Explicit(v.parse().map_err(|_| ConfigError {
                var: "WEBHOOK_PORT",
                value: v,
                reason: "expected a port number or off".into(),
            })?),
        };
        let max_connections: usize = env.parse("MAX_CONNECTIONS", "a number of connections (0 = no limit)")?;
        // A share of the instance; none when the instance has no limit.
        let share = |divisor: usize| {
            if max_connections == 0 {
                0
            } else {
                (max_connections / divisor).max(10)
            }
        };
        // Derived defaults: not in the table.
        let derived = |var: &'static str, default: usize| match env.raw(var) {
            None => Ok(default),
            Some(_) => env.parse(var, "a number of connections (0 = off)"),
        };
        let trusted_proxies = match env.raw("TRUSTED_PROXIES") {
            None => TrustedProxies::default(),
            Some(v) => TrustedProxies::parse(&v).map_err(|reason| bad("TRUSTED_PROXIES", &v, &reason))?,
        };
        Ok(Config {
            host,
            port,
            instance_id,
            path,
            cors_origin: env.raw("CORS_ORIGIN"),
            engine,
            connect_timeout,
            log_format,
            parser: env.parse("PARSER", "default or msgpack")?,
            http_compression: env.flag("HTTP_COMPRESSION")?,
            per_message_deflate: env.flag("PER_MESSAGE_DEFLATE")?,
            webhook_port,
            redis: redis_config(env)?,
            webhook_secret: webhook_secret(env)?,
            shutdown_grace: env.millis("SHUTDOWN_GRACE_MS")?,
            recovery: env.flag("RECOVERY")?,
            recovery_max_disconnection: env.millis("RECOVERY_MAX_DISCONNECTION_MS")?,
            recovery_log_bytes: env.bytes("RECOVERY_LOG_BYTES")?,
            recovery_session_bytes: env.bytes("RECOVERY_SESSION_BYTES")?,
            limits: Limits {
                max_connections,
                handshake_rate_per_ip: env.parse("HANDSHAKE_RATE_PER_IP", "handshakes per second (0 = off)")?,
                max_connections_per_ip: derived("MAX_CONNECTIONS_PER_IP", share(10))?,
                max_half_open_per_ip: derived("MAX_HALF_OPEN_PER_IP", share(20))?,
                max_rooms_per_socket: env.parse("MAX_ROOMS_PER_SOCKET", "a number of rooms")?,
                max_event_name_len: env.parse("MAX_EVENT_NAME_LENGTH", "a length in bytes")?,
                max_pending_acks: env.parse("MAX_PENDING_ACKS", "a number of acks")?,
                outbound_queue_bytes: env.parse("OUTBOUND_QUEUE_BYTES", "a size in bytes")?,
                header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS")?,
                write_timeout: env.millis("WRITE_TIMEOUT_MS")?,
                chat_rate_messages: env.parse("CHAT_RATE_MESSAGES", "messages per second (0 = off)")?,
                chat_rate_bytes: env.parse("CHAT_RATE_BYTES", "bytes per second (0 = off)")?,
            },
            trusted_proxies,
            admin: admin_settings(env)?,
        })
    }
}

/// The `ADMIN_*` block: the namespace exists only with `ADMIN_USERNAME` (and its bcrypt hash), or
/// with `ADMIN_AUTH=off` set explicitly.
fn admin_settings<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<AdminSettings>, ConfigError> {
    // Every admin variable is read and checked up front, even when the admin is off: a bad value
    // is always a startup error.
    let namespace = env.raw("ADMIN_NAMESPACE").unwrap_or_else(|| "/admin".into());
    if !namespace.starts_with('/')
        || namespace.len() < 2
        || namespace.len() > 256
        || namespace.contains([',', ' ', '?', '#'])
    {
        return Err(bad(
            "ADMIN_NAMESPACE",
            &namespace,
            "expected a namespace name such as /admin (not /)",
        ));
    }
    let mode = match env.raw("ADMIN_MODE").map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("development") => crate::admin::AdminMode::Development,
        Some("production") => crate::admin::AdminMode::Production,
        Some(v) => return Err(bad("ADMIN_MODE", v, "expected development or production")),
    };
    let readonly = env.flag("ADMIN_READONLY")?;
    let auth_off = match env.raw("ADMIN_AUTH").map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("basic") => false,
        Some("off") => true,
        Some(v) => return Err(bad("ADMIN_AUTH", v, "expected basic or off")),
    };
    let username = env.raw("ADMIN_USERNAME");
    let hash = env.raw("ADMIN_PASSWORD_HASH");
    let credentials = match (username, hash, auth_off) {
        (None, None, false) => return Ok(None),
        (None, None, true) => None,
        (Some(u), _, true) => return Err(bad("ADMIN_AUTH", "off", &format!("conflicts with ADMIN_USERNAME={u}"))),
        (None, Some(_), _) => {
            return Err(bad("ADMIN_USERNAME", "", "required with ADMIN_PASSWORD_HASH"));
        }
        (Some(_), None, false) => {
            return Err(bad(
                "ADMIN_PASSWORD_HASH",
                "",
                "required with ADMIN_USERNAME (a bcrypt hash: `sio-server admin-hash`)",
            ));
        }
        (Some(username), Some(password_hash), false) => {
            if !crate::admin::auth::is_bcrypt_hash(&password_hash) {
                return Err(bad(
                    "ADMIN_PASSWORD_HASH",
                    "<hidden>",
                    "not a bcrypt hash ($2b$…; make one with `sio-server admin-hash`)",
                ));
            }
            Some(crate::admin::Credentials {
                username,
                password_hash,
            })
        }
    };
    Ok(Some(AdminSettings {
        credentials,
        namespace,
        mode,
        readonly,
    }))
}

/// `WEBHOOK_SECRET`: unset or empty for none; otherwise at least 32 bytes (the value is never echoed).
fn webhook_secret<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<String>, ConfigError> {
    let secret = (env.0)("WEBHOOK_SECRET").filter(|s| !s.is_empty());
    match &secret {
        Some(s) if s.len() < crate::webhook::signature::MIN_SECRET_LEN => Err(ConfigError {
            var: "WEBHOOK_SECRET",
            value: format!("<{} bytes, hidden>", s.len()),
            reason: "must be at least 32 bytes (e.g. `openssl rand -hex 32`)".into(),
        }),
        _ => Ok(secret),
    }
}

fn bad(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        var,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Percent-encodes a password for a `redis://` URL.
fn url_escape(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

fn redis_config<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<RedisConfig>, ConfigError> {
    let url = env.raw("REDIS_URL");
    let host = env.raw("REDIS_HOST");
    let mode = match env.raw("REDIS_MODE").as_deref() {
        None if url.is_some() || host.is_some() => "standalone".to_owned(),
        None => "none".to_owned(),
        Some(m) => m.to_ascii_lowercase(),
    };
    let password = env.raw("REDIS_PASSWORD");
    let auth = password
        .as_deref()
        .map(|p| format!(":{}@", url_escape(p)))
        .unwrap_or_default();
    let target = match mode.as_str() {
        "none" => return Ok(None),
        "standalone" => match (url, host) {
            (Some(u), _) => {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    return Err(bad("REDIS_URL", &redact(&u), "expected redis://[:password@]host:port"));
                }
                RedisTarget::Standalone(u)
            }
            (None, Some(h)) => {
                let port: u16 = env.parse("REDIS_PORT", "a port number")?;
                RedisTarget::Standalone(format!("redis://{auth}{h}:{port}"))
            }
            (None, None) => return Err(bad("REDIS_MODE", "standalone", "needs REDIS_URL or REDIS_HOST")),
        },
        "cluster" => {
            let raw = env
                .raw("REDIS_NODES")
                .ok_or_else(|| bad("REDIS_NODES", "", "required with REDIS_MODE=cluster"))?;
            let nodes: Vec<serde_json::Value> = serde_json::from_str(&raw)
                .map_err(|_| bad("REDIS_NODES", &raw, "expected JSON [{\"host\":\"…\",\"port\":6379},…]"))?;
            let mut urls = Vec::new();
            for n in &nodes {
                let h = n.get("host").and_then(|h| h.as_str()).filter(|h| !h.is_empty());
                let p = n
                    .get("port")
                    .and_then(|p| p.as_u64())
                    .filter(|p| (1..=65535).contains(p));
                match (h, p) {
                    (Some(h), Some(p)) => urls.push(format!("redis://{auth}{h}:{p}")),
                    _ => return Err(bad("REDIS_NODES", &raw, "every node needs a host and a port (1-65535)")),
                }
            }
            if urls.is_empty() {
                return Err(bad("REDIS_NODES", &raw, "needs at least one node"));
            }
            RedisTarget::Cluster(urls)
        }
        other => return Err(bad("REDIS_MODE", other, "expected none, standalone or cluster")),
    };
    let kind = match env.value("REDIS_ADAPTER").as_deref() {
        Some("classic") => AdapterKind::Classic,
        Some("sharded") => AdapterKind::Sharded,
        Some("streams") => AdapterKind::Streams,
        other => {
            return Err(bad(
                "REDIS_ADAPTER",
                other.unwrap_or(""),
                "expected classic, sharded or streams",
            ));
        }
    };
    Ok(Some(RedisConfig {
        target,
        timeout: env.millis("REDIS_TIMEOUT_MS")?,
        kind,
        key_prefix: env.value("REDIS_KEY_PREFIX").unwrap_or_default(),
        requests_timeout: Duration::from_millis(5_000),
        queue_bytes: match env.parse("REDIS_QUEUE_BYTES", "a size in bytes")? {
            0 => return Err(bad("REDIS_QUEUE_BYTES", "0", "must be greater than 0")),
            n => n,
        },
    }))
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().replace('.', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sio".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests;
