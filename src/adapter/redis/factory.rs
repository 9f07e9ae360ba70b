//! Connects to Redis and builds each namespace's Redis adapter (classic or sharded).

use super::classic::ClassicAdapter;
use super::hub::{Hub, Publisher, incoming_queue, spawn_resubscriber};
use super::service::{Redacted, RedisService, RedisTarget};
use super::sharded::ShardedAdapter;
use super::subs::{RoomSubscriptions, SubKind};
use crate::adapter::{Adapter, AdapterFactory};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Which Redis adapter to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    /// `createAdapter`: PUBLISH/PSUBSCRIBE.
    Classic,
    /// `createShardedAdapter`: SPUBLISH/SSUBSCRIBE (Redis ≥ 7).
    Sharded,
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

/// Builds Redis adapters sharing one pair of connections.
pub struct RedisAdapterFactory {
    service: RedisService,
    publisher: Publisher,
    hub: Hub,
    config: RedisConfig,
    /// Each namespace's fixed subscriptions, kept in place across failovers by their tasks.
    fixed: Mutex<Vec<RoomSubscriptions>>,
}

impl RedisAdapterFactory {
    /// Connects to Redis and starts the publisher, the dispatcher and the resubscriber.
    pub async fn connect(config: RedisConfig) -> redis::RedisResult<RedisAdapterFactory> {
        let (messages, messages_rx) = incoming_queue(config.queue_bytes);
        let (disconnects, disconnects_rx) = mpsc::unbounded_channel();
        let service = RedisService::connect_bounded(&config.target, config.timeout, messages, disconnects).await?;
        let hub = Hub::default();
        hub.spawn_dispatcher(messages_rx);
        spawn_resubscriber(service.clone(), disconnects_rx);
        let publisher = Publisher::spawn(service.clone(), config.queue_bytes);
        Ok(RedisAdapterFactory {
            service,
            publisher,
            hub,
            config,
            fixed: Mutex::default(),
        })
    }

    /// Connects, retrying with backoff (0.5 s doubling to 5 s) until Redis answers, logging each
    /// failure: an instance starting before its Redis waits for it instead of running alone.
    pub async fn connect_with_retry(config: RedisConfig) -> RedisAdapterFactory {
        let mut delay = Duration::from_millis(500);
        loop {
            match RedisAdapterFactory::connect(config.clone()).await {
                Ok(f) => {
                    tracing::info!(target = ?config.target, adapter = ?config.kind, "connected to redis");
                    return f;
                }
                Err(e) => {
                    tracing::error!(error = %Redacted(&e), target = ?config.target, "cannot connect to redis; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Subscribes `channels` (one command each, retried until Redis takes it) and keeps them
    /// subscribed across drops and failovers.
    fn keep(&self, kind: SubKind, channels: Vec<String>) {
        let subs = RoomSubscriptions::spawn_kind(self.service.clone(), kind);
        for channel in channels {
            subs.acquire(channel);
        }
        self.fixed.lock().unwrap_or_else(|e| e.into_inner()).push(subs);
    }

    /// The Redis service (for presence and health).
    pub fn service(&self) -> &RedisService {
        &self.service
    }
}

impl AdapterFactory for RedisAdapterFactory {
    fn create(&self, nsp: &str) -> Arc<dyn Adapter> {
        let c = &self.config;
        match c.kind {
            AdapterKind::Classic => {
                let a = Arc::new(ClassicAdapter::new(
                    nsp,
                    &c.key_prefix,
                    self.service.clone(),
                    self.publisher.clone(),
                    c.requests_timeout,
                ));
                self.hub.add(a.clone());
                let (patterns, channels) = a.subscriptions();
                self.keep(SubKind::Pattern, patterns);
                self.keep(SubKind::Channel, channels);
                a
            }
            AdapterKind::Sharded => {
                let a = Arc::new(ShardedAdapter::new(
                    nsp,
                    &c.key_prefix,
                    self.service.clone(),
                    self.publisher.clone(),
                    c.requests_timeout,
                ));
                self.hub.add(a.clone());
                // One channel per command (on a Cluster they hash to different slots).
                self.keep(SubKind::Sharded, a.subscriptions());
                a
            }
        }
    }
}
