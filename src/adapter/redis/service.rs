//! The one place that talks to Redis: standalone or Cluster behind the same methods (publish,
//! sharded publish, subscriptions, subscriber counts, presence hashes), with command timeouts,
//! latency metrics and a health flag. Subscribed messages arrive on a channel as [`PubSubMessage`].

use super::node::NodeConn;
use super::pinned::PinnedSubscriber;
use super::queue::QueueSender;
use super::shardsub::{PushFn, ShardedSubscriber};
pub use crate::adapter::pubsub::PubSubMessage;
use crate::metrics::{self, METRICS};
use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisResult, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

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

/// Something that happened to the subscriber connection, for the tasks that own subscriptions
/// (see [`RedisService::subscriber_events`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SubscriberEvent {
    /// A connection of the subscriber dropped (a node died, a failover): every subscription it
    /// carried may be gone, re-issue them all.
    Reset,
    /// Redis ended one subscription (an `unsubscribe`/`punsubscribe`/`sunsubscribe` push): ours,
    /// or the server's own when the channel's slot moved to another node.
    Ended(PushKind, String),
}

/// How many subscriber events may wait for a slow subscription task; past it the task sees a lag
/// and re-issues everything.
const EVENTS: usize = 1024;

/// Commands slower than this are counted as slow.
const SLOW: Duration = Duration::from_millis(100);

#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection<NodeConn>),
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

/// The subscriber side of a [`RedisService`].
enum Subscriber {
    /// One connection to the standalone server, resubscribing by itself after reconnecting.
    Standalone(ConnectionManager),
    /// On a Cluster: the classic subscriber (`SUBSCRIBE`/`PSUBSCRIBE`), pinned to one node, and
    /// the sharded one (`SSUBSCRIBE`), each channel on its slot's master.
    Cluster {
        pinned: Box<PinnedSubscriber>,
        sharded: ShardedSubscriber,
    },
}

