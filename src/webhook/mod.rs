//! The webhook service: `POST /webhook` and `POST /webhook/{zalo,image,file,location,audio}` take
//! JSON from outside (optionally HMAC-signed, optionally idempotent), validate it with the chat
//! app's controllers and deliver it into rooms, answering 200 only once delivered.

pub mod config;
pub mod delivery;
pub mod idempotency;
pub mod signature;

use crate::app::{ChatApp, MessageController};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
pub use delivery::{Delivery, DeliveryError, error_body};
use idempotency::{Begin, IdempotencyCache};
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest accepted body by default (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Webhook settings.
#[derive(Clone)]
pub struct WebhookOptions {
    /// `WEBHOOK_SECRET`: when set, requests must carry a valid `X-Webhook-Signature`.
    pub secret: Option<Arc<[u8]>>,
    /// Largest accepted body.
    pub body_limit: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            secret: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

struct WebhookState {
    delivery: Delivery,
    options: WebhookOptions,
    app: ChatApp,
    idempotency: IdempotencyCache,
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
    });
    Router::new()
        .route("/", any(index))
        .route("/health", any(health))
        .route(
            "/webhook",
            any(|s: State<Arc<WebhookState>>, req: Request| webhook(s, "message".into(), req)),
        )
        .route(
            "/webhook/{kind}",
            any(|s: State<Arc<WebhookState>>, Path(kind): Path<String>, req: Request| {
                webhook(s, format!("message:{kind}"), req)
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
                "X-Webhook-Signature": "sha256=<hex HMAC-SHA256 of the raw body> (required when WEBHOOK_SECRET is set)",
                "Idempotency-Key": "optional; a retry with the same key within 10 minutes is not delivered twice"
            },
            "answers": {"200": "{ok:true, id}", "400": "{ok:false, error:{code, field, message}}", "401": "bad signature", "413": "body too large", "415": "not JSON", "503": "not delivered; retry later"}
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

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn webhook(State(state): State<Arc<WebhookState>>, event: String, req: Request) -> Response {
    let Some(controller) = state.app.controller(&event) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown message type; see GET /",
            None,
        );
    };
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let headers = req.headers().clone();
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
            None,
        );
    }
    let body = match read_body(req.into_body(), state.options.body_limit).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    if let Some(secret) = &state.options.secret {
        let sig = headers.get("x-webhook-signature").and_then(|v| v.to_str().ok());
        if !signature::verify(secret, &body, sig) {
            tracing::info!("webhook request with a missing or wrong signature refused");
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "X-Webhook-Signature is missing or wrong",
                Some("X-Webhook-Signature"),
            );
        }
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                &format!("body is not valid JSON: {e}"),
                Some("body"),
            );
        }
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let slot = match &key {
        None => None,
        Some(k) if k.is_empty() || k.len() > 256 => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "Idempotency-Key must be 1 to 256 characters",
                Some("Idempotency-Key"),
            );
        }
        Some(k) => match state.idempotency.begin(k).await {
            Begin::Replay((status, body)) => {
                let mut res = json_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    &serde_json::from_str(&body).unwrap_or(Value::Null),
                );
                res.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return res;
            }
            Begin::New(slot) => Some(slot),
        },
    };
    let (status, body) = answer(&state, controller, payload).await;
    if let Some(slot) = slot {
        slot.finish((status.as_u16(), body.to_string()));
    }
    let mut res = json_response(status, &body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    res
}

async fn answer(
    state: &WebhookState,
    controller: Arc<dyn MessageController>,
    mut payload: Value,
) -> (StatusCode, Value) {
    mark_via_webhook(&mut payload);
    let room = payload.get("roomId").and_then(Value::as_str).unwrap_or("").to_owned();
    match state.delivery.deliver(controller.clone(), payload).await {
        Ok(id) => {
            tracing::info!(event = controller.event(), %room, %id, "webhook message delivered");
            (StatusCode::OK, json!({"ok": true, "id": id}))
        }
        Err(DeliveryError::Invalid(e)) => {
            crate::metrics::inc(&crate::metrics::METRICS.invalid_messages);
            (StatusCode::BAD_REQUEST, json!({"ok": false, "error": e}))
        }
        Err(DeliveryError::Unavailable(reason)) => {
            tracing::warn!(event = controller.event(), %room, %reason, "webhook message not delivered");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("unavailable", &format!("not delivered: {reason}"), None),
            )
        }
    }
}

/// Sets `metadata.via = "webhook"` so receivers (the demo page) can tell where a message came from.
/// A `via` the caller sent is kept; a `metadata` that is not an object is left for validation to refuse.
fn mark_via_webhook(payload: &mut Value) {
    let Some(fields) = payload.as_object_mut() else { return };
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.entry("via").or_insert_with(|| Value::String("webhook".into()));
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let inner = e.into_inner();
            let too_large = inner.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            if too_large {
                let message = format!("body is larger than {limit} bytes");
                Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    &message,
                    Some("body"),
                ))
            } else {
                Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "the request body could not be read",
                    Some("body"),
                ))
            }
        }
    }
}
