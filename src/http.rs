//! The product's HTTP routes outside the Engine.IO endpoint: `/health` for now.

use axum::{Json, Router, routing::get};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// State shared by the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// This instance's id.
    pub instance_id: String,
    /// When the process started.
    pub started: Instant,
}

/// The router for `/health`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().route("/health", get(health)).with_state(state)
}

async fn health(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "instanceId": state.instance_id,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "connections": 0,
        "redis": "disabled",
    }))
}
