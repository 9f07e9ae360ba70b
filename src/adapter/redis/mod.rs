//! The Redis adapter, wire-compatible with Node's `@socket.io/redis-adapter` 8.x (classic pub/sub
//! and sharded), plus presence hashes. [`service`] hides standalone vs Cluster.

pub mod service;

pub use service::{PubSubMessage, RedisService, RedisTarget};
pub mod classic;
pub mod codec;
pub mod factory;
pub mod hub;
pub mod node;
pub mod pinned;
pub mod presence;
pub mod probe;
pub mod queue;
pub mod sharded;
pub mod subs;

pub use factory::{AdapterKind, RedisAdapterFactory, RedisConfig};
pub use presence::{InstanceStats, PresenceTracker};
pub mod emitter;
