//! Configuration of the standalone `sio-webhook` (the in-process webhook uses `sio-server`'s).

use crate::adapter::redis::RedisConfig;
use crate::config::{Config, ConfigError, Env, LogFormat, WebhookPort};
use std::net::IpAddr;
use std::time::Duration;

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
        let mode = match (env.0)("WEBHOOK_MODE")
            .map(|m| m.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("socketio") => {
                let url = (env.0)("SOCKETIO_URL").unwrap_or_else(|| "http://127.0.0.1:3000".into());
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
            Some(other) => {
                return Err(ConfigError {
                    var: "WEBHOOK_MODE",
                    value: other.into(),
                    reason: "expected socketio or redis".into(),
                });
            }
        };
        let ms = match (env.0)("WEBHOOK_TIMEOUT_MS") {
            None => 5000,
            Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| ConfigError {
                var: "WEBHOOK_TIMEOUT_MS",
                value: v.clone(),
                reason: "expected a whole number of milliseconds greater than 0".into(),
            })?,
        };
        Ok(WebhookConfig {
            host: base.host,
            port,
            secret: base.webhook_secret,
            mode,
            timeout: Duration::from_millis(ms),
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
