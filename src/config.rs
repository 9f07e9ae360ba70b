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
            webhook_port,
            redis: redis_config(env)?,
            webhook_secret: webhook_secret(env)?,
            shutdown_grace: env.millis("SHUTDOWN_GRACE_MS")?,
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
        other => return Err(bad("REDIS_ADAPTER", other.unwrap_or(""), "expected classic or sharded")),
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
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

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

    /// Runs `from_vars` in a few configurations, recording every variable it asks for.
    fn variables_read<T>(from_vars: impl Fn(&Env<&dyn Fn(&str) -> Option<String>>) -> T) -> BTreeSet<String> {
        let read = RefCell::new(BTreeSet::new());
        let cases: [&[(&str, &str)]; 4] = [
            &[],
            &[("REDIS_HOST", "h"), ("WEBHOOK_MODE", "redis")],
            &[("REDIS_URL", "redis://h:1")],
            &[("REDIS_MODE", "cluster"), ("REDIS_NODES", r#"[{"host":"a","port":1}]"#)],
        ];
        for vars in cases {
            let get = |k: &str| {
                read.borrow_mut().insert(k.to_owned());
                vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
            };
            from_vars(&Env(&get));
        }
        read.into_inner()
    }

    fn help_of(cmd: &mut clap::Command) -> String {
        cmd.render_long_help().to_string()
    }

    #[test]
    fn every_setting_read_is_in_the_help() {
        use clap::CommandFactory;
        let read = variables_read(|env| Config::from_vars(env).map(|_| ()));
        let help = help_of(&mut ServerCli::command());
        for var in &read {
            let flag = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
            assert!(
                help.contains(&format!("[env: {var}")),
                "{var} missing from --help:\n{help}"
            );
            assert!(help.contains(&flag), "{flag} missing from --help");
        }
        // And nothing is declared that the server does not read.
        for arg in ServerCli::command().get_arguments() {
            if let Some(var) = arg.get_env().and_then(|v| v.to_str()) {
                assert!(read.contains(var), "{var} is declared but never read");
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(!help.trim().is_empty(), "{var} has no help line");
            }
        }
        assert!(read.len() >= 36, "{read:?}");
    }

    #[test]
    fn every_webhook_setting_read_is_in_its_help() {
        use crate::webhook::config::{WebhookCli, WebhookConfig};
        use clap::{Args, CommandFactory};
        let read = variables_read(|env| WebhookConfig::from_vars(env).map(|_| ()));
        let server_only: BTreeSet<String> = settings::ServerSettings::augment_args(clap::Command::new("x"))
            .get_arguments()
            .filter_map(|a| a.get_env()?.to_str().map(str::to_owned))
            .collect();
        let help = help_of(&mut WebhookCli::command());
        for var in read.difference(&server_only) {
            assert!(
                help.contains(&format!("[env: {var}")),
                "{var} missing from --help:\n{help}"
            );
        }
        for var in [
            "WEBHOOK_MODE",
            "SOCKETIO_URL",
            "WEBHOOK_TIMEOUT_MS",
            "WEBHOOK_SECRET",
            "REDIS_URL",
        ] {
            assert!(help.contains(&format!("[env: {var}")), "{var}");
        }
        assert!(
            !help.contains("[env: PING_INTERVAL"),
            "server-only settings stay out of sio-webhook --help"
        );
    }

    #[test]
    fn table_defaults_match_the_types_they_configure() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.engine.max_payload, EngineConfig::default().max_payload);
        assert_eq!(c.limits.outbound_queue_bytes, 8 << 20);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        let r = cfg(&[("REDIS_HOST", "h")]).unwrap().redis.unwrap();
        assert_eq!(r.queue_bytes, crate::adapter::redis::queue::DEFAULT_QUEUE_BYTES);
        assert_eq!(
            (r.key_prefix.as_str(), r.timeout),
            ("socket.io", Duration::from_secs(5))
        );
        // An empty value is no value: the default applies (docker compose passes `VAR=`).
        let c = cfg(&[("PORT", ""), ("LOG_FORMAT", " "), ("SOCKETIO_PATH", "")]).unwrap();
        assert_eq!(
            (c.port, c.log_format, c.path.as_str()),
            (3000, LogFormat::Pretty, "/socket.io")
        );
    }

    fn from_args(args: &[&str]) -> Result<(Option<Mode>, Config), ConfigError> {
        use clap::CommandFactory;
        let cmd = ServerCli::command();
        let matches = cmd.clone().try_get_matches_from(args).unwrap();
        Config::from_matches(&cmd, &matches)
    }

    #[test]
    fn command_line() {
        use clap::CommandFactory;
        let (mode, c) = from_args(&["sio-server", "--port", "3001", "--ping-interval=100"]).unwrap();
        assert_eq!(
            (mode, c.port, c.engine.ping_interval),
            (None, 3001, Duration::from_millis(100))
        );
        let (mode, c) = from_args(&["sio-server", "client-suite", "--webhook-port", "off"]).unwrap();
        assert_eq!((mode, c.webhook_port), (Some(Mode::ClientSuite), WebhookPort::Off));
        if std::env::var_os("PORT").is_none() {
            assert_eq!(c.port, crate::client_suite::DEFAULT_PORT);
        }
        let (mode, c) = from_args(&["sio-server", "--port=4100", "client-suite"]).unwrap();
        assert_eq!((mode, c.port), (Some(Mode::ClientSuite), 4100));
        assert_eq!(
            from_args(&["sio-server", "conformance"]).unwrap().0,
            Some(Mode::Conformance)
        );
        // A bad flag value names its variable, as the environment's does.
        assert_eq!(
            from_args(&["sio-server", "--ping-interval", "0"]).unwrap_err().var,
            "PING_INTERVAL"
        );
        assert_eq!(
            from_args(&["sio-server", "--redis-mode", "x"]).unwrap_err().var,
            "REDIS_MODE"
        );
        let parse = |args: &[&str]| ServerCli::command().try_get_matches_from(args).unwrap_err();
        let e = parse(&["sio-server", "--version"]);
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(e.to_string(), format!("sio-server {}\n", env!("CARGO_PKG_VERSION")));
        assert_eq!(
            parse(&["sio-server", "--help"]).kind(),
            clap::error::ErrorKind::DisplayHelp
        );
        let e = parse(&["sio-server", "--no-such-setting", "1"]);
        assert_eq!((e.kind(), e.exit_code()), (clap::error::ErrorKind::UnknownArgument, 2));
        let e = parse(&["sio-server", "serve"]);
        assert_eq!((e.kind(), e.exit_code()), (clap::error::ErrorKind::InvalidValue, 2));
    }

    #[test]
    fn a_value_that_is_not_utf8_names_its_variable() {
        use clap::CommandFactory;
        use std::os::unix::ffi::OsStringExt;
        let cmd = ServerCli::command();
        let args = [
            std::ffi::OsString::from("sio-server"),
            "--webhook-secret".into(),
            std::ffi::OsString::from_vec(b"hunter2\xff".to_vec()),
        ];
        let matches = cmd.clone().try_get_matches_from(args).unwrap();
        let e = Config::from_matches(&cmd, &matches).unwrap_err();
        assert_eq!(e.var, "WEBHOOK_SECRET");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn help_hides_secret_values() {
        use clap::CommandFactory;
        for name in ["WEBHOOK_SECRET", "REDIS_URL", "REDIS_PASSWORD"] {
            let cmd = ServerCli::command();
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_env() == Some(name.as_ref()))
                .unwrap();
            assert!(arg.is_hide_env_values_set(), "{name}");
        }
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
