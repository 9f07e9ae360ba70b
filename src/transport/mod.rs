//! The I/O side of Engine.IO: the HTTP endpoint (polling and WebSocket upgrades on hyper/axum),
//! one driver task per session, and per-connection outbound queues.

mod admission;
mod body;
pub mod compress;
pub mod conn;
pub mod cors;
mod deflate_ws;
mod driver;
pub mod endpoint;
mod mailbox;
pub mod outbox;
mod pipe;
pub mod proxy;
mod registry;
pub mod wsframe;

pub use conn::{ConnHandler, EngineConn, EngineHandler, RequestInfo};
pub use cors::Cors;
pub use driver::Ws;
pub use endpoint::{Engine, EngineOptions};
pub use outbox::{Outbox, Pushed};
pub use proxy::TrustedProxies;
