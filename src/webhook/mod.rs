//! The webhook service: `POST /webhook` and `POST /webhook/{zalo,image,file,location,audio}` take
//! JSON from outside (optionally HMAC-signed, optionally idempotent), validate it with the chat
//! app's controllers and deliver it into rooms, answering 200 only once delivered. This module
//! holds the router and the informational routes; `handler` the POST flow.

pub mod config;
pub mod delivery;
mod handler;
pub mod idempotency;
pub mod signature;

use crate::app::ChatApp;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
pub use delivery::{Delivery, DeliveryError, error_body};
use idempotency::IdempotencyCache;
use serde_json::{Value, json};
use signature::ReplayGuard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most TCP connections a webhook listener keeps open at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most of them one peer address may hold.
pub const MAX_CONNECTIONS_PER_IP: usize = MAX_CONNECTIONS / 4;

/// Largest accepted body by default (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Webhook settings.
#[derive(Clone)]
pub struct WebhookOptions {
    /// `WEBHOOK_SECRET`: when set, requests must carry a valid `X-Webhook-Timestamp` and
    /// `X-Webhook-Signature`.
    pub secret: Option<Arc<[u8]>>,
    /// Largest accepted body.
    pub body_limit: usize,
    /// How long a client may take to send the body once its headers are in (then 408).
    pub body_timeout: Duration,
    /// How long after its body arrived a request is answered (`WEBHOOK_TIMEOUT_MS`): a delivery
    /// not done by then is answered 503 (not sent, cancelled) or 504 (sent, outcome unknown).
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            secret: None,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

struct WebhookState {
    delivery: Delivery,
    options: WebhookOptions,
    app: ChatApp,
    idempotency: IdempotencyCache,
    replays: ReplayGuard,
    /// Bytes of requests being delivered (each counts at least 1 KiB), bounded by
    /// [`DELIVERY_BYTES_IN_FLIGHT`]: deliveries run detached, so this is what bounds them.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Most request bytes being delivered at once; past it, requests get 503.
pub const DELIVERY_BYTES_IN_FLIGHT: usize = 64 << 20;

/// Logs a warning when the webhook at `addr` is reachable beyond loopback without a secret;
/// returns whether it warned.
pub fn warn_if_exposed(addr: SocketAddr, signed: bool) -> bool {
    let exposed = !signed && !addr.ip().is_loopback();
    if exposed {
        tracing::warn!(
            %addr,
            "the webhook accepts unsigned requests from the network: anyone who can reach it can post into any room; set WEBHOOK_SECRET (at least 32 bytes) or HOST=127.0.0.1"
        );
    }
    exposed
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    json_response(status, &error_body(code, message, field))
}

/// The webhook router.
pub fn router(delivery: Delivery, options: WebhookOptions, instance_id: &str) -> Router {
    let state = Arc::new(WebhookState {
        delivery,
        options,
        app: ChatApp::new(instance_id),
        idempotency: IdempotencyCache::default(),
        replays: ReplayGuard::default(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(DELIVERY_BYTES_IN_FLIGHT)),
    });
    Router::new()
        .route("/", any(index))
        .route("/health", any(health))
        .route(
            "/webhook",
            any(|s: State<Arc<WebhookState>>, req: Request| handler::webhook(s, "message".into(), req)),
        )
        .route(
            "/webhook/{kind}",
            any(|s: State<Arc<WebhookState>>, Path(kind): Path<String>, req: Request| {
                handler::webhook(s, format!("message:{kind}"), req)
            }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route; see GET /", None) })
        .with_state(state)
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("use {allow}"),
        None,
    );
    res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

async fn index(method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    json_response(
        StatusCode::OK,
        &json!({
            "service": "sio-cluster webhook",
            "usage": "POST JSON to /webhook {roomId, message, sender?} or /webhook/{zalo,image,file,location,audio}",
            "routes": {
                "POST /webhook": {"roomId": "string", "message": "string", "sender": "string?"},
                "POST /webhook/zalo": {"roomId": "string", "message": "string", "zaloUserId": "string?", "sender": "string?"},
                "POST /webhook/image": {"roomId": "string", "imageUrl": "http(s) URL", "caption": "string?", "width": "number?", "height": "number?", "fileSize": "number?"},
                "POST /webhook/file": {"roomId": "string", "fileUrl": "http(s) URL", "fileName": "string", "fileSize": "number?", "fileType": "string?"},
                "POST /webhook/location": {"roomId": "string", "latitude": "-90..90", "longitude": "-180..180", "address": "string?"},
                "POST /webhook/audio": {"roomId": "string", "audioUrl": "http(s) URL", "duration": "number?"},
                "GET /health": "200 when messages can be delivered, 503 otherwise"
            },
            "headers": {
                "Content-Type": "application/json (required)",
                "X-Webhook-Timestamp": "unix seconds, within 5 minutes of the server's clock (required when WEBHOOK_SECRET is set)",
                "X-Webhook-Signature": "sha256=<hex HMAC-SHA256 of \"<timestamp>.<raw body>\"> (required when WEBHOOK_SECRET is set)",
                "Idempotency-Key": "optional; a retry with the same key and body within 10 minutes is not delivered twice"
            },
            "answers": {"200": "{ok:true, id}", "400": "{ok:false, error:{code, field, message}}", "401": "missing, stale, replayed or wrong signature", "408": "body not received in time", "409": "a request with this Idempotency-Key is still in flight", "413": "body too large", "415": "not JSON", "422": "Idempotency-Key reused with another body", "503": "not delivered; retry later", "504": "sent but not acknowledged in time: may still arrive; retry with the same Idempotency-Key to learn the outcome"}
        }),
    )
}

async fn health(State(state): State<Arc<WebhookState>>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    match state.delivery.check().await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ok", "mode": state.delivery.mode()})),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "mode": state.delivery.mode(), "error": e}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_when_unsigned_beyond_loopback() {
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(warn_if_exposed(at("0.0.0.0:4000"), false));
        assert!(warn_if_exposed(at("[::]:4000"), false));
        assert!(warn_if_exposed(at("10.1.2.3:4000"), false));
        assert!(!warn_if_exposed(at("0.0.0.0:4000"), true));
        assert!(!warn_if_exposed(at("127.0.0.1:4000"), false));
        assert!(!warn_if_exposed(at("[::1]:4000"), false));
    }
}
