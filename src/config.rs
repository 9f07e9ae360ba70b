//! Server configuration from the environment (ARCHITECTURE.md, "Configuration"), with Node's
//! defaults. A bad value is a startup error naming the variable, never a silent default.

use crate::adapter::redis::queue::DEFAULT_QUEUE_BYTES;
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
    /// `WEBHOOK_PORT` (4000).
    pub webhook_port: WebhookPort,
    /// Redis (`REDIS_MODE` and friends); `None` runs the in-memory adapter.
    pub redis: Option<RedisConfig>,
    /// `WEBHOOK_SECRET`: HMAC key required of webhook requests when set.
    pub webhook_secret: Option<String>,
    /// `SHUTDOWN_GRACE_MS` (10000): how long a graceful shutdown waits for clients to be told and
    /// queues to be flushed.
    pub shutdown_grace: Duration,
    /// Limits against abuse.
    pub limits: Limits,
    /// `TRUSTED_PROXIES` (empty): proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
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
            .field("webhook_port", &self.webhook_port)
            // RedisTarget's Debug redacts the URLs' passwords.
            .field("redis", &self.redis)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
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

/// Reads variables through `get`, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, var: &'static str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError {
                var,
                value: v,
                reason: format!("expected {what}"),
            }),
        }
    }

    fn millis(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse(var, default, "a whole number of milliseconds")?;
        if ms == 0 {
            return Err(ConfigError {
                var,
                value: "0".into(),
                reason: "must be greater than 0".into(),
            });
        }
        Ok(Duration::from_millis(ms))
    }

    /// An on/off switch: `on`/`off`, `true`/`false`, `1`/`0`.
    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("on" | "true" | "1") => Ok(true),
            Some("off" | "false" | "0") => Ok(false),
            Some(other) => Err(bad(var, other, "expected on or off")),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&Env(|k| std::env::var(k).ok()))
    }

    /// Reads variables from `env`.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        let host = env.parse("HOST", IpAddr::from([0, 0, 0, 0]), "an IP address")?;
        let port = env.parse("PORT", 3000u16, "a port number (0-65535)")?;
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
        let path = env.raw("SOCKETIO_PATH").unwrap_or_else(|| "/socket.io".into());
        let path = path.trim_end_matches('/').to_owned();
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', '{', '}', ' ']) {
            return Err(ConfigError {
                var: "SOCKETIO_PATH",
                value: path,
                reason: "expected an absolute path such as /socket.io".into(),
            });
        }
        let defaults = EngineConfig::default();
        let engine = EngineConfig {
            ping_interval: env.millis("PING_INTERVAL", 25_000)?,
            ping_timeout: env.millis("PING_TIMEOUT", 20_000)?,
            max_payload: env.parse("MAX_HTTP_BUFFER_SIZE", defaults.max_payload, "a size in bytes")?,
            ..defaults
        };
        let connect_timeout = env.millis("CONNECT_TIMEOUT", 45_000)?;
        let log_format = match env.raw("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "LOG_FORMAT",
                    value: other.into(),
                    reason: "expected pretty or json".into(),
                });
            }
        };
        let webhook_port = match env.raw("WEBHOOK_PORT") {
            None => WebhookPort::Default(4000),
            Some(v) if v.eq_ignore_ascii_case("off") => WebhookPort::Off,
            Some(v) => WebhookPort::Explicit(v.parse().map_err(|_| ConfigError {
                var: "WEBHOOK_PORT",
                value: v,
                reason: "expected a port number or off".into(),
            })?),
        };
        let max_connections = env.parse("MAX_CONNECTIONS", 20_000, "a number of connections (0 = no limit)")?;
        // A share of the instance; none when the instance has no limit.
        let share = |divisor: usize| {
            if max_connections == 0 {
                0
            } else {
                (max_connections / divisor).max(10)
            }
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
            parser: env.parse("PARSER", crate::socketio::Parser::Default, "default or msgpack")?,
            http_compression: env.flag("HTTP_COMPRESSION", true)?,
            webhook_port,
            redis: redis_config(env)?,
            webhook_secret: webhook_secret(env)?,
            shutdown_grace: env.millis("SHUTDOWN_GRACE_MS", 10_000)?,
            limits: Limits {
                max_connections,
                handshake_rate_per_ip: env.parse("HANDSHAKE_RATE_PER_IP", 0, "handshakes per second (0 = off)")?,
                max_connections_per_ip: env.parse(
                    "MAX_CONNECTIONS_PER_IP",
                    share(10),
                    "a number of connections (0 = off)",
                )?,
                max_half_open_per_ip: env.parse(
                    "MAX_HALF_OPEN_PER_IP",
                    share(20),
                    "a number of connections (0 = off)",
                )?,
                max_rooms_per_socket: env.parse("MAX_ROOMS_PER_SOCKET", 1000, "a number of rooms")?,
                max_event_name_len: env.parse("MAX_EVENT_NAME_LENGTH", 1024, "a length in bytes")?,
                max_pending_acks: env.parse("MAX_PENDING_ACKS", 1000, "a number of acks")?,
                outbound_queue_bytes: env.parse("OUTBOUND_QUEUE_BYTES", 8 << 20, "a size in bytes")?,
                header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS", 10_000)?,
                write_timeout: env.millis("WRITE_TIMEOUT_MS", 10_000)?,
                chat_rate_messages: env.parse("CHAT_RATE_MESSAGES", 0, "messages per second (0 = off)")?,
                chat_rate_bytes: env.parse("CHAT_RATE_BYTES", 0, "bytes per second (0 = off)")?,
            },
            trusted_proxies,
        })
    }
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
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
                let port: u16 = env.parse("REDIS_PORT", 6379, "a port number")?;
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
    let kind = match env.raw("REDIS_ADAPTER").as_deref() {
        None | Some("classic") => AdapterKind::Classic,
        Some("sharded") => AdapterKind::Sharded,
        Some(other) => return Err(bad("REDIS_ADAPTER", other, "expected classic or sharded")),
    };
    Ok(Some(RedisConfig {
        target,
        timeout: env.millis("REDIS_TIMEOUT_MS", 5_000)?,
        kind,
        key_prefix: env.raw("REDIS_KEY_PREFIX").unwrap_or_else(|| "socket.io".into()),
        requests_timeout: Duration::from_millis(5_000),
        queue_bytes: match env.parse("REDIS_QUEUE_BYTES", DEFAULT_QUEUE_BYTES, "a size in bytes")? {
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(&Env(move |k| map.get(k).cloned()))
    }

    #[test]
    fn defaults_are_nodes() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.engine.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.engine.ping_timeout, Duration::from_millis(20_000));
        assert_eq!(c.engine.max_payload, 1_000_000);
        assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
        assert_eq!(c.webhook_port, WebhookPort::Default(4000));
        assert_eq!(
            (c.limits.chat_rate_messages, c.limits.chat_rate_bytes),
            (0, 0),
            "chat rate limit off"
        );
        assert!(!c.instance_id.is_empty());
    }

    #[test]
    fn redis_settings() {
        assert!(cfg(&[]).unwrap().redis.is_none());
        let r = cfg(&[("REDIS_HOST", "cache"), ("REDIS_PASSWORD", "p@ss")])
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(r.target, RedisTarget::Standalone("redis://:p%40ss@cache:6379".into()));
        assert_eq!(r.kind, AdapterKind::Classic);
        let r = cfg(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_NODES", r#"[{"host":"a","port":7000},{"host":"b","port":7001}]"#),
            ("REDIS_ADAPTER", "sharded"),
        ])
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(
            r.target,
            RedisTarget::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        assert_eq!(r.kind, AdapterKind::Sharded);
        assert!(
            cfg(&[("REDIS_MODE", "none"), ("REDIS_URL", "redis://x:1")])
                .unwrap()
                .redis
                .is_none()
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(cfg(&[("PORT", "http")]).unwrap_err().var, "PORT");
        assert_eq!(cfg(&[("PING_INTERVAL", "0")]).unwrap_err().var, "PING_INTERVAL");
        assert_eq!(cfg(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
        assert_eq!(cfg(&[("PARSER", "json")]).unwrap_err().var, "PARSER");
        assert_eq!(
            cfg(&[("HTTP_COMPRESSION", "maybe")]).unwrap_err().var,
            "HTTP_COMPRESSION"
        );
        assert_eq!(
            cfg(&[("PARSER", "msgpack")]).unwrap().parser,
            crate::socketio::Parser::Msgpack
        );
        assert!(!cfg(&[("HTTP_COMPRESSION", "off")]).unwrap().http_compression);
        assert!(cfg(&[]).unwrap().http_compression);
        assert_eq!(cfg(&[("WEBHOOK_PORT", "four")]).unwrap_err().var, "WEBHOOK_PORT");
        assert_eq!(cfg(&[("INSTANCE_ID", "a b")]).unwrap_err().var, "INSTANCE_ID");
        let e = cfg(&[("MAX_HTTP_BUFFER_SIZE", "-1")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid MAX_HTTP_BUFFER_SIZE="-1": expected a size in bytes"#
        );
        assert_eq!(cfg(&[("WEBHOOK_PORT", "off")]).unwrap().webhook_port, WebhookPort::Off);
        assert_eq!(cfg(&[("WEBHOOK_SECRET", "short")]).unwrap_err().var, "WEBHOOK_SECRET");
        assert!(
            !cfg(&[("WEBHOOK_SECRET", "short")])
                .unwrap_err()
                .to_string()
                .contains("short")
        );
        assert_eq!(
            cfg(&[("WEBHOOK_SECRET", &"k".repeat(32))])
                .unwrap()
                .webhook_secret
                .map(|s| s.len()),
            Some(32)
        );
        assert_eq!(cfg(&[("SOCKETIO_PATH", "io")]).unwrap_err().var, "SOCKETIO_PATH");
        assert_eq!(cfg(&[("REDIS_MODE", "sentinel")]).unwrap_err().var, "REDIS_MODE");
        assert_eq!(cfg(&[("REDIS_MODE", "cluster")]).unwrap_err().var, "REDIS_NODES");
        assert_eq!(
            cfg(&[("REDIS_MODE", "cluster"), ("REDIS_NODES", "[{\"host\":\"a\"}]")])
                .unwrap_err()
                .var,
            "REDIS_NODES"
        );
        assert_eq!(cfg(&[("REDIS_URL", "http://x")]).unwrap_err().var, "REDIS_URL");
        let e = cfg(&[("REDIS_URL", "http://:hunter2@x")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            cfg(&[("REDIS_HOST", "h"), ("REDIS_QUEUE_BYTES", "0")]).unwrap_err().var,
            "REDIS_QUEUE_BYTES"
        );
        let r = cfg(&[
            ("REDIS_HOST", "h"),
            ("REDIS_PASSWORD", "hunter2"),
            ("REDIS_QUEUE_BYTES", "1048576"),
        ])
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(r.queue_bytes, 1 << 20);
        assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
        let secret = "hunter3-hunter3-hunter3-hunter3-hunter3";
        let c = cfg(&[("REDIS_URL", "redis://:hunter2@h:1"), ("WEBHOOK_SECRET", secret)]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(secret) && shown.contains("h:1"),
            "{shown}"
        );
        assert_eq!(
            cfg(&[("REDIS_HOST", "h"), ("REDIS_ADAPTER", "x")]).unwrap_err().var,
            "REDIS_ADAPTER"
        );
        assert_eq!(
            cfg(&[("REDIS_HOST", "h"), ("REDIS_PORT", "x")]).unwrap_err().var,
            "REDIS_PORT"
        );
        assert_eq!(cfg(&[("SOCKETIO_PATH", "/chat/io/")]).unwrap().path, "/chat/io");
        assert_eq!(
            cfg(&[("CHAT_RATE_MESSAGES", "-1")]).unwrap_err().var,
            "CHAT_RATE_MESSAGES"
        );
        assert_eq!(cfg(&[("CHAT_RATE_BYTES", "1k")]).unwrap_err().var, "CHAT_RATE_BYTES");
    }

    #[test]
    fn per_address_limits_derive_from_max_connections() {
        let l = cfg(&[]).unwrap().limits;
        assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (2_000, 1_000));
        let l = cfg(&[("MAX_CONNECTIONS", "300")]).unwrap().limits;
        assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (30, 15));
        let l = cfg(&[("MAX_CONNECTIONS", "3")]).unwrap().limits;
        assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (10, 10));
        let l = cfg(&[("MAX_CONNECTIONS", "0")]).unwrap().limits;
        assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (0, 0));
        let l = cfg(&[("MAX_CONNECTIONS_PER_IP", "0"), ("MAX_HALF_OPEN_PER_IP", "7")])
            .unwrap()
            .limits;
        assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (0, 7));
        assert_eq!(
            cfg(&[("MAX_CONNECTIONS_PER_IP", "-1")]).unwrap_err().var,
            "MAX_CONNECTIONS_PER_IP"
        );
        assert_eq!(
            cfg(&[("MAX_HALF_OPEN_PER_IP", "x")]).unwrap_err().var,
            "MAX_HALF_OPEN_PER_IP"
        );
    }

    #[test]
    fn trusted_proxies() {
        assert!(cfg(&[]).unwrap().trusted_proxies.is_empty());
        let t = cfg(&[("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")])
            .unwrap()
            .trusted_proxies;
        assert!(t.contains("10.9.8.7".parse().unwrap()));
        let e = cfg(&[("TRUSTED_PROXIES", "10.0.0.0/8,nginx")]).unwrap_err();
        assert_eq!(e.var, "TRUSTED_PROXIES");
        assert!(e.reason.contains("nginx"), "{e}");
    }
}
