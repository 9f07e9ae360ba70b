//! The Redis adapter, wire-compatible with Node's `@socket.io/redis-adapter` 8.x (classic pub/sub
//! and sharded), plus presence hashes. [`service`] hides standalone vs Cluster; [`driver`] is the
//! Redis implementation of the pub/sub driver both adapters run on.

pub mod service;

pub use service::{PubSubMessage, RedisService, RedisTarget};
pub mod classic;
pub use crate::adapter::cluster::codec;
pub mod driver;
pub mod factory;
pub mod hub;
pub mod node;
pub mod pinned;
pub mod presence;
pub mod probe;
pub mod queue;
pub mod sharded;
pub mod shardsub;
pub mod subs;
pub mod topology;

pub use factory::{AdapterKind, PubSubAdapterFactory, RedisAdapterFactory, RedisConfig};
pub use presence::{InstanceStats, PresenceTracker};
pub mod emitter;
