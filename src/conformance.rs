//! `sio-server conformance`: the servers the public Engine.IO v4 / Socket.IO v5 protocol test
//! suites expect, side by side on one port — a bare Engine.IO echo server on `/engine.io/` and the
//! Socket.IO test server on `/socket.io/` (pingInterval 300 ms, pingTimeout 200 ms).

use crate::engineio::{CloseReason, Data, EngineConfig, Frame};
use crate::http::engine_routes;
use crate::server::{Server, ServerConfig};
use crate::transport::{ConnHandler, Cors, Engine, EngineConn, EngineHandler, EngineOptions, RequestInfo};
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine_config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        ..EngineConfig::default()
    }
}

/// Echoes every message back to its sender.
struct Echo;

struct EchoConn(EngineConn);

impl EngineHandler for Echo {
    fn on_open(&self, conn: EngineConn, _request: &RequestInfo, _now: Instant) -> Box<dyn ConnHandler> {
        Box::new(EchoConn(conn))
    }
}

impl ConnHandler for EchoConn {
    fn on_message(&mut self, data: Data, _now: Instant) {
        let frame = match data {
            Data::Text(s) => Frame::message_text(&s),
            Data::Binary(b) => Frame::Binary(b),
        };
        self.0.send(&[frame], false);
    }

    fn on_close(&mut self, _reason: CloseReason) {}
}

/// The Socket.IO test server of the v5 suite.
pub fn socketio_server() -> Server {
    let io = Server::new(ServerConfig {
        connect_timeout: Duration::from_millis(1000),
        ..ServerConfig::default()
    });
    io.of("/").on_connection(|socket| {
        let _ = socket.emit("auth", socket.handshake().auth.clone());
        socket.on("message", |s, ev, _ack| {
            let _ = s.emit_args("message-back", ev.args, ev.binary);
        });
        socket.on("message-with-ack", |_s, ev, ack| {
            if let Some(ack) = ack {
                let _ = ack.send_args(ev.args, ev.binary);
            }
        });
    });
    io.of("/custom").on_connection(|socket| {
        let _ = socket.emit("auth", socket.handshake().auth.clone());
    });
    io
}

/// The conformance router: `/engine.io/` and `/socket.io/`.
pub fn router() -> Router {
    let options = EngineOptions {
        cors: Some(Cors::Any),
        ..EngineOptions::default()
    };
    let echo = Engine::new(engine_config(), options.clone(), Arc::new(Echo));
    let io = socketio_server();
    let sio = Engine::new(engine_config(), options, io.engine_handler());
    engine_routes("/engine.io", echo, false).merge(engine_routes("/socket.io", sio, true))
}
