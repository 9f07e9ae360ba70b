//! The POST flow of the webhook: content type, body (bounded in size and time), signature and
//! replay check, `Idempotency-Key`, then the delivery. The delivery runs in its own task that owns
//! the idempotency slot, so a client that gives up (or a dropped connection) never leaves a key
//! half-handled: the task records the real outcome and a retry replays it instead of delivering
//! twice.

use super::delivery::{DeliveryError, error_body};
use super::idempotency::{Begin, Reply, fingerprint};
use super::signature::{self, Sighting, SignatureError};
use super::{WebhookState, error, json_response};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extra time the request waits for its delivery task past the answer deadline, in case the task
/// is slow to report (it answers at the deadline itself).
const ANSWER_SLACK: Duration = Duration::from_secs(1);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON answer, with `Retry-After` on the answers that invite a retry.
fn reply_response(status: StatusCode, body: &Value) -> Response {
    let mut res = json_response(status, body);
    let retry = match status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => Some("5"),
        StatusCode::CONFLICT => Some("1"),
        _ => None,
    };
    if let Some(r) = retry {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(r));
    }
    res
}

fn unauthorized(e: SignatureError) -> Response {
    let (code, field, message) = e.describe();
    tracing::info!(code, "webhook request with a bad signature refused");
    error(StatusCode::UNAUTHORIZED, code, message, Some(field))
}

fn replayed() -> Response {
    tracing::warn!("webhook request replayed with a signature already seen; refused");
    error(
        StatusCode::UNAUTHORIZED,
        "replayed_signature",
        "this signature was already used; sign every new attempt with a fresh X-Webhook-Timestamp",
        Some("X-Webhook-Signature"),
    )
}