pub(super) struct Inner {
    cmd: Conn,
    sub: Subscriber,
    cluster: bool,
    timeout: Duration,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Subscriber connection events ([`SubscriberEvent`]).
    events: broadcast::Sender<SubscriberEvent>,
    /// The last verdict of the health probe (see [`super::probe`]).
    probe: super::probe::ProbeState,
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
        let (events, _) = broadcast::channel(EVENTS);
        let events_for_pinned = events.clone();
        let events_tx = events.clone();
        let push: Arc<PushFn> = Arc::new(move |info: PushInfo| {
            match info.kind {
                PushKind::Disconnection => {
                    metrics::inc(&METRICS.redis_subscriber_resets);
                    let _ = events_tx.send(SubscriberEvent::Reset);
                    let _ = disconnects.send(());
                }
                PushKind::Unsubscribe | PushKind::PUnsubscribe | PushKind::SUnsubscribe => {
                    if let Some(channel) = push_channel(&info.data) {
                        let _ = events_tx.send(SubscriberEvent::Ended(info.kind, channel));
                    }
                }
                _ => {
                    if let Some(m) = pubsub_message(info) {
                        on_message(m);
                    }
                }
            }
            Ok::<(), redis::aio::SendError>(())
        });
        let push_to = |push: &Arc<PushFn>| {
            let push = Arc::clone(push);
            move |info: PushInfo| push(info)
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
                let sub_config = config.set_push_sender(push_to(&push)).set_automatic_resubscription();
                let sub = ConnectionManager::new_with_config(client, sub_config).await?;
                (Conn::Standalone(cmd), Subscriber::Standalone(sub), false)
            }
            RedisTarget::Cluster(nodes) => {
                let infos: Vec<ConnectionInfo> = nodes
                    .iter()
                    .map(|n| n.as_str().into_connection_info())
                    .collect::<RedisResult<_>>()?;
                let cmd = ClusterClientBuilder::new(infos)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .use_protocol(ProtocolVersion::RESP3)
                    .build()?
                    .get_async_generic_connection()
                    .await?;
                let resp3: Vec<ConnectionInfo> = nodes.iter().map(|n| with_resp3(n)).collect::<RedisResult<_>>()?;
                let pinned_config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_push_sender(push_to(&push));
                let moved = events_for_pinned.clone();
                let pinned = PinnedSubscriber::new(resp3.clone(), pinned_config, timeout, move || {
                    let _ = moved.send(SubscriberEvent::Reset);
                });
                let sharded = ShardedSubscriber::new(resp3, push.clone(), timeout);
                (
                    Conn::Cluster(cmd),
                    Subscriber::Cluster {
                        pinned: Box::new(pinned),
                        sharded,
                    },
                    true,
                )
            }
        };
        let service = RedisService {
            inner: Arc::new(Inner {
                cmd,
                sub,
                cluster,
                timeout,
                healthy: AtomicBool::new(true),
                last_error: Mutex::new(None),
                events,
                probe: super::probe::ProbeState::default(),
            }),
        };
        super::probe::spawn(&service);
        Ok(service)
    }

    /// Events of the subscriber connection (drops, ended subscriptions), for the tasks that keep
    /// subscriptions in place.
    pub fn subscriber_events(&self) -> broadcast::Receiver<SubscriberEvent> {
        self.inner.events.subscribe()
    }

    /// Whether Redis can serve, as the background probe last saw it (never waits on Redis):
    /// `Err(reason)` while it cannot. See [`super::probe`].
    pub fn health(&self) -> Result<(), String> {
        self.inner.probe.verdict()
    }

    pub(super) fn probe_state(&self) -> &super::probe::ProbeState {
        &self.inner.probe
    }

    pub(super) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(super) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<RedisService> {
        weak.upgrade().map(|inner| RedisService { inner })
    }

    /// The command timeout (`REDIS_TIMEOUT_MS`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The cluster connection for commands, when this is a Cluster.
    pub(super) fn cluster_conn(&self) -> Option<ClusterConnection<NodeConn>> {
        match &self.inner.cmd {
            Conn::Cluster(c) => Some(c.clone()),
            Conn::Standalone(_) => None,
        }
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
        self.inner.last_error.lock().clone()
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
                *self.inner.last_error.lock() = None;
            }
            Err(e) => {
                metrics::inc(&METRICS.redis_command_errors);
                if was {
                    tracing::warn!(error = %e, "redis unreachable");
                }
                *self.inner.last_error.lock() = Some(e);
            }
        }
    }

    /// Runs a Redis operation within the command timeout, recording its latency and outcome.
    async fn timed<T>(&self, op: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        self.timed_within(self.inner.timeout, op).await
    }

    /// [`RedisService::timed`] with a deadline of its own, for operations of several steps.
    async fn timed_within<T>(&self, limit: Duration, op: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        let started = Instant::now();
        let result = tokio::time::timeout(limit, op)
            .await
            .unwrap_or_else(|_| Err(timed_out()));
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

    /// Any command on the command connection, within the timeout (adapters with commands of
    /// their own, such as the streams adapter's `XADD`/`XRANGE`/`EVAL`).
    pub async fn query(&self, cmd: Cmd) -> RedisResult<Value> {
        self.command(cmd).await
    }

    /// A pipeline on the command connection, within the timeout, answers in order. On a Cluster
    /// every key of the pipeline must hash to one slot.
    pub async fn query_pipeline(&self, pipe: redis::Pipeline) -> RedisResult<Vec<Value>> {
        let mut conn = self.inner.cmd.clone();
        self.timed(async move {
            match &mut conn {
                Conn::Standalone(c) => pipe.query_async::<Vec<Value>>(c).await,
                Conn::Cluster(c) => pipe.query_async::<Vec<Value>>(c).await,
            }
        })
        .await
    }

    /// `PUBLISH`; returns how many subscribers received it (on a Cluster: of the node asked).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> RedisResult<i64> {
        let v = self
            .command(redis::cmd("PUBLISH").arg(channel).arg(payload).clone())
            .await?;
        redis::from_redis_value(&v)
    }

    /// Publishes several messages, in order per channel: one pipeline on a standalone server, one
    /// pipeline per hash slot on a Cluster (a pipeline spanning slots is refused with CROSSSLOT),
    /// sent concurrently. On failure, tells how many of the messages were not published.
    pub async fn publish_batch(&self, batch: &[super::hub::Outgoing]) -> Result<(), (u64, redis::RedisError)> {
        let command = |pipe: &mut redis::Pipeline, m: &super::hub::Outgoing| {
            pipe.cmd(if m.sharded { "SPUBLISH" } else { "PUBLISH" })
                .arg(&m.channel)
                .arg(&m.payload)
                .ignore();
        };
        let conn = self.inner.cmd.clone();
        let Conn::Cluster(cluster) = conn else {
            let mut pipe = redis::pipe();
            for m in batch {
                command(&mut pipe, m);
            }
            let mut conn = conn;
            return self
                .timed(async move {
                    match &mut conn {
                        Conn::Standalone(c) => pipe.query_async::<()>(c).await,
                        Conn::Cluster(c) => pipe.query_async::<()>(c).await,
                    }
                })
                .await
                .map_err(|e| (batch.len() as u64, e));
        };
        let mut groups: Vec<(u16, redis::Pipeline, u64)> = Vec::new();
        for m in batch {
            let slot = super::probe::key_slot(m.channel.as_bytes());
            let i = match groups.iter().position(|(s, _, _)| *s == slot) {
                Some(i) => i,
                None => {
                    groups.push((slot, redis::pipe(), 0));
                    groups.len() - 1
                }
            };
            command(&mut groups[i].1, m);
            groups[i].2 += 1;
        }
        let sends = groups.into_iter().map(|(_, pipe, n)| {
            let mut c = cluster.clone();
            async move { pipe.query_async::<()>(&mut c).await.map_err(|e| (n, e)) }
        });
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.inner.timeout, futures_util::future::join_all(sends)).await {
            Err(_) => Some((batch.len() as u64, timed_out())),
            Ok(results) => {
                let failed: u64 = results.iter().filter_map(|r| r.as_ref().err()).map(|(n, _)| n).sum();
                results.into_iter().find_map(Result::err).map(|(_, e)| (failed, e))
            }
        };
        self.record(
            started,
            outcome.as_ref().map_or(Ok(()), |(_, e)| Err(redact(&e.to_string()))),
        );
        outcome.map_or(Ok(()), Err)
    }

    /// `SPUBLISH` (Redis ≥ 7 sharded pub/sub).
    pub async fn spublish(&self, channel: &str, payload: &[u8]) -> RedisResult<i64> {
        let v = self
            .command(redis::cmd("SPUBLISH").arg(channel).arg(payload).clone())
            .await?;
        redis::from_redis_value(&v)
    }

    /// A classic subscription command: on the pinned node of a Cluster, on the subscriber
    /// connection of a standalone server.
    async fn sub_command(&self, name: &str, channels: &[String]) -> RedisResult<()> {
        match &self.inner.sub {
            Subscriber::Cluster { pinned, .. } => {
                let cmd = redis::cmd(name).arg(channels).clone();
                self.timed(async move { pinned.query(&cmd).await.map(|_| ()) }).await
            }
            Subscriber::Standalone(c) => {
                let mut c = c.clone();
                self.timed(async move {
                    match name {
                        "SUBSCRIBE" => c.subscribe(channels).await,
                        "PSUBSCRIBE" => c.psubscribe(channels).await,
                        "UNSUBSCRIBE" => c.unsubscribe(channels).await,
                        "PUNSUBSCRIBE" => c.punsubscribe(channels).await,
                        _ => redis::cmd(name).arg(channels).query_async(&mut c).await,
                    }
                })
                .await
            }
        }
    }

    /// `SUBSCRIBE` (kept across reconnections).
    pub async fn subscribe(&self, channels: &[String]) -> RedisResult<()> {
        self.sub_command("SUBSCRIBE", channels).await
    }

    /// `PSUBSCRIBE` (kept across reconnections).
    pub async fn psubscribe(&self, patterns: &[String]) -> RedisResult<()> {
        self.sub_command("PSUBSCRIBE", patterns).await
    }

    /// `UNSUBSCRIBE`.
    pub async fn unsubscribe(&self, channels: &[String]) -> RedisResult<()> {
        self.sub_command("UNSUBSCRIBE", channels).await
    }

    /// `PUNSUBSCRIBE`.
    pub async fn punsubscribe(&self, patterns: &[String]) -> RedisResult<()> {
        self.sub_command("PUNSUBSCRIBE", patterns).await
    }

    /// `SSUBSCRIBE` of each channel (on a Cluster, on its slot's master). `moved`: Redis ended
    /// the subscription because the slot moved, so a Cluster's slot owners are read again first.
    pub async fn ssubscribe(&self, channels: &[String], moved: bool) -> RedisResult<()> {
        match &self.inner.sub {
            // Up to about five timeouts' worth of steps: reading the slot owners (every node at
            // once, half), connecting to the master (half), leaving a previous node, subscribing,
            // or, when the master does not answer, connecting to a replica and subscribing there.
            // A cut in the middle leaves no subscription unknown (see `ShardedSubscriber`).
            Subscriber::Cluster { sharded, .. } => {
                self.timed_within(self.inner.timeout * 5, async move {
                    for channel in channels {
                        sharded.ssubscribe(channel, moved).await?;
                    }
                    Ok(())
                })
                .await
            }
            Subscriber::Standalone(_) => self.sub_command("SSUBSCRIBE", channels).await,
        }
    }

    /// `SUNSUBSCRIBE`.
    pub async fn sunsubscribe(&self, channels: &[String]) -> RedisResult<()> {
        match &self.inner.sub {
            Subscriber::Cluster { sharded, .. } => {
                self.timed_within(self.inner.timeout * 2, async move {
                    for channel in channels {
                        sharded.sunsubscribe(channel).await?;
                    }
                    Ok(())
                })
                .await
            }
            Subscriber::Standalone(_) => self.sub_command("SUNSUBSCRIBE", channels).await,
        }
    }

    /// Pings the subscriber connection, which makes it reconnect (and resubscribe) if it dropped.
    /// On a Cluster the pinned classic subscriber; the sharded one connects on demand.
    pub async fn ping_subscriber(&self) -> RedisResult<()> {
        self.sub_command("PING", &[]).await
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
        self.count_on_all_nodes(cmd, numsub_count).await
    }

    /// `PUBSUB NUMPAT`: patterns subscribed by all clients, summed over every node of a Cluster.
    pub async fn numpat(&self) -> RedisResult<usize> {
        let count = |v: &Value| redis::from_redis_value::<usize>(v).unwrap_or(0);
        self.count_on_all_nodes(redis::cmd("PUBSUB").arg("NUMPAT").clone(), count)
            .await
    }

    /// Runs a counting `PUBSUB` command on the server, or on every node of a Cluster, and sums.
    async fn count_on_all_nodes(&self, cmd: redis::Cmd, count: fn(&Value) -> usize) -> RedisResult<usize> {
        if !self.inner.cluster {
            return Ok(count(&self.command(cmd).await?));
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
                .fold(0usize, |total, (_, v)| total.saturating_add(count(v))),
            other => count(&other),
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

    /// `SET key value EX seconds`.
    pub async fn set_ex(&self, key: &str, value: &str, seconds: u64) -> RedisResult<()> {
        self.command(redis::cmd("SET").arg(key).arg(value).arg("EX").arg(seconds).clone())
            .await
            .map(|_| ())
    }

    /// `EXISTS key`.
    pub async fn exists(&self, key: &str) -> RedisResult<bool> {
        let v = self.command(redis::cmd("EXISTS").arg(key).clone()).await?;
        Ok(redis::from_redis_value::<i64>(&v)? == 1)
    }

    /// `HGETALL key`.
    pub async fn hgetall(&self, key: &str) -> RedisResult<HashMap<String, String>> {
        let v = self.command(redis::cmd("HGETALL").arg(key).clone()).await?;
        redis::from_redis_value(&v)
    }
}

/// Whether an error may mean the connection it came on is gone (the subscribers then drop it and
/// open another).
pub(super) fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// The channel a subscription push names (its first field).
pub(super) fn push_channel(data: &[Value]) -> Option<String> {
    data.first().and_then(|v| redis::from_redis_value::<String>(v).ok())
}

/// The error of a command that did not answer within the timeout.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "command timed out"))
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
