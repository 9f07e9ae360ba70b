//! Builds each namespace's adapter (classic or sharded) on a pub/sub driver: Redis
//! ([`RedisAdapterFactory`]), or any other [`PubSub`], such as the in-memory bus
//! ([`PubSubAdapterFactory::memory`]).

use super::classic::ClassicAdapter;
use super::driver::RedisPubSub;
use super::hub::{Publisher, spawn_resubscriber};
use super::service::{Redacted, RedisService, RedisTarget};
use super::sharded::sharded_adapter;
use crate::adapter::pubsub::memory::MemoryBus;
use crate::adapter::pubsub::{Hub, PubSub, incoming_queue};
use crate::adapter::{Adapter, AdapterFactory};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Which Redis adapter to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    /// `createAdapter`: PUBLISH/PSUBSCRIBE.
    Classic,
    /// `createShardedAdapter`: SPUBLISH/SSUBSCRIBE (Redis ≥ 7).
    Sharded,
    /// `@socket.io/redis-streams-adapter`: XADD/XREAD, built by
    /// [`crate::adapter::streams::StreamsAdapterFactory`] (a pub/sub factory builds sharded ones).
    Streams,
}

/// Redis settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    /// Standalone or Cluster.
    pub target: RedisTarget,
    /// Command timeout.
    pub timeout: Duration,
    /// Classic or sharded.
    pub kind: AdapterKind,
    /// Channel prefix (`socket.io`).
    pub key_prefix: String,
    /// Timeout of requests to other servers (5 s, like Node's `requestsTimeout`).
    pub requests_timeout: Duration,
    /// `REDIS_QUEUE_BYTES` (64 MiB): byte limit of the publish queue and of the incoming queue
    /// each; past it the oldest messages are dropped.
    pub queue_bytes: usize,
}

/// Builds classic or sharded adapters on one pub/sub driver, registering each with the hub that
/// receives the driver's messages.
pub struct PubSubAdapterFactory {
    driver: Arc<dyn PubSub>,
    hub: Hub,
    kind: AdapterKind,
    key_prefix: String,
    requests_timeout: Duration,
}

impl PubSubAdapterFactory {
    /// Adapters on `driver`, whose received messages `hub` dispatches.
    pub fn new(
        driver: Arc<dyn PubSub>,
        hub: Hub,
        kind: AdapterKind,
        key_prefix: &str,
        requests_timeout: Duration,
    ) -> PubSubAdapterFactory {
        PubSubAdapterFactory {
            driver,
            hub,
            kind,
            key_prefix: key_prefix.to_owned(),
            requests_timeout,
        }
    }

    /// Adapters on a new connection to the in-memory `bus` (one per server), with its own
    /// incoming queue and dispatcher.
    pub fn memory(bus: &MemoryBus, kind: AdapterKind, key_prefix: &str, requests_timeout: Duration) -> Self {
        let (messages, messages_rx) = incoming_queue(super::queue::DEFAULT_QUEUE_BYTES);
        let hub = Hub::default();
        hub.spawn_dispatcher(messages_rx);
        let driver = Arc::new(bus.connect(messages));
        PubSubAdapterFactory::new(driver, hub, kind, key_prefix, requests_timeout)
    }
}

impl AdapterFactory for PubSubAdapterFactory {
    fn create(&self, nsp: &str) -> Arc<dyn Adapter> {
        let (prefix, timeout) = (&self.key_prefix, self.requests_timeout);
        match self.kind {
            AdapterKind::Classic => {
                let a = Arc::new(ClassicAdapter::new(nsp, prefix, self.driver.clone(), timeout));
                self.hub.add(a.clone());
                a
            }
            AdapterKind::Sharded | AdapterKind::Streams => {
                let (a, route) = sharded_adapter(nsp, prefix, self.driver.clone(), timeout);
                self.hub.add(route);
                a
            }
        }
    }
}

/// Builds Redis adapters sharing one pair of connections.
pub struct RedisAdapterFactory {
    service: RedisService,
    adapters: PubSubAdapterFactory,
}

impl RedisAdapterFactory {
    /// Connects to Redis and starts the publisher, the dispatcher and the resubscriber.
    pub async fn connect(config: RedisConfig) -> redis::RedisResult<RedisAdapterFactory> {
        let (service, hub, driver) = connect_pubsub(&config).await?;
        let adapters = PubSubAdapterFactory::new(driver, hub, config.kind, &config.key_prefix, config.requests_timeout);
        Ok(RedisAdapterFactory { service, adapters })
    }

    /// Connects, retrying with backoff (0.5 s doubling to 5 s) until Redis answers, logging each
    /// failure: an instance starting before its Redis waits for it instead of running alone.
    pub async fn connect_with_retry(config: RedisConfig) -> RedisAdapterFactory {
        let f = until_connected(&config, || RedisAdapterFactory::connect(config.clone())).await;
        tracing::info!(target = ?config.target, adapter = ?config.kind, "connected to redis");
        f
    }

    /// The Redis service (for presence and health).
    pub fn service(&self) -> &RedisService {
        &self.service
    }
}

impl AdapterFactory for RedisAdapterFactory {
    fn create(&self, nsp: &str) -> Arc<dyn Adapter> {
        self.adapters.create(nsp)
    }
}

/// Calls `connect` until it succeeds, waiting 0.5 s doubling to 5 s between tries and logging each
/// failure (redacted): an instance starting before its Redis waits for it instead of running alone.
pub async fn until_connected<T, F, Fut>(config: &RedisConfig, mut connect: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match connect().await {
            Ok(f) => return f,
            Err(e) => {
                tracing::error!(error = %Redacted(&e), target = ?config.target, "cannot connect to redis; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Connects to Redis and starts what every Redis adapter runs on: the dispatcher of subscribed
/// messages (into `hub`), the resubscriber and the byte-bounded publisher.
pub async fn connect_pubsub(config: &RedisConfig) -> redis::RedisResult<(RedisService, Hub, Arc<RedisPubSub>)> {
    let (messages, messages_rx) = incoming_queue(config.queue_bytes);
    let (disconnects, disconnects_rx) = mpsc::unbounded_channel();
    let service = RedisService::connect_bounded(&config.target, config.timeout, messages, disconnects).await?;
    let hub = Hub::default();
    hub.spawn_dispatcher(messages_rx);
    spawn_resubscriber(service.clone(), disconnects_rx);
    let publisher = Publisher::spawn(service.clone(), config.queue_bytes);
    let driver = Arc::new(RedisPubSub::new(service.clone(), publisher));
    Ok((service, hub, driver))
}
