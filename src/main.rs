//! `sio-server`: the Socket.IO server binary.

use sio_server::config::{Config, LogFormat};
use sio_server::http::{self, AppState};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let state = Arc::new(AppState {
        instance_id: config.instance_id.clone(),
        started: Instant::now(),
    });
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, instance_id = %config.instance_id, "sio-server listening");
    if let Err(e) = axum::serve(listener, http::router(state)).await {
        tracing::error!(error = %e, "server failed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
