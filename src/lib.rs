//! sio-server: a Socket.IO v4 server (Engine.IO v4 / Socket.IO v5) with a sans-IO protocol core.
//!
//! - [`engineio`]: sans-IO Engine.IO v4 (packets, payloads, request checks, the session machine).
//! - [`socketio`]: sans-IO Socket.IO v5 (packets, the decoder, per-connection state).
//! - [`transport`]: the I/O side of Engine.IO (HTTP endpoint, WebSocket, one driver per session).
//! - [`server`]: the Socket.IO server API (namespaces, sockets, rooms, acks, broadcasts).
//! - [`adapter`]: what a namespace asks of the other servers (in memory, or Redis).
//! - [`app`]: the chat application (message types, controllers, validation, rate limits).
//! - [`webhook`]: `POST /webhook`, delivering messages into rooms (in process or standalone).
//! - [`client`]: our Socket.IO client (the standalone webhook's connection, tools).
//! - [`client_bundle`]: serves the stock socket.io-client bundle (`/socket.io/socket.io.js`).
//! - [`http`]: the product's HTTP routes (endpoint, demo page, `/health`, `/stats`, `/metrics`).
//! - [`serve`]: the accept loop with its timeouts, connection caps and graceful stop.
//! - [`config`]: the settings table (flags, environment variables, defaults) and their checks.
//! - [`metrics`]: process-wide counters, one declaration each, rendered for Prometheus.
//! - [`logging`]: pretty or JSON log lines carrying the instance id.
//! - [`conformance`]: `sio-server conformance`, the protocol test suites' servers.
//! - [`client_suite`]: `sio-server client-suite`, the stock client's own test suite's server.

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
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod socketio;
pub mod time;
pub mod transport;
pub mod webhook;
