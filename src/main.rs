//! `sio-server`: the Socket.IO server binary. `sio-server conformance` runs the protocol test servers;
//! `sio-server client-suite` runs the server of the stock client's own test suite.

use sio_server::adapter::redis::{PresenceTracker, RedisAdapterFactory};
use sio_server::config::{Config, Env, WebhookPort};
use sio_server::http::{self, AppState, RedisState};
use sio_server::serve::ServeOptions;
use sio_server::server::{Server, ServerConfig};
use sio_server::transport::{Cors, Engine, EngineOptions};
use sio_server::webhook::{Delivery, WebhookOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: sio-server [conformance | client-suite] [--port N] [--host ADDR] [--<variable> VALUE]…
Every environment variable of the configuration table can also be given as a flag:
--ping-interval 25000 sets PING_INTERVAL, and so on. See README.md.";

/// Which server the binary runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The product.
    Product,
    /// The protocol test servers (`conformance`).
    Conformance,
    /// The server of the stock client's test suite (`client-suite`).
    ClientSuite,
}

/// Turns `--some-name value` / `--some-name=value` into `SOME_NAME=value` overrides.
fn parse_args(args: &[String]) -> Result<(Mode, HashMap<String, String>), String> {
    let mut mode = Mode::Product;
    let mut vars = HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "conformance" {
            mode = Mode::Conformance;
        } else if a == "client-suite" {
            mode = Mode::ClientSuite;
        } else if a == "-h" || a == "--help" {
            return Err(String::new());
        } else if let Some(flag) = a.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (
                    flag.to_owned(),
                    it.next().cloned().ok_or(format!("--{flag} needs a value"))?,
                ),
            };
            vars.insert(name.to_ascii_uppercase().replace('-', "_"), value);
        } else {
            return Err(format!("unexpected argument {a:?}"));
        }
    }
    Ok((mode, vars))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let args = args.get(1..).unwrap_or_default();
    let (mode, mut overrides) = match parse_args(args) {
        Ok(p) => p,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("sio-server: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if mode == Mode::ClientSuite && !overrides.contains_key("PORT") && std::env::var_os("PORT").is_none() {
        // The client's suite connects to localhost:3210; PORT (or --port) moves it.
        overrides.insert("PORT".into(), sio_server::client_suite::DEFAULT_PORT.to_string());
    }
    let env = Env(move |k: &str| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()));
    let config = match Config::from_vars(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-server: {e}");
            return ExitCode::from(2);
        }
    };
    sio_server::logging::init(config.log_format, &config.instance_id);
    if mode == Mode::Conformance {
        // The protocol test suites expect 127.0.0.1:3000; PORT (or --port) moves it for parallel runs.
        let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
        return serve(addr, sio_server::conformance::router(), None, &config).await;
    }
    if mode == Mode::ClientSuite {
        let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
        return serve(addr, sio_server::client_suite::router(), None, &config).await;
    }
    let server_config = ServerConfig {
        connect_timeout: config.connect_timeout,
        max_rooms_per_socket: config.limits.max_rooms_per_socket,
        max_event_name_len: config.limits.max_event_name_len,
        max_pending_acks: config.limits.max_pending_acks,
        parser: config.parser,
        ..ServerConfig::default()
    };
    let (io, redis) = match &config.redis {
        None => (Server::new(server_config), None),
        Some(rc) => {
            let factory = RedisAdapterFactory::connect_with_retry(rc.clone()).await;
            let service = factory.service().clone();
            let presence = PresenceTracker::new(service.clone(), &config.instance_id);
            (
                Server::with_adapter(server_config, Arc::new(factory)),
                Some(RedisState { service, presence }),
            )
        }
    };
    let app = sio_server::app::ChatApp::new(&config.instance_id).with_chat_rate(sio_server::app::ChatRate {
        messages_per_sec: config.limits.chat_rate_messages,
        bytes_per_sec: config.limits.chat_rate_bytes,
    });
    app.attach(&io);
    let options = EngineOptions {
        cors: config.cors_origin.as_deref().map(Cors::parse),
        sid_tag: Some(config.instance_id.clone()),
        max_connections: config.limits.max_connections,
        handshake_rate_per_ip: config.limits.handshake_rate_per_ip,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_half_open_per_ip: config.limits.max_half_open_per_ip,
        trusted_proxies: config.trusted_proxies.clone(),
        outbox_limits: sio_server::transport::outbox::OutboxLimits::from_soft(config.limits.outbound_queue_bytes),
        http_compression: config.http_compression,
        ..EngineOptions::default()
    };
    let engine = Engine::new(config.engine.clone(), options, io.engine_handler());
    if sio_server::client_bundle::version().is_none() {
        tracing::warn!(
            "socket.io-client bundle not embedded: /socket.io/socket.io.js answers 404 (run `npm ci --prefix public` and rebuild)"
        );
    }
    if let Some(r) = &redis {
        let engine = engine.clone();
        r.presence.spawn(move || engine.session_count());
    }
    let state = Arc::new(AppState {
        redis: redis.clone(),
        instance_id: config.instance_id.clone(),
        started: Instant::now(),
        io,
        engine: engine.clone(),
    });
    if !start_webhook(&config, state.io.clone(), app).await {
        return ExitCode::from(1);
    }
    let addr = SocketAddr::new(config.host, config.port);
    tracing::info!(%addr, instance_id = %config.instance_id, "sio-server starting");
    let code = serve(addr, http::router(state, &config.path), Some(engine), &config).await;
    if let Some(r) = redis
        && let Err(e) = r.presence.remove().await
    {
        tracing::warn!(error = %e, "cannot remove this instance's presence entry");
    }
    code
}

