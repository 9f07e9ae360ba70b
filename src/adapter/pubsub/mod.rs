//! The pub/sub driver the cluster adapters run on: a small [`PubSub`] trait (publish, subscribe,
//! unsubscribe, their pattern and sharded variants, subscriber counts), the [`Hub`] that routes
//! received messages to each namespace's adapter, and an in-memory bus ([`memory`]) so several
//! servers can run in one process without Redis. The Redis implementation is
//! `adapter::redis::driver`.
//!
//! Publishing and (un)subscribing never wait: a driver queues publishes (bounded in bytes) and
//! applies subscriptions in the background, reference-counted per channel and kept in place
//! across reconnections and failovers. Received messages go to the byte-bounded queue the driver
//! was built with, which a [`Hub`] dispatcher drains.

pub mod memory;

use super::BoxFuture;
use super::redis::queue::{MESSAGE_OVERHEAD, QueueReceiver, QueueSender, Weighed, byte_queue};
use crate::metrics::METRICS;
use bytes::Bytes;
use parking_lot::RwLock;
use std::sync::Arc;

/// A message received on a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubMessage {
    /// The channel it was published to.
    pub channel: String,
    /// The payload.
    pub payload: Bytes,
}

impl Weighed for PubSubMessage {
    fn weight(&self) -> usize {
        self.channel.len() + self.payload.len() + MESSAGE_OVERHEAD
    }
}

/// The queue of received messages, bounded to `limit` bytes (oldest dropped first, counted in
/// `sio_redis_queue_dropped_total{queue="incoming"}`).
pub fn incoming_queue(limit: usize) -> (QueueSender<PubSubMessage>, QueueReceiver<PubSubMessage>) {
    byte_queue("incoming", limit, &METRICS.redis_incoming_dropped)
}

/// A pub/sub connection of one server (Redis, or the in-memory bus). Subscriptions are counted:
/// each `subscribe` wants the channel once more, each `unsubscribe` once less, and the driver
/// subscribes while the count is above zero.
pub trait PubSub: Send + Sync + 'static {
    /// `PUBLISH` (queued; dropped and counted when the queue is full).
    fn publish(&self, channel: String, payload: Vec<u8>);
    /// `SPUBLISH` (sharded pub/sub).
    fn spublish(&self, channel: String, payload: Vec<u8>);
    /// `SUBSCRIBE`.
    fn subscribe(&self, channel: String);
    /// `UNSUBSCRIBE`.
    fn unsubscribe(&self, channel: &str);
    /// `PSUBSCRIBE` (glob patterns).
    fn psubscribe(&self, pattern: String);
    /// `PUNSUBSCRIBE`.
    fn punsubscribe(&self, pattern: &str);
    /// `SSUBSCRIBE`.
    fn ssubscribe(&self, channel: String);
    /// `SUNSUBSCRIBE`.
    fn sunsubscribe(&self, channel: &str);
    /// `PUBSUB NUMSUB channel`: how many connections subscribe to it (cluster-wide).
    fn numsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>>;
    /// `PUBSUB SHARDNUMSUB channel`.
    fn shardnumsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>>;
    /// Whether the bus can be reached (for `/health`).
    fn is_healthy(&self) -> bool {
        true
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
        self.adapters.write().push(a);
    }

    /// The adapter a message goes to.
    pub fn target(&self, msg: &PubSubMessage) -> Option<Arc<dyn Routed>> {
        let list = self.adapters.read();
        list.iter()
            .filter_map(|a| a.route(msg).map(|score| (score, a.clone())))
            .max_by_key(|(s, _)| *s)
            .map(|(_, a)| a)
    }

    /// Routes messages until the queue closes.
    pub fn spawn_dispatcher(&self, mut rx: QueueReceiver<PubSubMessage>) {
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Some(a) = hub.target(&msg) {
                    a.deliver(msg);
                }
            }
        });
    }
}
