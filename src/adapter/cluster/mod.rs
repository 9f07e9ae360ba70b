//! The core every cluster adapter shares, independent of how servers reach each other:
//!
//! - [`kinds`]: Node's `MessageType` (socket.io-adapter `ClusterAdapter`, 1..13) and the classic
//!   redis-adapter's `RequestType` (0..9), each mapped to its wire number once;
//! - [`codec`]: JSON ↔ msgpack with binaries in place, broadcast options, the classic broadcast
//!   envelope, and the JSON-or-msgpack sniffing of incoming messages;
//! - [`requests`]: this server's pending requests (broadcast acks, fetches) with one expiry
//!   timer per table, and the relay of local acks back to a requesting server;
//! - [`local`]: request ids and the JSON shapes of answers (sockets, counts, options, rooms);
//! - [`adapter`]: the `ClusterAdapter` message handling, written once.
//!
//! # The seam
//!
//! [`ClusterAdapter`] encodes every operation as `{type, data, uid, nsp}` and handles the
//! messages of other servers (BROADCAST, SOCKETS_JOIN/LEAVE, DISCONNECT_SOCKETS, FETCH_SOCKETS,
//! SERVER_SIDE_EMIT and their responses). What differs between adapters is how messages travel:
//! that is a [`ClusterBus`] (`publish` to every server, `publish_response` to one, `server_count`,
//! room created/deleted hooks and `on_heartbeat` for heartbeat types). Its receiving side calls
//! [`ClusterAdapter::on_message`] for each message read (and [`ClusterAdapter::on_response`] for
//! one read on a response-only channel). The sharded Redis adapter
//! (`adapter::redis::sharded`) is such a bus over pub/sub with a channel per room; a Redis
//! Streams adapter is another (append to a stream, read it, count servers by heartbeats via
//! `on_heartbeat`). The classic Redis adapter speaks an older protocol (request/response
//! channels, [`RequestType`]) and uses [`requests`], [`codec`] and [`local`] directly.

pub mod adapter;
pub mod codec;
pub mod kinds;
pub mod local;
pub mod requests;

#[cfg(test)]
mod harness;

pub use adapter::{ClusterAdapter, ClusterBus, Outbound, encode_message};
pub use kinds::{MessageType, RequestType};
pub use requests::Requests;
