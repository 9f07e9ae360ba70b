//! The one place that talks to Redis: standalone or Cluster behind the same methods (publish,
//! sharded publish, subscriptions, subscriber counts, presence hashes), with command timeouts,
//! latency metrics and a health flag. Subscribed messages arrive on a channel as [`PubSubMessage`].

use super::queue::QueueSender;
use crate::metrics::{self, METRICS};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisResult, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where Redis is. Its `Debug` hides the passwords of the URLs.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://[:password@]host:port`).
    Standalone(String),
    /// Cluster seed nodes (`redis://host:port` each), with an optional password.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Standalone(url) => f.debug_tuple("Standalone").field(&redact(url)).finish(),
            RedisTarget::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `text` with the credentials of every URL in it (`scheme://user:password@host`) replaced by
/// `***`, for logs and error messages.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Displays a value (an error) with [`redact`] applied.
pub struct Redacted<T>(pub T);

impl<T: std::fmt::Display> std::fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0.to_string()))
    }
}

/// A message received on a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubMessage {
    /// The channel it was published to.
    pub channel: String,
    /// The payload.
    pub payload: Bytes,
}

/// Commands slower than this are counted as slow.
const SLOW: Duration = Duration::from_millis(100);

#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Standalone(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// A connection to Redis for commands, and one for subscriptions.
#[derive(Clone)]
pub struct RedisService {
    inner: Arc<Inner>,
}

struct Inner {
    cmd: Conn,
    sub: Conn,
    cluster: bool,
    timeout: Duration,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Sharded channels subscribed on a standalone server, re-subscribed after a reconnection
    /// (the connection manager only restores SUBSCRIBE/PSUBSCRIBE).
    sharded: Mutex<std::collections::HashSet<String>>,
}

