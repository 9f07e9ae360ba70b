//! sio-server: a Socket.IO v4 server (Engine.IO v4 / Socket.IO v5) with a sans-IO protocol core.
//!
//! - [`engineio`] and [`socketio`]: the protocol core, no I/O.
//! - [`config`]: configuration from the environment.
//! - [`http`]: the HTTP routes of the product.

pub mod adapter;
pub mod admin;
pub mod app;
pub mod client;
pub mod client_bundle;
pub mod client_suite;
pub mod config;
pub mod conformance;
pub mod engineio;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod socketio;
pub mod transport;
pub mod webhook;
