//! The product's HTTP surface: the Engine.IO endpoint, the client bundle, `/health`.

use crate::client_bundle;
use crate::server::Server;
use crate::transport::Engine;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use http::{HeaderMap, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// State shared by the HTTP handlers.
pub struct AppState {
    /// This instance's id.
    pub instance_id: String,
    /// When the process started.
    pub started: Instant,
    /// The Socket.IO server.
    pub io: Server,
    /// Its Engine.IO endpoint.
    pub engine: Engine,
}

/// Routes an Engine.IO endpoint at `path` (e.g. `/socket.io`), with the client bundle beside it
/// when `serve_client` is set.
pub fn engine_routes(path: &str, engine: Engine, serve_client: bool) -> Router {
    let path = path.trim_end_matches('/');
    let handler = |State(engine): State<Engine>, ConnectInfo(addr): ConnectInfo<SocketAddr>, req: Request| async move {
        engine.handle(req, addr).await
    };
    let mut router = Router::new().route(&format!("{path}/"), any(handler));
    if serve_client {
        router = router.route(
            &format!("{path}/{{file}}"),
            get(|Path(file): Path<String>, headers: HeaderMap| async move { client_bundle::serve(&file, &headers) }),
        );
    }
    router.with_state(engine)
}

/// The full router of `sio-server`.
pub fn router(state: Arc<AppState>, path: &str) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state.clone())
        .merge(engine_routes(path, state.engine.clone(), true))
}

async fn health(State(state): State<Arc<AppState>>) -> Response<Body> {
    Json(json!({
        "status": "ok",
        "instanceId": state.instance_id,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "connections": state.engine.session_count(),
        "redis": "disabled",
    }))
    .into_response()
}