/// Parses a message pushed by Redis into a subscription message.
fn pubsub_message(push: PushInfo) -> Option<PubSubMessage> {
    let mut data = push.data.into_iter();
    let (channel, payload) = match push.kind {
        PushKind::Message | PushKind::SMessage => (data.next()?, data.next()?),
        PushKind::PMessage => {
            let _pattern = data.next()?;
            (data.next()?, data.next()?)
        }
        _ => return None,
    };
    let channel = match channel {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    let payload = match payload {
        Value::BulkString(b) => Bytes::from(b),
        Value::SimpleString(s) => Bytes::from(s),
        _ => return None,
    };
    Some(PubSubMessage { channel, payload })
}

fn with_resp3(url: &str) -> RedisResult<ConnectionInfo> {
    let mut info = url.into_connection_info()?;
    info.redis.protocol = ProtocolVersion::RESP3;
    Ok(info)
}

impl RedisService {
    /// Connects (both connections). Subscribed messages go to `messages`; a disconnection of the
    /// subscriber is reported on `disconnects` so the caller can force a reconnect.
    pub async fn connect(
        target: &RedisTarget,
        timeout: Duration,
        messages: mpsc::UnboundedSender<PubSubMessage>,
        disconnects: mpsc::UnboundedSender<()>,
    ) -> RedisResult<RedisService> {
        let on_message = move |m| {
            let _ = messages.send(m);
        };
        Self::connect_with(target, timeout, on_message, disconnects).await
    }

    /// Connects like [`RedisService::connect`], subscribed messages going to a queue bounded in
    /// bytes (the oldest dropped first while the consumer lags).
    pub async fn connect_bounded(
        target: &RedisTarget,
        timeout: Duration,
        messages: QueueSender<PubSubMessage>,
        disconnects: mpsc::UnboundedSender<()>,
    ) -> RedisResult<RedisService> {
        let on_message = move |m| {
            messages.push(m);
        };
        Self::connect_with(target, timeout, on_message, disconnects).await
    }

    async fn connect_with(
        target: &RedisTarget,
        timeout: Duration,
        on_message: impl Fn(PubSubMessage) + Send + Sync + 'static,
        disconnects: mpsc::UnboundedSender<()>,
    ) -> RedisResult<RedisService> {
        let push = move |info: PushInfo| {
            if info.kind == PushKind::Disconnection {
                let _ = disconnects.send(());
            } else if let Some(m) = pubsub_message(info) {
                on_message(m);
            }
            Ok::<(), redis::aio::SendError>(())
        };
        let (cmd, sub, cluster) = match target {
            RedisTarget::Standalone(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_max_delay(2000)
                    .set_number_of_retries(2);
                let client = redis::Client::open(with_resp3(url)?)?;
                let cmd = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                let sub_config = config.set_push_sender(push).set_automatic_resubscription();
                let sub = ConnectionManager::new_with_config(client, sub_config).await?;
                (Conn::Standalone(cmd), Conn::Standalone(sub), false)
            }
            RedisTarget::Cluster(nodes) => {
                let infos: Vec<ConnectionInfo> = nodes
                    .iter()
                    .map(|n| n.as_str().into_connection_info())
                    .collect::<RedisResult<_>>()?;
                let builder = || {
                    ClusterClientBuilder::new(infos.clone())
                        .connection_timeout(timeout)
                        .response_timeout(timeout)
                        .use_protocol(ProtocolVersion::RESP3)
                };
                let cmd = builder().build()?.get_async_connection().await?;
                let sub = builder().push_sender(push).build()?.get_async_connection().await?;
                (Conn::Cluster(cmd), Conn::Cluster(sub), true)
            }
        };
        Ok(RedisService {
            inner: Arc::new(Inner {
                cmd,
                sub,
                cluster,
                timeout,
                healthy: AtomicBool::new(true),
                last_error: Mutex::new(None),
                sharded: Mutex::default(),
            }),
        })
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// Whether the last command succeeded.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// The last error, if the connection is unhealthy.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, started: Instant, ok: Result<(), String>) {
        let elapsed = started.elapsed();
        metrics::inc(&METRICS.redis_commands);
        metrics::add(&METRICS.redis_command_micros, elapsed.as_micros() as u64);
        if elapsed >= SLOW {
            metrics::inc(&METRICS.redis_slow_commands);
        }
        let was = self.inner.healthy.swap(ok.is_ok(), Ordering::Relaxed);
        match ok {
            Ok(()) => {
                if !was {
                    tracing::info!("redis reachable again");
                    metrics::inc(&METRICS.redis_reconnects);
                }
                *self.inner.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                metrics::inc(&METRICS.redis_command_errors);
                if was {
                    tracing::warn!(error = %e, "redis unreachable");
                }
                *self.inner.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
    }

    /// Runs a Redis operation within the command timeout, recording its latency and outcome.
    async fn timed<T>(&self, op: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.inner.timeout, op).await.unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "command timed out",
            )))
        });
        self.record(started, result.as_ref().map(|_| ()).map_err(|e| redact(&e.to_string())));
        result
    }

    async fn run(&self, conn: &Conn, cmd: Cmd) -> RedisResult<Value> {
        let mut conn = conn.clone();
        self.timed(async move { conn.query(&cmd).await }).await
    }

    async fn command(&self, cmd: Cmd) -> RedisResult<Value> {
        self.run(&self.inner.cmd, cmd).await
    }

    /// `PUBLISH`; returns how many subscribers received it (on a Cluster: of the node asked).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> RedisResult<i64> {
        let v = self
            .command(redis::cmd("PUBLISH").arg(channel).arg(payload).clone())
            .await?;
        redis::from_redis_value(&v)
    }

    /// Publishes several messages in one pipeline, in order.
    pub async fn publish_batch(&self, batch: &[super::hub::Outgoing]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for m in batch {
            pipe.cmd(if m.sharded { "SPUBLISH" } else { "PUBLISH" })
                .arg(&m.channel)
                .arg(&m.payload)
                .ignore();
        }
        let mut conn = self.inner.cmd.clone();
        self.timed(async move {
            match &mut conn {
                Conn::Standalone(c) => pipe.query_async::<()>(c).await,
                Conn::Cluster(c) => pipe.query_async::<()>(c).await,
            }
        })
        .await
    }

    /// `SPUBLISH` (Redis ≥ 7 sharded pub/sub).
    pub async fn spublish(&self, channel: &str, payload: &[u8]) -> RedisResult<i64> {
        let v = self
            .command(redis::cmd("SPUBLISH").arg(channel).arg(payload).clone())
            .await?;
        redis::from_redis_value(&v)
    }

    async fn sub_command(&self, name: &str, channels: &[String]) -> RedisResult<()> {
        let mut conn = self.inner.sub.clone();
        self.timed(async move {
            match &mut conn {
                Conn::Standalone(c) => match name {
                    "SUBSCRIBE" => c.subscribe(channels).await,
                    "PSUBSCRIBE" => c.psubscribe(channels).await,
                    _ => redis::cmd(name).arg(channels).query_async(c).await,
                },
                Conn::Cluster(c) => match name {
                    "SUBSCRIBE" => c.subscribe(channels).await,
                    "PSUBSCRIBE" => c.psubscribe(channels).await,
                    _ => c.ssubscribe(channels).await,
                },
            }
        })
        .await
    }

    /// `SUBSCRIBE` (kept across reconnections).
    pub async fn subscribe(&self, channels: &[String]) -> RedisResult<()> {
        self.sub_command("SUBSCRIBE", channels).await
    }

    /// `PSUBSCRIBE` (kept across reconnections).
    pub async fn psubscribe(&self, patterns: &[String]) -> RedisResult<()> {
        self.sub_command("PSUBSCRIBE", patterns).await
    }

    /// `SSUBSCRIBE` (kept across reconnections).
    pub async fn ssubscribe(&self, channels: &[String]) -> RedisResult<()> {
        if !self.inner.cluster {
            self.inner
                .sharded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(channels.iter().cloned());
        }
        self.sub_command("SSUBSCRIBE", channels).await
    }

    /// `SUNSUBSCRIBE`.
    pub async fn sunsubscribe(&self, channels: &[String]) -> RedisResult<()> {
        if !self.inner.cluster {
            let mut set = self.inner.sharded.lock().unwrap_or_else(|e| e.into_inner());
            for c in channels {
                set.remove(c);
            }
        }
        let mut conn = self.inner.sub.clone();
        self.timed(async move {
            match &mut conn {
                Conn::Standalone(c) => redis::cmd("SUNSUBSCRIBE").arg(channels).query_async(c).await,
                Conn::Cluster(c) => c.sunsubscribe(channels).await,
            }
        })
        .await
    }

    /// Re-issues `SSUBSCRIBE` for a standalone server after its subscriber reconnected.
    pub async fn resubscribe_sharded(&self) -> RedisResult<()> {
        let channels: Vec<String> = self
            .inner
            .sharded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if self.inner.cluster || channels.is_empty() {
            return Ok(());
        }
        for channel in channels {
            self.sub_command("SSUBSCRIBE", std::slice::from_ref(&channel)).await?;
        }
        Ok(())
    }

    /// Pings the subscriber connection, which makes it reconnect (and resubscribe) if it dropped.
    pub async fn ping_subscriber(&self) -> RedisResult<()> {
        self.run(&self.inner.sub, redis::cmd("PING")).await.map(|_| ())
    }

    /// `PING` on the command connection.
    pub async fn ping(&self) -> RedisResult<()> {
        self.command(redis::cmd("PING")).await.map(|_| ())
    }

    /// How many clients subscribe to `channel` (`PUBSUB NUMSUB`, or `SHARDNUMSUB` when `sharded`),
    /// summed over every node of a Cluster.
    pub async fn numsub(&self, channel: &str, sharded: bool) -> RedisResult<usize> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(if sharded { "SHARDNUMSUB" } else { "NUMSUB" }).arg(channel);
        if !self.inner.cluster {
            return Ok(numsub_count(&self.command(cmd).await?));
        }
        let Conn::Cluster(mut conn) = self.inner.cmd.clone() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::ClientError,
                "not a cluster connection",
            )));
        };
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, Some(ResponsePolicy::Special)));
        let result = self.timed(async move { conn.route_command(&cmd, routing).await }).await;
        Ok(match result? {
            Value::Map(per_node) => per_node
                .iter()
                .fold(0usize, |total, (_, v)| total.saturating_add(numsub_count(v))),
            other => numsub_count(&other),
        })
    }

    /// `HSET key field value`.
    pub async fn hset(&self, key: &str, field: &str, value: &str) -> RedisResult<()> {
        self.command(redis::cmd("HSET").arg(key).arg(field).arg(value).clone())
            .await
            .map(|_| ())
    }

    /// `HDEL key field`.
    pub async fn hdel(&self, key: &str, field: &str) -> RedisResult<()> {
        self.command(redis::cmd("HDEL").arg(key).arg(field).clone())
            .await
            .map(|_| ())
    }

    /// `HGETALL key`.
    pub async fn hgetall(&self, key: &str) -> RedisResult<HashMap<String, String>> {
        let v = self.command(redis::cmd("HGETALL").arg(key).clone()).await?;
        redis::from_redis_value(&v)
    }
}

