//! How a streams adapter's requests and responses travel: the shared [`ClusterAdapter`] over
//! plain pub/sub, always msgpack, as Node's redis-streams-adapter sends them.

use crate::adapter::BoxFuture;
use crate::adapter::cluster::codec::{encode_mp, json_to_mp};
use crate::adapter::cluster::{ClusterAdapter, ClusterBus, Outbound};
use crate::adapter::pubsub::{PubSub, PubSubMessage, Routed};
use serde_json::Value;
use std::sync::Arc;

/// How the [`ClusterAdapter`]'s requests and responses travel: plain pub/sub on
/// `<prefix>#<nsp>#` and `<prefix>#<nsp>#<uid>#`, always msgpack (Node's streams adapter decodes
/// nothing else there); servers counted with `PUBSUB NUMSUB`.
pub(super) struct StreamsBus {
    pub(super) driver: Arc<dyn PubSub>,
    pub(super) channel: String,
}

/// A JSON-encoded cluster message re-encoded as msgpack (binary ones already are).
pub(super) fn as_msgpack(payload: Vec<u8>) -> Vec<u8> {
    if payload.first() != Some(&b'{') {
        return payload;
    }
    match serde_json::from_slice::<Value>(&payload) {
        Ok(v) => encode_mp(&json_to_mp(&v, &[])),
        Err(_) => payload,
    }
}

impl ClusterBus for StreamsBus {
    fn publish(&self, _to: Outbound<'_>, payload: Vec<u8>) {
        self.driver.publish(self.channel.clone(), as_msgpack(payload));
    }

    fn publish_response(&self, requester: &str, payload: Vec<u8>) {
        self.driver
            .publish(format!("{}{requester}#", self.channel), as_msgpack(payload));
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let count = self.driver.numsub(&self.channel);
        Box::pin(async move { count.await.unwrap_or(1).max(1) })
    }

    fn is_healthy(&self) -> bool {
        self.driver.is_healthy()
    }
}

/// Routes one namespace's pub/sub messages to its [`ClusterAdapter`].
pub(super) struct StreamsRoute {
    pub(super) adapter: Arc<ClusterAdapter>,
    pub(super) channel: String,
    pub(super) response_channel: String,
}

impl Routed for StreamsRoute {
    fn route(&self, msg: &PubSubMessage) -> Option<usize> {
        (msg.channel == self.channel || msg.channel == self.response_channel).then_some(msg.channel.len())
    }

    fn deliver(&self, msg: PubSubMessage) {
        self.adapter
            .on_pubsub(&msg.channel, &msg.payload, &self.response_channel);
    }
}
