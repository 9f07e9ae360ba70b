//! Shared plumbing of the Redis driver: the publisher task (batched, bounded, off the emitting
//! task's path) and the keeper of the subscriber connection. (The dispatcher that routes
//! subscribed messages to each namespace's adapter is `adapter::pubsub::Hub`.)

use super::queue::{MESSAGE_OVERHEAD, QueueSender, Weighed, byte_queue};
use super::service::RedisService;
use crate::metrics::{self, METRICS};
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
