//! `sio-server client-suite`: the server the stock `socket.io-client`'s own test suite runs against
//! (its `test/support/server.ts`): pingInterval 2 s, every handshake held ~10 ms (so the client's
//! connection timeout can be tested), the namespaces `/foo`, `/timeout_socket`, `/valid`, `/asd`,
//! `/abc` and `/no`, a main-namespace middleware refusing `?fail`, and the main namespace's events
//! (`hi`, `echo`, acks, dates, UTF-8, binary in order, handshake, id). Connection state recovery
//! (issue #17) is not part of it yet.

use crate::engineio::EngineConfig;
use crate::http::engine_routes;
use crate::server::{ConnectError, Event, Server, ServerConfig, Socket};
use crate::socketio::packet::placeholder_num;
use crate::time::{iso8601, now_ms};
use crate::transport::{Engine, EngineOptions};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The port the client's suite connects to (`BASE_URL` is http://localhost:3210).
pub const DEFAULT_PORT: u16 = 3210;

/// How long each handshake is held before it is answered (the Node server's `allowRequest`).
pub const HANDSHAKE_DELAY: Duration = Duration::from_millis(10);

/// How long the server waits for the client's answer to its own `ack` event.
const SERVER_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The bytes the Node server sends for `doge` and `getbin` (`Buffer.from("asdfasdf")`).
const ASDF: &[u8] = b"asdfasdf";

fn engine_config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(2000),
        ..EngineConfig::default()
    }
}

/// Whether argument `i` of `ev` is a binary attachment (Node's `Buffer.isBuffer(arg)`).
fn is_binary(v: Option<&Value>, ev: &Event) -> bool {
    v.and_then(placeholder_num)
        .flatten()
        .is_some_and(|n| (n as usize) < ev.binary.len())
}

/// Whether `a` is `{hello: "lol", message: <binary>, goodbye: "gotcha"}`.
fn is_json_with_binary(ev: &Event) -> bool {
    let Some(a) = ev.args.first() else {
        return false;
    };
    a.get("hello") == Some(&json!("lol"))
        && is_binary(a.get("message"), ev)
        && a.get("goodbye") == Some(&json!("gotcha"))
}

/// Emits `event` without arguments.
fn emit0(s: &Socket, event: &str) {
    let _ = s.emit_args(event, Vec::new(), Vec::new());
}

/// Emits `event` with one binary argument.
fn emit_bin(s: &Socket, event: &str, data: &'static [u8]) {
    let _ = s.emit_args(
        event,
        vec![crate::socketio::placeholder(0)],
        vec![Bytes::from_static(data)],
    );
}

/// The first argument of an ack reply, `null` when there is none (what `cb(arg)` sends for
/// `undefined`), with every attachment so placeholders inside it still resolve.
fn first_arg(ev: Event) -> (Vec<Value>, Vec<Bytes>) {
    let first = ev.args.into_iter().next().unwrap_or(Value::Null);
    (vec![first], ev.binary)
}

/// Per-socket state of the "in order" checks (`abuff1` before `abuff2`, `blob1..3`).
#[derive(Default)]
struct Order {
    abuff1: AtomicBool,
    blob1: AtomicBool,
    blob2: AtomicBool,
}

fn on_main_connection(socket: &Socket) {
    socket.on("hi", |s, _ev, _ack| emit0(s, "hi"));
    socket.on("echo", |_s, ev, ack| {
        if let Some(ack) = ack {
            let (args, binary) = first_arg(ev);
            let _ = ack.send_args(args, binary);
        }
    });
    socket.on("ack", |s, _ev, _ack| {
        let reply = s.emit_args_with_ack("ack", Vec::new(), Vec::new(), SERVER_ACK_TIMEOUT);
        let s = s.clone();
        tokio::spawn(async move {
            let Ok(reply) = reply.await else { return };
            let five = reply.args.first() == Some(&json!(5));
            let test = reply.args.get(1).and_then(|b| b.get("test")).is_some_and(truthy);
            if five && test {
                emit0(&s, "got it");
            }
        });
    });
    socket.on("getAckDate", |_s, _ev, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(iso8601(now_ms()));
        }
    });
    socket.on("getDate", |s, _ev, _ack| {
        let _ = s.emit("takeDate", iso8601(now_ms()));
    });
    socket.on("getDateObj", |s, _ev, _ack| {
        let _ = s.emit("takeDateObj", json!({ "date": iso8601(now_ms()) }));
    });
    socket.on("getUtf8", |s, _ev, _ack| {
        for text in ["てすと", "Я Б Г Д Ж Й", "Ä ä Ü ü ß", "utf8 — string", "utf8 — string"] {
            let _ = s.emit("takeUtf8", text);
        }
    });
    socket.on("false", |s, _ev, _ack| {
        let _ = s.emit("false", false);
    });
    socket.on("doge", |s, _ev, _ack| emit_bin(s, "doge", ASDF));
    socket.on("getbin", |s, _ev, _ack| emit_bin(s, "takebin", ASDF));
    socket.on("buffa", |s, ev, _ack| {
        if is_binary(ev.args.first(), &ev) {
            emit0(s, "buffack");
        }
    });
    socket.on("jsonbuff", |s, ev, _ack| {
        if is_json_with_binary(&ev) {
            emit0(s, "jsonbuff-ack");
        }
    });
    socket.on("blob", |s, ev, _ack| {
        if is_binary(ev.args.first(), &ev) {
            emit0(s, "back");
        }
    });
    socket.on("jsonblob", |s, ev, _ack| {
        if is_json_with_binary(&ev) {
            emit0(s, "jsonblob-ack");
        }
    });
    let order = Arc::new(Order::default());
    let o = order.clone();
    socket.on("abuff1", move |_s, ev, _ack| {
        if is_binary(ev.args.first(), &ev) {
            o.abuff1.store(true, Ordering::Relaxed);
        }
    });
    let o = order.clone();
    socket.on("abuff2", move |s, _ev, _ack| {
        if o.abuff1.load(Ordering::Relaxed) {
            emit0(s, "abuff2-ack");
        }
    });
    let o = order.clone();
    socket.on("blob1", move |_s, ev, _ack| {
        if is_binary(ev.args.first(), &ev) {
            o.blob1.store(true, Ordering::Relaxed);
        }
    });
    let o = order.clone();
    socket.on("blob2", move |_s, ev, _ack| {
        if o.blob1.load(Ordering::Relaxed) && ev.args.first() == Some(&json!("second")) {
            o.blob2.store(true, Ordering::Relaxed);
        }
    });
    socket.on("blob3", move |s, ev, _ack| {
        let before = order.blob1.load(Ordering::Relaxed) && order.blob2.load(Ordering::Relaxed);
        if before && is_binary(ev.args.first(), &ev) {
            emit0(s, "blob3-ack");
        }
    });
    socket.on("getHandshake", |s, _ev, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(s.handshake().to_json());
        }
    });
    socket.on("getId", |s, _ev, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(s.id());
        }
    });
}