/// The count in a `PUBSUB NUMSUB channel` reply (`[channel, n]` or `{channel: n}`).
fn numsub_count(v: &Value) -> usize {
    match v {
        Value::Array(items) => items
            .get(1)
            .and_then(|n| redis::from_redis_value::<usize>(n).ok())
            .unwrap_or(0),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(_, n)| redis::from_redis_value::<usize>(n).ok())
            .fold(0usize, usize::saturating_add),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_push_messages() {
        let m = pubsub_message(PushInfo {
            kind: PushKind::PMessage,
            data: vec![
                Value::BulkString(b"p*".to_vec()),
                Value::BulkString(b"ch".to_vec()),
                Value::BulkString(vec![1, 2]),
            ],
        })
        .unwrap();
        assert_eq!((m.channel.as_str(), &m.payload[..]), ("ch", &[1u8, 2][..]));
        let s = PushInfo {
            kind: PushKind::SMessage,
            data: vec![Value::BulkString(b"s".to_vec()), Value::BulkString(b"x".to_vec())],
        };
        assert_eq!(pubsub_message(s).unwrap().channel, "s");
        assert!(
            pubsub_message(PushInfo {
                kind: PushKind::Subscribe,
                data: vec![]
            })
            .is_none()
        );
    }

    #[test]
    fn numsub_replies() {
        let arr = Value::Array(vec![Value::BulkString(b"c".to_vec()), Value::Int(3)]);
        assert_eq!(numsub_count(&arr), 3);
        let map = Value::Map(vec![(Value::BulkString(b"c".to_vec()), Value::Int(2))]);
        assert_eq!(numsub_count(&map), 2);
        let huge = Value::Map(vec![
            (Value::BulkString(b"a".to_vec()), Value::Int(i64::MAX)),
            (Value::BulkString(b"b".to_vec()), Value::Int(i64::MAX)),
            (Value::BulkString(b"c".to_vec()), Value::Int(i64::MAX)),
        ]);
        assert_eq!(numsub_count(&huge), usize::MAX, "peer counts saturate");
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(redact("redis://:s3cret@cache:6379"), "redis://***@cache:6379");
        assert_eq!(redact("rediss://user:p%40ss@h:1/0"), "rediss://***@h:1/0");
        assert_eq!(redact("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redact("cannot reach redis://a:b@x:1 nor \"redis://:c@y:2\""),
            "cannot reach redis://***@x:1 nor \"redis://***@y:2\""
        );
        assert_eq!(redact("no url @ all"), "no url @ all");
        let t = RedisTarget::Cluster(vec!["redis://:pw@a:7000".into(), "redis://b:7001".into()]);
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("pw") && shown.contains("a:7000") && shown.contains("b:7001"),
            "{shown}"
        );
        let t = RedisTarget::Standalone("redis://:hunter2@a:1".into());
        assert_eq!(format!("{t:?}"), r#"Standalone("redis://***@a:1")"#);
        assert_eq!(Redacted("x redis://u:p@h").to_string(), "x redis://***@h");
    }
}
