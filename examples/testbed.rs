//! A Socket.IO server exercising the whole server API, driven by the JS test suite
//! (`tests/js/client.test.mjs`) with the stock socket.io-client. It also shows how to embed the
//! `sio_server` crate. Listens on `PORT` (3000) with the usual configuration variables.
//!
//! Events on `/` (each acks its result):
//! - `echo` (...args): acks the same arguments.
//! - `join` / `leave` (room).
//! - `to-room` ({room, except?, event, data}): broadcast to a room from this socket.
//! - `broadcast` ({event, data}): to everyone but the sender.
//! - `ask` (data): emits `question` with an ack to the sender, acks the client's answer.
//! - `room-acks` ({room, timeout}): `to(room).timeout(..).emit_with_ack("ping-ack")`, acks the answers.
//! - `fetch` (room): ids of the sockets in a room.
//! - `make-join` ({target, room}): `sockets_join` on another socket.
//! - `kick` ({target, close}): disconnect another socket.
//! - `disconnect-me` (close): the server disconnects this socket.
//! - `reasons`: acks the disconnect reasons recorded so far, by socket id.
//! - `shutdown`: the process exits (for restart tests).
//! - `server-emit` (event, ...args): `server_side_emit` to the other servers.
//! - `server-events`: the `test-event` server-side events received so far (arrays of args).
//! - `server-count`: how many servers share the namespace.
//!
//! With `REDIS_*` set, the testbed runs the Redis adapter like `sio-server`.
//!
//! `/private` refuses connections whose `auth.token` is not `"secret"` with
//! `{"message":"not authorized","data":{"code":401}}`; namespaces matching `^/dyn-[0-9]+$` are
//! created on demand and greet with `hello` (their name).

use serde::Deserialize;
use serde_json::{Value, json};
use sio_server::config::Config;
use sio_server::server::{ConnectError, Server, ServerConfig, Socket};
use sio_server::transport::{Cors, Engine, EngineOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Deserialize)]
struct ToRoom {
    room: String,
    except: Option<String>,
    event: String,
    data: Value,
}

#[derive(Deserialize)]
struct Target {
    target: String,
    room: Option<String>,
    close: Option<bool>,
}

