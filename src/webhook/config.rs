//! Configuration of the standalone `sio-webhook` (the in-process webhook uses `sio-server`'s):
//! its command line ([`WebhookCli`], declared like `config::settings`) and its checked values.

use crate::adapter::redis::RedisConfig;
use crate::config::settings::{CommonSettings, RedisSettings};
use crate::config::{Config, ConfigError, Env, LogFormat, WebhookPort};
use clap::{Args, Parser};
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

/// Settings of `sio-webhook` only.
#[derive(Args, Clone, Debug, Default)]
pub struct WebhookSettings {
    /// How to deliver: socketio (one connection to SOCKETIO_URL) or redis (the REDIS_* settings).
    #[arg(long, env = "WEBHOOK_MODE", default_value = "socketio")]
    pub webhook_mode: Option<OsString>,
    /// The server (or nginx) to deliver to with WEBHOOK_MODE=socketio.
    #[arg(long, env = "SOCKETIO_URL", default_value = "http://127.0.0.1:3000")]
    pub socketio_url: Option<OsString>,
    /// Milliseconds before a delivery is answered 503 (not sent) or 504 (sent, not acknowledged).
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value = "5000")]
    pub webhook_timeout_ms: Option<OsString>,
}

/// `sio-webhook`'s command line. Every setting is an environment variable; a flag overrides it.
#[derive(Debug, Parser)]
#[command(
    name = "sio-webhook",
    version,
    about = "The standalone webhook: POST /webhook delivers chat messages through Socket.IO or Redis.",
    after_help = "Every setting is read from its environment variable; the flag overrides it. See README.md, \"Webhook\"."
)]
pub struct WebhookCli {
    /// Settings both binaries read.
    #[command(flatten)]
    pub common: CommonSettings,
    /// Delivery.
    #[command(flatten, next_help_heading = "Delivery")]
    pub webhook: WebhookSettings,
    /// Redis (WEBHOOK_MODE=redis).
    #[command(flatten, next_help_heading = "Redis")]
    pub redis: RedisSettings,
}

/// How the standalone webhook delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookMode {
    /// One persistent Socket.IO client connection to this URL.
    SocketIo(String),
    /// Straight into Redis, like `@socket.io/redis-emitter`.
    Redis(RedisConfig),
}

/// Everything `sio-webhook` reads from its environment (its `Debug` hides the secret).
#[derive(Clone)]
pub struct WebhookConfig {
    /// `HOST` (0.0.0.0).
    pub host: IpAddr,
    /// `WEBHOOK_PORT` (4000).
    pub port: u16,
    /// `WEBHOOK_SECRET`.
    pub secret: Option<String>,
    /// `WEBHOOK_MODE` (`socketio`, with `SOCKETIO_URL`; or `redis`, with the `REDIS_*` variables).
    pub mode: WebhookMode,
    /// `WEBHOOK_TIMEOUT_MS` (5000): how long to wait for a delivery before answering 503.
    pub timeout: Duration,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `HEADER_READ_TIMEOUT_MS` (10000): for request headers, and again for the body.
    pub header_read_timeout: Duration,
    /// `WRITE_TIMEOUT_MS`: how long a write may wait for a peer that reads nothing.
    pub write_timeout: Duration,
    /// `SHUTDOWN_GRACE_MS` (10000): how long a graceful stop may take.
    pub shutdown_grace: Duration,
    /// The id logged as this process's instance.
    pub instance_id: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .field("log_format", &self.log_format)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl WebhookConfig {
    /// Reads the command line of `sio-webhook` and the process environment; exits on `--help`,
    /// `--version` or an unknown flag (status 2).
    pub fn from_command_line() -> Result<WebhookConfig, ConfigError> {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = WebhookCli::command();
        let matches = cmd.clone().get_matches();
        WebhookCli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given = crate::config::settings::given_values(&cmd, &matches)?;
        WebhookConfig::from_vars(&Env(move |k: &str| given.get(k).cloned()))
    }

    /// Reads variables from `env`.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<WebhookConfig, ConfigError> {
        let base = Config::from_vars(env)?;
        let port = match base.webhook_port {
            WebhookPort::Off => {
                return Err(ConfigError {
                    var: "WEBHOOK_PORT",
                    value: "off".into(),
                    reason: "sio-webhook needs a port".into(),
                });
            }
            WebhookPort::Default(p) | WebhookPort::Explicit(p) => p,
        };
        let mode = match env.value("WEBHOOK_MODE").map(|m| m.to_ascii_lowercase()).as_deref() {
            Some("socketio") => {
                let url = env.value("SOCKETIO_URL").unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("ws://")) {
                    return Err(ConfigError {
                        var: "SOCKETIO_URL",
                        value: url,
                        reason: "expected http://host:port".into(),
                    });
                }
                WebhookMode::SocketIo(url)
            }
            Some("redis") => WebhookMode::Redis(base.redis.clone().ok_or_else(|| ConfigError {
                var: "WEBHOOK_MODE",
                value: "redis".into(),
                reason: "needs REDIS_URL, REDIS_HOST or REDIS_MODE=cluster with REDIS_NODES".into(),
            })?),
            other => {
                return Err(ConfigError {
                    var: "WEBHOOK_MODE",
                    value: other.unwrap_or_default().into(),
                    reason: "expected socketio or redis".into(),
                });
            }
        };
        let timeout = env.millis("WEBHOOK_TIMEOUT_MS")?;
        Ok(WebhookConfig {
            host: base.host,
            port,
            secret: base.webhook_secret,
            mode,
            timeout,
            log_format: base.log_format,
            header_read_timeout: base.limits.header_read_timeout,
            write_timeout: base.limits.write_timeout,
            shutdown_grace: base.shutdown_grace,
            instance_id: base.instance_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<WebhookConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WebhookConfig::from_vars(&Env(move |k| map.get(k).cloned()))
    }

    #[test]
    fn modes() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            (c.port, c.mode),
            (4000, WebhookMode::SocketIo("http://127.0.0.1:3000".into()))
        );
        assert!(matches!(
            cfg(&[("WEBHOOK_MODE", "redis"), ("REDIS_URL", "redis://h:1")])
                .unwrap()
                .mode,
            WebhookMode::Redis(_)
        ));
        assert_eq!(cfg(&[("WEBHOOK_MODE", "redis")]).unwrap_err().var, "WEBHOOK_MODE");
        assert_eq!(cfg(&[("WEBHOOK_MODE", "kafka")]).unwrap_err().var, "WEBHOOK_MODE");
        assert_eq!(cfg(&[("SOCKETIO_URL", "ftp://x")]).unwrap_err().var, "SOCKETIO_URL");
        assert_eq!(
            cfg(&[("WEBHOOK_TIMEOUT_MS", "0")]).unwrap_err().var,
            "WEBHOOK_TIMEOUT_MS"
        );
        assert_eq!(cfg(&[("WEBHOOK_PORT", "off")]).unwrap_err().var, "WEBHOOK_PORT");
    }
}
