//! `sio-webhook`: the standalone webhook service, a thin main over `sio_server::webhook`.
//! Delivers through one persistent Socket.IO connection to `SOCKETIO_URL` (default), or into
//! Redis like `@socket.io/redis-emitter` (`WEBHOOK_MODE=redis`).

use sio_server::adapter::redis::RedisService;
use sio_server::adapter::redis::emitter::Emitter;
use sio_server::client::SioClient;
use sio_server::serve::ServeOptions;
use sio_server::webhook::config::{WebhookConfig, WebhookMode};
use sio_server::webhook::{Delivery, WebhookOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match WebhookConfig::from_command_line() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-webhook: {e}");
            return ExitCode::from(2);
        }
    };
    sio_server::logging::init(config.log_format, &config.instance_id);
    if let Err(e) = sio_server::ids::check() {
        eprintln!("sio-webhook: {e}");
        return ExitCode::from(1);
    }
    let delivery = delivery(&config).await;
    let options = WebhookOptions {
        secret: config.secret.as_ref().map(|s| Arc::from(s.as_bytes())),
        body_timeout: config.header_read_timeout,
        timeout: config.timeout,
        ..WebhookOptions::default()
    };
    let router = sio_server::webhook::router(delivery, options, &config.instance_id);
    serve(&config, router).await
}

/// Where messages go: one Socket.IO connection, or Redis (connecting, with retries, first).
async fn delivery(config: &WebhookConfig) -> Delivery {
    match &config.mode {
        WebhookMode::SocketIo(url) => {
            tracing::info!(%url, "delivering through a Socket.IO connection");
            Delivery::SocketIo {
                client: SioClient::connect(url),
                timeout: config.timeout,
            }
        }
        WebhookMode::Redis(rc) => {
            let (messages, _ignored) = tokio::sync::mpsc::unbounded_channel();
            let (disconnects, _also_ignored) = tokio::sync::mpsc::unbounded_channel();
            let service = loop {
                match RedisService::connect(&rc.target, rc.timeout, messages.clone(), disconnects.clone()).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot connect to redis; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            };
            tracing::info!(target = ?rc.target, "delivering through redis");
            Delivery::Redis {
                emitter: Emitter::new(service, &rc.key_prefix),
            }
        }
    }
}

/// Serves `router` until SIGTERM/SIGINT, then stops within the grace period.
async fn serve(config: &WebhookConfig, router: axum::Router) -> ExitCode {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, "sio-webhook listening");
    sio_server::webhook::warn_if_exposed(addr, config.secret.is_some());
    // The same accept loop as sio-server: header read timeout (slowloris), TCP_NODELAY, graceful stop.
    let serve_options = ServeOptions {
        header_read_timeout: config.header_read_timeout,
        write_timeout: config.write_timeout,
        max_connections: Some(sio_server::webhook::MAX_CONNECTIONS),
        max_connections_per_ip: Some(sio_server::webhook::MAX_CONNECTIONS_PER_IP),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(sio_server::serve::serve(listener, router, serve_options, stop_rx));
    tokio::select! {
        _ = sio_server::serve::shutdown_signal() => {}
        _ = &mut server => {
            tracing::error!("webhook server stopped unexpectedly");
            return ExitCode::from(1);
        }
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(config.shutdown_grace, server).await.is_err() {
        tracing::warn!("grace period over with webhook requests still open");
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