fn main_namespace(io: &Server, reasons: Arc<Mutex<HashMap<String, String>>>) {
    let nsp = io.of("/");
    let server_events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = server_events.clone();
    nsp.on_server_event("test-event", move |args| {
        record.lock().unwrap().push(Value::Array(args.to_vec()))
    });
    let nsp2 = nsp.clone();
    nsp.on_connection(move |socket: &Socket| {
        let record = reasons.clone();
        socket.on_disconnect(move |s, reason| {
            record.lock().unwrap().insert(s.id().to_owned(), reason.to_string());
        });
        socket.on("echo", |_s, ev, ack| {
            if let Some(ack) = ack {
                let _ = ack.send_args(ev.args, ev.binary);
            }
        });
        socket.on("join", |s, ev, ack| {
            let room: String = ev.arg(0).unwrap_or_default();
            let _ = s.join(&room);
            if let Some(ack) = ack {
                let _ = ack.send(json!({"ok": true, "rooms": s.rooms()}));
            }
        });
        socket.on("leave", |s, ev, ack| {
            let room: String = ev.arg(0).unwrap_or_default();
            s.leave(&room);
            if let Some(ack) = ack {
                let _ = ack.send(json!({"ok": true, "rooms": s.rooms()}));
            }
        });
        socket.on("to-room", |s, ev, ack| {
            let Ok(req) = ev.arg::<ToRoom>(0) else { return };
            let mut op = s.to(&req.room);
            if let Some(except) = &req.except {
                op = op.except(except);
            }
            // Binary attachments of `data` (placeholders) are forwarded with it.
            let result = op.emit_args(&req.event, vec![req.data], ev.binary);
            if let Some(ack) = ack {
                let _ = ack.send(json!({"ok": result.is_ok()}));
            }
        });
        socket.on("broadcast", |s, ev, ack| {
            let event: String = ev
                .arg::<Value>(0)
                .ok()
                .and_then(|v| v["event"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let data = ev.args.first().map(|v| v["data"].clone()).unwrap_or(Value::Null);
            let _ = s.broadcast().emit(&event, data);
            if let Some(ack) = ack {
                let _ = ack.send(true);
            }
        });
        socket.on("ask", |s, ev, ack| {
            let question = s.emit_with_ack(
                "question",
                ev.args.first().cloned().unwrap_or(Value::Null),
                Duration::from_secs(2),
            );
            tokio::spawn(async move {
                let answer = match question.await {
                    Ok(reply) => json!({"ok": true, "args": reply.args}),
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                };
                if let Some(ack) = ack {
                    let _ = ack.send(answer);
                }
            });
        });
        let nsp = nsp2.clone();
        socket.on("room-acks", move |_s, ev, ack| {
            let room = ev
                .args
                .first()
                .and_then(|v| v["room"].as_str())
                .unwrap_or("")
                .to_owned();
            let ms = ev.args.first().and_then(|v| v["timeout"].as_u64()).unwrap_or(1000);
            let fut = nsp
                .to(&room)
                .timeout(Duration::from_millis(ms))
                .emit_with_ack("ping-ack", json!({"room": room}));
            tokio::spawn(async move {
                let result = match fut.await {
                    Ok(answers) => json!({"ok": true, "answers": answers}),
                    Err(sio_server::server::AckError::Timeout(partial)) => json!({"ok": false, "answers": partial}),
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                };
                if let Some(ack) = ack {
                    let _ = ack.send(result);
                }
            });
        });
        let nsp = nsp2.clone();
        socket.on("fetch", move |_s, ev, ack| {
            let room: String = ev.arg(0).unwrap_or_default();
            let op = nsp.to(&room);
            tokio::spawn(async move {
                let mut ids: Vec<String> = op.fetch_sockets().await.into_iter().map(|s| s.id).collect();
                ids.sort();
                if let Some(ack) = ack {
                    let _ = ack.send(ids);
                }
            });
        });
        let nsp = nsp2.clone();
        socket.on("make-join", move |_s, ev, ack| {
            let Ok(t) = ev.arg::<Target>(0) else { return };
            nsp.to(&t.target).sockets_join(&[t.room.as_deref().unwrap_or("")]);
            if let Some(ack) = ack {
                let _ = ack.send(true);
            }
        });
        let nsp = nsp2.clone();
        socket.on("kick", move |_s, ev, ack| {
            let Ok(t) = ev.arg::<Target>(0) else { return };
            if let Some(ack) = ack {
                let _ = ack.send(true);
            }
            nsp.to(&t.target).disconnect_sockets(t.close.unwrap_or(false));
        });
        socket.on("disconnect-me", |s, ev, _ack| {
            s.disconnect(ev.arg::<bool>(0).unwrap_or(false));
        });
        let reasons = reasons.clone();
        socket.on("reasons", move |_s, _ev, ack| {
            let map = reasons.lock().unwrap().clone();
            if let Some(ack) = ack {
                let _ = ack.send(map);
            }
        });
        socket.on("shutdown", |_s, _ev, _ack| std::process::exit(0));
        let nsp = nsp2.clone();
        socket.on("server-emit", move |_s, ev, ack| {
            nsp.server_side_emit(&ev.args);
            if let Some(ack) = ack {
                let _ = ack.send(true);
            }
        });
        let nsp = nsp2.clone();
        socket.on("server-count", move |_s, _ev, ack| {
            let count = nsp.adapter().server_count();
            tokio::spawn(async move {
                let n = count.await;
                if let Some(ack) = ack {
                    let _ = ack.send(n);
                }
            });
        });
        let events = server_events.clone();
        socket.on("server-events", move |_s, _ev, ack| {
            let list = events.lock().unwrap().clone();
            if let Some(ack) = ack {
                let _ = ack.send(list);
            }
        });
    });
}

fn other_namespaces(io: &Server) {
    io.of("/private").use_middleware(|socket| {
        if socket.handshake().auth["token"] == "secret" {
            Ok(())
        } else {
            Err(ConnectError::new("not authorized").with_data(json!({"code": 401})))
        }
    });
    io.of("/private").on_connection(|s| {
        let _ = s.emit("welcome", "private");
    });
    match io.of_regex(r"^/dyn-[0-9]+$") {
        Ok(parent) => parent.on_connection(|s| {
            let _ = s.emit("hello", s.nsp().name());
        }),
        Err(e) => eprintln!("bad pattern: {e}"),
    }
}

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("testbed: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let server_config = ServerConfig {
        connect_timeout: config.connect_timeout,
        ..ServerConfig::default()
    };
    let io = match &config.redis {
        None => Server::new(server_config),
        Some(rc) => {
            let factory = sio_server::adapter::redis::RedisAdapterFactory::connect_with_retry(rc.clone()).await;
            Server::with_adapter(server_config, Arc::new(factory))
        }
    };
    let reasons = Arc::new(Mutex::new(HashMap::new()));
    main_namespace(&io, reasons);
    other_namespaces(&io);
    let options = EngineOptions {
        cors: Some(Cors::Any),
        ..EngineOptions::default()
    };
    let engine = Engine::new(config.engine.clone(), options, io.engine_handler());
    let app = sio_server::http::engine_routes(&config.path, engine, true);
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on {addr}");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .expect("serve");
}