/// Serves the webhook in this process on `WEBHOOK_PORT`, delivering straight into `io`.
/// Returns false only when an explicitly configured port cannot be bound.
async fn start_webhook(config: &Config, io: Server, app: sio_server::app::ChatApp) -> bool {
    let (port, explicit) = match config.webhook_port {
        WebhookPort::Off => return true,
        WebhookPort::Default(p) => (p, false),
        WebhookPort::Explicit(p) => (p, true),
    };
    let addr = SocketAddr::new(config.host, port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "webhook port taken; serving Socket.IO without the webhook (set WEBHOOK_PORT)");
            return true;
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for the webhook");
            return false;
        }
    };
    let options = WebhookOptions {
        secret: config.webhook_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
        body_timeout: config.limits.header_read_timeout,
        ..WebhookOptions::default()
    };
    let router = sio_server::webhook::router(Delivery::InProcess { io, app }, options, &config.instance_id);
    tracing::info!(%addr, "webhook listening (in-process delivery)");
    sio_server::webhook::warn_if_exposed(addr, config.webhook_secret.is_some());
    let serve_options = ServeOptions {
        header_read_timeout: config.limits.header_read_timeout,
        write_timeout: config.limits.write_timeout,
        max_connections: Some(sio_server::webhook::MAX_CONNECTIONS),
        max_connections_per_ip: Some(sio_server::webhook::MAX_CONNECTIONS_PER_IP),
    };
    tokio::spawn(async move {
        // The webhook lives as long as the process; its stop channel never fires.
        let (_keep, never) = tokio::sync::watch::channel(false);
        let options = serve_options;
        sio_server::serve::serve(listener, router, options, never).await;
    });
    true
}

/// Serves until SIGTERM/SIGINT, then shuts down gracefully: stop accepting, tell every client to
/// reconnect (sessions close with "server shutting down" after flushing what is queued), wait for
/// them within `grace`, and return.
async fn serve(addr: SocketAddr, router: axum::Router, engine: Option<Engine>, config: &Config) -> ExitCode {
    let grace = config.shutdown_grace;
    let serve_options = ServeOptions {
        header_read_timeout: config.limits.header_read_timeout,
        write_timeout: config.limits.write_timeout,
        max_connections: None,
        max_connections_per_ip: None,
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, "listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(sio_server::serve::serve(listener, router, serve_options, stop_rx));
    tokio::select! {
        _ = sio_server::serve::shutdown_signal() => {}
        _ = &mut server => return ExitCode::from(1),
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Sessions close first, while the listener still accepts, so polling clients can fetch what
    // was queued for them (and their close packet); new handshakes are refused meanwhile.
    if let Some(engine) = &engine {
        tracing::info!(
            sessions = engine.session_count(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: closing sessions"
        );
        engine.shutdown();
        while engine.session_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = engine.session_count();
        if left > 0 {
            tracing::warn!(sessions = left, "grace period over with sessions still open");
        }
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout_at(deadline, server).await {
        Ok(_) => {
            tracing::info!("shut down");
            ExitCode::SUCCESS
        }
        Err(_) => {
            tracing::warn!("grace period over with HTTP connections still open");
            ExitCode::SUCCESS
        }
    }
}
