//! The product's HTTP surface: the Engine.IO endpoint and client bundle, the demo page,
//! `/health`, `/stats` and `/metrics`.

use crate::adapter::redis::{PresenceTracker, RedisService};
use crate::client_bundle;
use crate::metrics::{self, Gauges};
use crate::server::Server;
use crate::time::now_ms;
use crate::transport::Engine;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{any, get};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// How long `/stats` waits for the presence hashes before answering 503.
const STATS_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

/// The demo page, embedded so the binary serves it from any directory.
pub const INDEX_HTML: &str = include_str!("../public/index.html");

/// The Redis side of an instance: its connection and its presence entry.
#[derive(Clone)]
pub struct RedisState {
    /// The Redis service.
    pub service: RedisService,
    /// This instance's presence.
    pub presence: PresenceTracker,
}

/// State shared by the HTTP handlers.
pub struct AppState {
    /// Redis, when the cluster adapter is on.
    pub redis: Option<RedisState>,
    /// This instance's id.
    pub instance_id: String,
    /// When the process started.
    pub started: Instant,
    /// The Socket.IO server.
    pub io: Server,
    /// Its Engine.IO endpoint.
    pub engine: Engine,
}

impl AppState {
    /// Application clients: Engine.IO sessions less the admin UIs' own.
    fn connections(&self) -> usize {
        self.engine
            .session_count()
            .saturating_sub(self.io.observer_connections())
    }

    /// This instance's `/stats` entry.
    fn instance_stats(&self) -> Value {
        json!({
            "instanceId": self.instance_id,
            "connections": self.connections(),
            "lastUpdate": now_ms(),
            "alive": true,
            "status": "up",
        })
    }
}

/// The Engine.IO endpoint for `path` (`/socket.io` or `/socket.io/` both give `/socket.io/`), the
/// one place that decides it for the router and the direct path ([`crate::serve::DirectEngine`]).
pub fn engine_endpoint(path: &str) -> String {
    format!("{}/", path.trim_end_matches('/'))
}

/// Routes an Engine.IO endpoint at `path` (e.g. `/socket.io`), with the client bundle beside it
/// when `serve_client` is set.
pub fn engine_routes(path: &str, engine: Engine, serve_client: bool) -> Router {
    let endpoint = engine_endpoint(path);
    let path = path.trim_end_matches('/');
    let handler = |State(engine): State<Engine>, ConnectInfo(addr): ConnectInfo<SocketAddr>, req: Request| async move {
        engine.handle(req, addr).await
    };
    let mut router = Router::new().route(&endpoint, any(handler));
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
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics_text))
        .route(
            "/admin",
            get(|| async { axum::response::Redirect::permanent("/admin/") }),
        )
        .route(
            "/admin/",
            get(|headers: HeaderMap| async move { crate::admin::ui::serve("", &headers) }),
        )
        .route(
            "/admin/{*file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { crate::admin::ui::serve(&file, &headers) }),
        )
        .with_state(state.clone())
        .merge(engine_routes(path, state.engine.clone(), true))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"ok": false, "error": {"code": "not_found", "message": "no such route"}})),
            )
        })
}

async fn health(State(state): State<Arc<AppState>>) -> Response<Body> {
    let (redis, healthy) = match &state.redis {
        None => (json!("disabled"), true),
        // The probe's cached verdict: /health never waits on Redis.
        Some(r) => match r.service.health() {
            Ok(()) => (json!("connected"), true),
            Err(e) => (json!({"status": "disconnected", "error": e}), false),
        },
    };
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "instanceId": state.instance_id,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "connections": state.connections(),
        "redis": redis,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn stats(State(state): State<Arc<AppState>>) -> Response<Body> {
    let Some(redis) = &state.redis else {
        let me = state.instance_stats();
        return Json(json!({"instances": [me], "totalConnections": state.connections()})).into_response();
    };
    // Within a second whatever Redis does (a failover holds commands up to REDIS_TIMEOUT_MS).
    let read = tokio::time::timeout(STATS_DEADLINE, redis.presence.read()).await;
    match read.unwrap_or_else(|_| {
        Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "no answer within 500 ms",
        )))
    }) {
        Ok(instances) => {
            let total = crate::adapter::redis::presence::total_connections(&instances);
            Json(json!({"instances": instances, "totalConnections": total})).into_response()
        }
        Err(e) => {
            let body = json!({"ok": false, "error": {"code": "redis_unavailable", "message": e.to_string()}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response<Body> {
    let body = metrics::render(Gauges {
        // Every Engine.IO session, admin UIs included (/stats and /health leave those out).
        connections: state.engine.session_count(),
        sockets: state.io.local_socket_count(),
        queued_bytes: state.engine.queued_bytes(),
    });
    let mut res = Response::new(Body::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