/// JavaScript truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The Socket.IO server of the client's suite.
pub fn server() -> Server {
    // Node's test server has `connectionStateRecovery: {}`: on, 2 minutes, middlewares skipped.
    let io = Server::new(ServerConfig {
        recovery: true,
        ..ServerConfig::default()
    });
    io.of("/foo").on_connection(|socket| {
        socket.on("getId", |s, _ev, ack| {
            if let Some(ack) = ack {
                let _ = ack.send(s.id());
            }
        });
    });
    for name in ["/timeout_socket", "/valid", "/asd"] {
        io.of(name);
    }
    io.of("/abc").on_connection(|socket| {
        let _ = socket.emit("handshake", socket.handshake().to_json());
    });
    io.sockets().use_middleware(|socket| {
        // Node tests `socket.request._query.fail`: any non-empty value refuses.
        match socket.handshake().query_param("fail") {
            Some(v) if !v.is_empty() => Err(ConnectError::new("Auth failed (main namespace)")),
            _ => Ok(()),
        }
    });
    io.of("/no")
        .use_middleware(|_socket| Err(ConnectError::new("Auth failed (custom namespace)")));
    io.sockets().on_connection(on_main_connection);
    io
}

/// Holds every handshake (a request without `sid`) for [`HANDSHAKE_DELAY`], like the Node
/// server's `allowRequest`; requests of open sessions pass straight through.
async fn delay_handshake(req: Request, next: Next) -> Response {
    let has_sid = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("sid=")));
    if !has_sid {
        tokio::time::sleep(HANDSHAKE_DELAY).await;
    }
    next.run(req).await
}

/// The client-suite router: the Engine.IO endpoint on `/socket.io/`, with the client bundle.
pub fn router() -> Router {
    let engine = Engine::new(engine_config(), EngineOptions::default(), server().engine_handler());
    engine_routes("/socket.io", engine, true).layer(middleware::from_fn(delay_handshake))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(args: Value, binary: usize) -> Event {
        Event {
            name: "e".into(),
            args: args.as_array().cloned().unwrap_or_default(),
            binary: (0..binary).map(|_| Bytes::from_static(b"x")).collect(),
        }
    }

    #[test]
    fn binary_arguments_are_recognised() {
        let ev = event(json!([{"_placeholder": true, "num": 0}]), 1);
        assert!(is_binary(ev.args.first(), &ev));
        // A placeholder without its attachment, or a plain object, is not a buffer.
        let ev = event(json!([{"_placeholder": true, "num": 1}]), 1);
        assert!(!is_binary(ev.args.first(), &ev));
        let ev = event(json!([{"a": 1}]), 0);
        assert!(!is_binary(ev.args.first(), &ev));
        let ev = event(
            json!([{"hello": "lol", "message": {"_placeholder": true, "num": 0}, "goodbye": "gotcha"}]),
            1,
        );
        assert!(is_json_with_binary(&ev));
        let ev = event(json!([{"hello": "lol", "message": "text", "goodbye": "gotcha"}]), 0);
        assert!(!is_json_with_binary(&ev));
    }

    #[test]
    fn javascript_truthiness() {
        for v in [json!(true), json!(1), json!("x"), json!({}), json!([])] {
            assert!(truthy(&v), "{v}");
        }
        for v in [json!(false), json!(0), json!(""), json!(null)] {
            assert!(!truthy(&v), "{v}");
        }
    }
}