/// `POST /webhook` and `POST /webhook/{kind}`.
pub(super) async fn webhook(State(state): State<Arc<WebhookState>>, event: String, req: Request) -> Response {
    let Some(controller) = state.app.controller(&event) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown message type; see GET /",
            None,
        );
    };
    if req.method() != Method::POST {
        return super::method_not_allowed("POST");
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
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 256 => Some(k.to_owned()),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "Idempotency-Key must be 1 to 256 visible ASCII characters",
                Some("Idempotency-Key"),
            );
        }
    };
    let body = match read_body(req.into_body(), state.options.body_limit, state.options.body_timeout).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let answer_at = Instant::now() + state.options.timeout;
    // A repeated signature may only fetch the answer its key already has, never deliver.
    let mut allow_new = true;
    if let Some(secret) = &state.options.secret {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = signature::unix_now();
        let signed = match signature::verify(
            secret,
            text("x-webhook-timestamp"),
            &body,
            text("x-webhook-signature"),
            now,
        ) {
            Ok(s) => s,
            Err(e) => return unauthorized(e),
        };
        match state.replays.check(signed, now) {
            Sighting::First => {}
            Sighting::TooOld => return unauthorized(SignatureError::StaleTimestamp),
            Sighting::Again if key.is_some() => allow_new = false,
            Sighting::Again => return replayed(),
        }
    }
    let mut payload: Value = match serde_json::from_slice(&body) {
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
    mark_via_webhook(&mut payload);
    let slot = match &key {
        None => None,
        Some(k) => match state
            .idempotency
            .begin(k, fingerprint(&event, &body), allow_new, answer_at)
            .await
        {
            Begin::New(slot) => Some(slot),
            Begin::Replay((status, body)) => {
                let mut res = reply_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    &serde_json::from_str(&body).unwrap_or(Value::Null),
                );
                res.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return res;
            }
            Begin::Mismatch => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with another route or body",
                    Some("Idempotency-Key"),
                );
            }
            Begin::InProgress => {
                return reply_response(
                    StatusCode::CONFLICT,
                    &error_body(
                        "in_progress",
                        "a request with this Idempotency-Key is still being delivered; retry later for its outcome",
                        Some("Idempotency-Key"),
                    ),
                );
            }
            Begin::Unknown => return replayed(),
            Begin::Full => {
                return reply_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &error_body(
                        "unavailable",
                        "not delivered: too many requests with an Idempotency-Key in flight",
                        Some("Idempotency-Key"),
                    ),
                );
            }
        },
    };
    // Detached deliveries are bounded in bytes (at least 1 KiB each). A refused request leaves no
    // trace: dropping its unfinished slot forgets the key, so a retry can deliver.
    let cost = body.len().clamp(1024, super::DELIVERY_BYTES_IN_FLIGHT) as u32;
    let Ok(permit) = state.in_flight.clone().try_acquire_many_owned(cost) else {
        drop(slot);
        tracing::warn!("too many webhook deliveries in flight; answering 503");
        return reply_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &error_body(
                "unavailable",
                "not delivered: too many webhook deliveries in flight",
                None,
            ),
        );
    };
    // The delivery runs detached from this request: if the client goes away, the task still
    // finishes, records the outcome under the key and wakes any retry waiting for it.
    let (tx, rx) = tokio::sync::oneshot::channel::<Reply>();
    let task_state = state.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let state = task_state;
        let room = payload.get("roomId").and_then(Value::as_str).unwrap_or("").to_owned();
        let event = controller.event();
        let mut tx = Some(tx);
        let result = state
            .delivery
            .deliver(controller.clone(), payload, answer_at, |e| {
                tracing::warn!(event, %room, reason = %e, "webhook message sent but not acknowledged in time");
                if let Some(tx) = tx.take() {
                    let (status, body, _) = outcome(Err(e));
                    let _ = tx.send((status.as_u16(), body.to_string()));
                }
            })
            .await;
        match &result {
            Ok(id) => tracing::info!(event, %room, %id, "webhook message delivered"),
            Err(DeliveryError::Invalid(_)) => crate::metrics::inc(&crate::metrics::METRICS.invalid_messages),
            Err(e @ DeliveryError::Unavailable(_)) => {
                tracing::warn!(event, %room, reason = %e, "webhook message not delivered")
            }
            Err(e @ DeliveryError::Partial(_)) => {
                tracing::warn!(event, %room, reason = %e, "webhook message partially delivered")
            }
            Err(e @ DeliveryError::Unknown(_)) => {
                tracing::warn!(event, %room, reason = %e, "webhook message outcome unknown")
            }
        }
        let (status, body, remember) = outcome(result.as_ref().map(String::as_str));
        let reply = (status.as_u16(), body.to_string());
        if let Some(slot) = slot {
            slot.finish(reply.clone(), remember);
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(reply);
        }
    });
    let (status, body) = match tokio::time::timeout_at((answer_at + ANSWER_SLACK).into(), rx).await {
        Ok(Ok(reply)) => reply,
        _ => {
            let (status, body, _) = outcome(Err(&DeliveryError::Unknown("no outcome in time".into())));
            (status.as_u16(), body.to_string())
        }
    };
    reply_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &serde_json::from_str(&body).unwrap_or(Value::Null),
    )
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

/// The answer for a delivery result, and whether an `Idempotency-Key` remembers it ("not
/// delivered" is forgotten, so a retry may deliver).
fn outcome(result: Result<&str, &DeliveryError>) -> (StatusCode, Value, bool) {
    match result {
        Ok(id) => (StatusCode::OK, json!({"ok": true, "id": id}), true),
        Err(DeliveryError::Invalid(e)) => (StatusCode::BAD_REQUEST, json!({"ok": false, "error": e}), true),
        Err(DeliveryError::Unavailable(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            error_body("unavailable", &format!("not delivered: {reason}"), None),
            false,
        ),
        Err(DeliveryError::Partial(reason)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(
                "partially_delivered",
                &format!("partially delivered: {reason}; do not retry, the part that went out would repeat"),
                None,
            ),
            true,
        ),
        Err(DeliveryError::Unknown(reason)) => (
            StatusCode::GATEWAY_TIMEOUT,
            error_body(
                "delivery_unknown",
                &format!(
                    "outcome unknown: {reason}; retry with the same Idempotency-Key to get the final answer without a second delivery"
                ),
                None,
            ),
            true,
        ),
    }
}

/// Reads the body within `limit` bytes and `timeout` (413, 408, 400 as JSON errors).
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    let read = axum::body::to_bytes(body, limit);
    let result = match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => {
            tracing::info!(
                timeout_ms = timeout.as_millis() as u64,
                "webhook body not received in time"
            );
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!("the body was not received within {} ms", timeout.as_millis()),
                Some("body"),
            ));
        }
    };
    match result {
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
