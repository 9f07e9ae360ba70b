//! Shared plumbing of the Redis adapters: the publisher task (batched, bounded, off the emitting
//! task's path) and the dispatcher that routes subscribed messages to each namespace's adapter.

use super::queue::{MESSAGE_OVERHEAD, QueueReceiver, QueueSender, Weighed, byte_queue};
use super::service::{PubSubMessage, RedisService};
use crate::metrics::{self, METRICS};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most messages sent in one pipeline.
const BATCH: usize = 256;
/// Most bytes sent in one pipeline (one larger message still goes alone): what a publish in
/// flight holds on top of the queue while Redis is slow.
const BATCH_BYTES: usize = 1 << 20;

/// Pause after a failed pipeline before the next one; doubles up to [`FAILURE_PAUSE_MAX`].
const FAILURE_PAUSE_MIN: Duration = Duration::from_millis(50);
/// Longest pause between pipelines while publishes keep failing.
const FAILURE_PAUSE_MAX: Duration = Duration::from_secs(1);

/// One message to publish.
#[derive(Debug)]
pub struct Outgoing {
    /// Channel.
    pub channel: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// `SPUBLISH` rather than `PUBLISH`.
    pub sharded: bool,
}

impl Weighed for Outgoing {
    fn weight(&self) -> usize {
        self.channel.len() + self.payload.len() + MESSAGE_OVERHEAD
    }
}

impl Weighed for PubSubMessage {
    fn weight(&self) -> usize {
        self.channel.len() + self.payload.len() + MESSAGE_OVERHEAD
    }
}

/// The queue of messages received from Redis, bounded to `limit` bytes (oldest dropped first,
/// counted in `sio_redis_queue_dropped_total{queue="incoming"}`).
pub fn incoming_queue(limit: usize) -> (QueueSender<PubSubMessage>, QueueReceiver<PubSubMessage>) {
    byte_queue("incoming", limit, &METRICS.redis_incoming_dropped)
}

/// Queues publishes for the publisher task.
#[derive(Clone)]
pub struct Publisher {
    tx: QueueSender<Outgoing>,
}

impl Publisher {
    /// Starts the publisher task, its queue holding at most `limit` bytes: while Redis is slow or
    /// down, the oldest publishes are dropped (counted) rather than memory growing.
    pub fn spawn(service: RedisService, limit: usize) -> Publisher {
        let (tx, mut rx) = byte_queue::<Outgoing>("publish", limit, &METRICS.redis_publish_dropped);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut pause = FAILURE_PAUSE_MIN;
            while rx.recv_many(&mut batch, BATCH, BATCH_BYTES).await > 0 {
                let failed = service.publish_batch(&batch).await.err();
                batch.clear();
                match failed {
                    None => pause = FAILURE_PAUSE_MIN,
                    Some((n, e)) => {
                        metrics::add(&METRICS.publish_failures, n);
                        tracing::debug!(error = %e, messages = n, "publish failed");
                        // Redis is down or stalled: let the queue (bounded, dropping the oldest)
                        // absorb publishes rather than piling pipelines up in the connection.
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(FAILURE_PAUSE_MAX);
                    }
                }
            }
        });
        Publisher { tx }
    }

    /// Queues a publish; when that pushes the queue over its byte limit, the oldest publishes are
    /// dropped and counted as failed.
    pub fn send(&self, msg: Outgoing) {
        let dropped = self.tx.push(msg);
        if dropped > 0 {
            metrics::add(&METRICS.publish_failures, dropped);
        }
    }
}

/// An adapter that receives subscribed messages.
pub trait Routed: Send + Sync + 'static {
    /// How well this adapter matches the message's channel (longest prefix wins); `None` if not.
    fn route(&self, msg: &PubSubMessage) -> Option<usize>;
    /// Handles a message routed to it.
    fn deliver(&self, msg: PubSubMessage);
}

/// The adapters receiving messages, by namespace.
#[derive(Clone, Default)]
pub struct Hub {
    adapters: Arc<RwLock<Vec<Arc<dyn Routed>>>>,
}

impl Hub {
    /// Registers an adapter.
    pub fn add(&self, a: Arc<dyn Routed>) {
        self.adapters.write().unwrap_or_else(|e| e.into_inner()).push(a);
    }

    /// Routes messages until the channel closes.
    pub fn spawn_dispatcher(&self, mut rx: QueueReceiver<PubSubMessage>) {
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let target = {
                    let list = hub.adapters.read().unwrap_or_else(|e| e.into_inner());
                    list.iter()
                        .filter_map(|a| a.route(&msg).map(|score| (score, a.clone())))
                        .max_by_key(|(s, _)| *s)
                };
                if let Some((_, a)) = target {
                    a.deliver(msg);
                }
            }
        });
    }
}

/// Keeps the subscriber connection alive: after a disconnection, pings it (which reconnects a
/// standalone server's connection) with backoff until it answers. The subscriptions themselves are
/// re-issued by their owners ([`super::subs`]) on [`super::service::SubscriberEvent::Reset`].
pub fn spawn_resubscriber(service: RedisService, mut disconnects: mpsc::UnboundedReceiver<()>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                d = disconnects.recv() => if d.is_none() { return },
                _ = tick.tick() => {},
            }
            let mut delay = std::time::Duration::from_millis(100);
            while let Err(e) = service.ping_subscriber().await {
                tracing::debug!(error = %e, "redis subscriber not back yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    });
}

struct Fetch {
    remaining: usize,
    sockets: Vec<crate::adapter::SocketInfo>,
    done: Option<tokio::sync::oneshot::Sender<Vec<crate::adapter::SocketInfo>>>,
}

/// `fetch_sockets` requests waiting for other servers' answers, by request id.
#[derive(Clone, Default)]
pub struct FetchTable(Arc<std::sync::Mutex<std::collections::HashMap<String, Fetch>>>);

impl FetchTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Fetch>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expects `servers` answers to request `id`; resolves with all sockets once they arrived.
    pub fn start(&self, id: &str, servers: usize) -> tokio::sync::oneshot::Receiver<Vec<crate::adapter::SocketInfo>> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.lock().insert(
            id.to_owned(),
            Fetch {
                remaining: servers,
                sockets: Vec::new(),
                done: Some(done),
            },
        );
        rx
    }

    /// Whether `id` is one of this server's requests.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// One server's answer.
    pub fn answer(&self, id: &str, sockets: Vec<crate::adapter::SocketInfo>) {
        let mut table = self.lock();
        let Some(f) = table.get_mut(id) else { return };
        f.sockets.extend(sockets);
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining == 0 {
            if let Some(done) = f.done.take() {
                let _ = done.send(std::mem::take(&mut f.sockets));
            }
            table.remove(id);
        }
    }

    /// Gives up on `id`, returning what arrived.
    pub fn give_up(&self, id: &str) -> Vec<crate::adapter::SocketInfo> {
        self.lock().remove(id).map(|f| f.sockets).unwrap_or_default()
    }

    /// Waits for request `id` up to `timeout`; on timeout, logs and returns the partial answer.
    pub async fn wait(
        &self,
        id: &str,
        rx: tokio::sync::oneshot::Receiver<Vec<crate::adapter::SocketInfo>>,
        timeout: std::time::Duration,
    ) -> Vec<crate::adapter::SocketInfo> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(sockets)) => sockets,
            _ => {
                tracing::warn!(
                    request_id = id,
                    "timeout reached while waiting for fetchSockets responses"
                );
                self.give_up(id)
            }
        }
    }
}
