//! `sio-server`: the Socket.IO server binary. `sio-server conformance` runs the protocol test servers;
//! `sio-server client-suite` runs the server of the stock client's own test suite. The command
//! line and the settings are `sio_server::config`'s; `--help` lists them.

use sio_server::adapter::AdapterFactory;
use sio_server::adapter::redis::{AdapterKind, PresenceTracker, RedisAdapterFactory};
use sio_server::adapter::streams::{StreamsAdapterFactory, StreamsRecovery};
use sio_server::app::{ChatApp, ChatRate};
use sio_server::config::{Config, Mode, WebhookPort};
use sio_server::http::{self, AppState, RedisState};
use sio_server::serve::ServeOptions;
use sio_server::server::{Server, ServerConfig};
use sio_server::transport::outbox::OutboxLimits;
use sio_server::transport::{Cors, Engine, EngineOptions};
use sio_server::webhook::{Delivery, WebhookOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// jemalloc: ~15% less server CPU per client on the connection storm than glibc's malloc (whose
/// malloc/free were 12% of its profile), with the same memory per idle connection and fan-out
/// (mimalloc was as fast but took 50–70% more memory per connection); see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: freed pages go back to the kernel after 100 ms, straight with
/// `MADV_DONTNEED` (muzzy pages would still count in RSS). Its defaults keep them 10 s and purge
/// only when the process allocates again, so after a burst an idle server's RSS did not come back
/// (close-deadline.test.mjs); with 1 s or 500 ms it came back only partly within 5 s.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: a static NUL-terminated string; `Option<&c_char>` is one pointer, as C's `const char *`.
    unsafe { &*c"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0".as_ptr() },
);

/// `sio-server admin-hash`: the bcrypt hash (cost 10, as Node's examples) of the first line of stdin.
fn admin_hash() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("sio-server: cannot read the password from stdin");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("sio-server: empty password (usage: echo -n 'PASSWORD' | sio-server admin-hash)");
        return ExitCode::from(2);
    }
    match bcrypt::hash(password, 10) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sio-server: {e}");
            ExitCode::from(2)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (mode, config) = match Config::from_command_line() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-server: {e}");
            return ExitCode::from(2);
        }
    };
    if mode == Some(Mode::AdminHash) {
        return admin_hash();
    }
    sio_server::logging::init(config.log_format, &config.instance_id);
    if let Err(e) = sio_server::ids::check() {
        eprintln!("sio-server: {e}");
        return ExitCode::from(1);
    }
    match mode {
        Some(mode) => run_test_server(mode, &config).await,
        None => run_product(&config).await,
    }
}

/// Runs a protocol test server on 127.0.0.1 (the suites expect it there; PORT moves it).
async fn run_test_server(mode: Mode, config: &Config) -> ExitCode {
    let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
    let router = match mode {
        Mode::Conformance => sio_server::conformance::router(),
        Mode::ClientSuite => sio_server::client_suite::router(),
        Mode::AdminHash => return admin_hash(),
    };
    serve(addr, router, None, config).await
}

/// Runs the chat product: the Socket.IO server, its adapter, the app and the in-process webhook.
async fn run_product(config: &Config) -> ExitCode {
    let (io, redis) = socket_io_server(config).await;
    let app = ChatApp::new(&config.instance_id).with_chat_rate(ChatRate {
        messages_per_sec: config.limits.chat_rate_messages,
        bytes_per_sec: config.limits.chat_rate_bytes,
    });
    app.attach(&io);
    let engine = engine(config, &io);
    if sio_server::client_bundle::version().is_none() {
        tracing::warn!(
            "socket.io-client bundle not embedded: /socket.io/socket.io.js answers 404 (run `npm ci --prefix public` and rebuild)"
        );
    }
    if let Some(admin) = &config.admin {
        let store = match &redis {
            Some(r) => sio_server::admin::SessionStore::Redis(r.service.clone()),
            None => sio_server::admin::SessionStore::memory(),
        };
        let options = sio_server::admin::AdminOptions {
            namespace: admin.namespace.clone(),
            credentials: admin.credentials.clone(),
            mode: admin.mode,
            readonly: admin.readonly,
            server_id: config.instance_id.clone(),
            clustered: redis.is_some(),
        };
        sio_server::admin::attach(&io, engine.clone(), options, store);
        if !sio_server::admin::ui::available() {
            tracing::warn!("Admin UI not embedded: /admin/ answers 404 (run `npm ci --prefix public` and rebuild)");
        }
    }
    if let Some(r) = &redis {
        let engine = engine.clone();
        let io = io.clone();
        // Admin UIs' own connections are not chat clients.
        r.presence
            .spawn(move || engine.session_count().saturating_sub(io.observer_connections()));
    }
    let state = Arc::new(AppState {
        redis: redis.clone(),
        instance_id: config.instance_id.clone(),
        started: Instant::now(),
        io,
        engine: engine.clone(),
    });
    if !start_webhook(config, state.io.clone()).await {
        return ExitCode::from(1);
    }
    let addr = SocketAddr::new(config.host, config.port);
    tracing::info!(%addr, instance_id = %config.instance_id, "sio-server starting");
    let code = serve(addr, http::router(state, &config.path), Some(engine), config).await;
    if let Some(r) = redis
        && let Err(e) = r.presence.remove().await
    {
        tracing::warn!(error = %e, "cannot remove this instance's presence entry");
    }
    code
}

