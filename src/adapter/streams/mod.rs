//! The Redis Streams adapter, wire-compatible with `@socket.io/redis-streams-adapter` 0.3.x
//! (see `docs/STREAMS.md`). [`codec`] is its sans-IO wire format.

pub mod codec;
