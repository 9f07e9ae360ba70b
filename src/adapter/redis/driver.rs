//! The Redis implementation of the [`PubSub`] driver: publishes go through the batched,
//! byte-bounded [`Publisher`]; subscriptions are reference-counted per channel and applied in
//! order by one [`RoomSubscriptions`] task per kind, which re-issues them after drops and
//! failovers; counts are `PUBSUB NUMSUB` / `SHARDNUMSUB` summed over a Cluster's nodes.

use super::hub::{Outgoing, Publisher};
use super::service::{Redacted, RedisService};
use super::subs::{RoomSubscriptions, SubKind};
use crate::adapter::BoxFuture;
use crate::adapter::pubsub::PubSub;

/// A Redis pub/sub connection pair (commands and subscriptions) as a [`PubSub`] driver.
pub struct RedisPubSub {
    service: RedisService,
    publisher: Publisher,
    channels: RoomSubscriptions,
    patterns: RoomSubscriptions,
    sharded: RoomSubscriptions,
}

impl RedisPubSub {
    /// The driver over `service`, publishing through `publisher`.
    pub fn new(service: RedisService, publisher: Publisher) -> RedisPubSub {
        RedisPubSub {
            channels: RoomSubscriptions::spawn_kind(service.clone(), SubKind::Channel),
            patterns: RoomSubscriptions::spawn_kind(service.clone(), SubKind::Pattern),
            sharded: RoomSubscriptions::spawn_kind(service.clone(), SubKind::Sharded),
            service,
            publisher,
        }
    }

    fn count(&self, channel: &str, sharded: bool) -> BoxFuture<'static, Result<usize, String>> {
        let (service, channel) = (self.service.clone(), channel.to_owned());
        Box::pin(async move {
            service
                .numsub(&channel, sharded)
                .await
                .map_err(|e| Redacted(e).to_string())
        })
    }
}

impl PubSub for RedisPubSub {
    fn publish(&self, channel: String, payload: Vec<u8>) {
        self.publisher.send(Outgoing {
            channel,
            payload,
            sharded: false,
        });
    }

    fn spublish(&self, channel: String, payload: Vec<u8>) {
        self.publisher.send(Outgoing {
            channel,
            payload,
            sharded: true,
        });
    }

    fn subscribe(&self, channel: String) {
        self.channels.acquire(channel);
    }

    fn unsubscribe(&self, channel: &str) {
        self.channels.release(channel);
    }

    fn psubscribe(&self, pattern: String) {
        self.patterns.acquire(pattern);
    }

    fn punsubscribe(&self, pattern: &str) {
        self.patterns.release(pattern);
    }

    fn ssubscribe(&self, channel: String) {
        self.sharded.acquire(channel);
    }

    fn sunsubscribe(&self, channel: &str) {
        self.sharded.release(channel);
    }

    fn numsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>> {
        self.count(channel, false)
    }

    fn shardnumsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>> {
        self.count(channel, true)
    }

    fn is_healthy(&self) -> bool {
        self.service.is_healthy()
    }
}