/// The Socket.IO server with its adapter: in memory, or Redis (connecting, with retries, first).
async fn socket_io_server(config: &Config) -> (Server, Option<RedisState>) {
    let server_config = ServerConfig {
        connect_timeout: config.connect_timeout,
        max_rooms_per_socket: config.limits.max_rooms_per_socket,
        max_event_name_len: config.limits.max_event_name_len,
        max_pending_acks: config.limits.max_pending_acks,
        recovery: config.recovery,
        recovery_max_disconnection: config.recovery_max_disconnection,
        recovery_log_bytes: config.recovery_log_bytes,
        recovery_session_bytes: config.recovery_session_bytes,
        parser: config.parser,
        ..ServerConfig::default()
    };
    let Some(rc) = &config.redis else {
        return (Server::new(server_config), None);
    };
    let (factory, service): (Arc<dyn AdapterFactory>, _) = if rc.kind == AdapterKind::Streams {
        let recovery = StreamsRecovery {
            enabled: config.recovery,
            window: config.recovery_max_disconnection,
            replay_max_bytes: config.recovery_log_bytes,
        };
        let f = StreamsAdapterFactory::connect_with_retry(rc.clone(), recovery).await;
        let service = f.service().clone();
        (Arc::new(f), service)
    } else {
        let f = RedisAdapterFactory::connect_with_retry(rc.clone()).await;
        if config.recovery {
            tracing::info!(
                "RECOVERY: the classic and sharded Redis adapters cannot recover sessions (REDIS_ADAPTER=streams can); off"
            );
        }
        let service = f.service().clone();
        (Arc::new(f), service)
    };
    let presence = PresenceTracker::new(service.clone(), &config.instance_id);
    (
        Server::with_adapter(server_config, factory),
        Some(RedisState { service, presence }),
    )
}

/// The Engine.IO endpoint running `io` on each session, with the configured limits.
fn engine(config: &Config, io: &Server) -> Engine {
    let options = EngineOptions {
        cors: config.cors_origin.as_deref().map(Cors::parse),
        sid_tag: Some(config.instance_id.clone()),
        max_connections: config.limits.max_connections,
        handshake_rate_per_ip: config.limits.handshake_rate_per_ip,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_half_open_per_ip: config.limits.max_half_open_per_ip,
        trusted_proxies: config.trusted_proxies.clone(),
        outbox_limits: OutboxLimits::from_soft(config.limits.outbound_queue_bytes),
        http_compression: config.http_compression,
        per_message_deflate: config.per_message_deflate,
        ..EngineOptions::default()
    };
    Engine::new(config.engine.clone(), options, io.engine_handler())
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). A reconnect storm
/// behind nginx opens thousands of upstream connections at once (one per proxied request); past a
/// full queue SYNs are dropped, and nginx answers 504 once its 2 s connect timeout passes. tokio's
/// `TcpListener::bind` asks for 1024.
const LISTEN_BACKLOG: u32 = 8192;

/// Binds the Socket.IO listener with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's `bind`).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves the webhook in this process on `WEBHOOK_PORT`, delivering straight into `io`.
/// Returns false only when an explicitly configured port cannot be bound.
async fn start_webhook(config: &Config, io: Server) -> bool {
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
    let router = sio_server::webhook::router(Delivery::InProcess { io }, options, &config.instance_id);
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
    let listener = match listen(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, "listening");
    shutdown_watchdog(grace + SHUTDOWN_MARGIN);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The Engine.IO endpoint is served ahead of the router (see `serve::DirectEngine`).
    let direct = engine
        .clone()
        .map(|e| sio_server::serve::DirectEngine::new(&config.path, e));
    let mut server = tokio::spawn(sio_server::serve::serve_with(
        listener,
        router,
        direct,
        serve_options,
        stop_rx,
    ));
    tokio::select! {
        _ = sio_server::serve::shutdown_signal() => {}
        _ = &mut server => return ExitCode::from(1),
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Sessions close first, while the listener still accepts, so polling clients can fetch what
    // was queued for them (and their close packet); new handshakes are refused meanwhile.
    if let Some(engine) = &engine {
        close_sessions(engine, grace, deadline).await;
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

/// How long past the grace period a shutdown may take before the watchdog ends the process.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// Every shutdown has a deadline: a thread of its own (with its own signal listener, so stuck
/// runtime workers cannot hold it up) exits the process `limit` after SIGTERM/SIGINT.
fn shutdown_watchdog(limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "no shutdown watchdog");
                    return;
                }
            };
            rt.block_on(sio_server::serve::shutdown_signal());
            std::thread::sleep(limit);
            tracing::error!(limit_ms = limit.as_millis() as u64, "shutdown took too long; exiting");
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no shutdown watchdog");
    }
}

/// Tells every session to close and waits, until `deadline`, for them to be gone.
async fn close_sessions(engine: &Engine, grace: Duration, deadline: tokio::time::Instant) {
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
