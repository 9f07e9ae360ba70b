//! Where validated webhook messages go: straight into the local server (in-process), through one
//! persistent Socket.IO client connection (with the server's ack), or into Redis like the emitter.
//!
//! Outcomes are honest: [`DeliveryError::Unavailable`] means "not delivered" (a Socket.IO emit not
//! yet written when the answer is due is cancelled), [`DeliveryError::Unknown`] means it was sent
//! but not acknowledged in time, so it may still arrive.

use crate::adapter::redis::emitter::Emitter;
use crate::app::controller::{self, DeliverError, Outlet};
use crate::app::{Message, MessageController, ValidationError};
use crate::client::{ClientError, SioClient};
use crate::server::Server;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a message was not delivered.
#[derive(Debug, Error)]
pub enum DeliveryError {
    /// The payload is invalid (answer 400).
    #[error("{}", .0.message)]
    Invalid(ValidationError),
    /// Not delivered: delivery is not possible right now (answer 503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// Sent but not acknowledged: it may or may not have been delivered (answer 504).
    #[error("{0}")]
    Unknown(String),
    /// Part of it went out (the typed event) and the rest failed: a retry would repeat that part
    /// (answer 500).
    #[error("{0}")]
    Partial(String),
}

impl From<DeliverError> for DeliveryError {
    fn from(e: DeliverError) -> Self {
        if e.unknown {
            DeliveryError::Unknown(format!("{e}; it may or may not have been delivered"))
        } else if e.partial {
            DeliveryError::Partial(e.to_string())
        } else {
            DeliveryError::Unavailable(e.to_string())
        }
    }
}

/// A delivery route.
#[derive(Clone)]
pub enum Delivery {
    /// Into this process's own Socket.IO server.
    InProcess {
        /// The server.
        io: Server,
    },
    /// Through a persistent Socket.IO client connection.
    SocketIo {
        /// The client.
        client: SioClient,
        /// How long to keep waiting for the server's ack after the answer was due (the delivery's
        /// hard deadline is the answer's deadline plus this).
        timeout: Duration,
    },
    /// Into Redis as an emitter.
    Redis {
        /// The emitter.
        emitter: Emitter,
    },
}

impl Delivery {
    /// `socketio`, `redis` or `in-process`.
    pub fn mode(&self) -> &'static str {
        match self {
            Delivery::InProcess { .. } => "in-process",
            Delivery::SocketIo { .. } => "socketio",
            Delivery::Redis { .. } => "redis",
        }
    }

    /// Whether messages can be delivered right now, and why not.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Delivery::InProcess { .. } => Ok(()),
            Delivery::SocketIo { client, .. } => {
                if client.is_connected() {
                    Ok(())
                } else {
                    Err("not connected to the Socket.IO server".into())
                }
            }
            Delivery::Redis { emitter } => emitter.service().health(),
        }
    }

    /// Validates `payload` for `controller` and delivers it; returns the message id. `answer_at` is
    /// when the caller must answer: a Socket.IO emit not written by then is cancelled (not
    /// delivered); one written but not acknowledged calls `interim` with the unknown outcome and
    /// keeps waiting for the ack until the hard deadline, so the final outcome can be recorded.
    pub async fn deliver(
        &self,
        controller: Arc<dyn MessageController>,
        payload: Value,
        answer_at: Instant,
        interim: impl FnOnce(&DeliveryError),
    ) -> Result<String, DeliveryError> {
        let message = controller::prepare(controller.as_ref(), &payload).map_err(DeliveryError::Invalid)?;
        match self {
            Delivery::InProcess { io } => {
                controller::deliver(&mut io.sockets(), controller.as_ref(), &message).await?;
                Ok(message.id)
            }
            Delivery::SocketIo { client, timeout } => {
                let mut pending = client
                    .emit(controller.event(), vec![payload])
                    .map_err(|e| DeliveryError::Unavailable(e.to_string()))?;
                let early = tokio::time::timeout_at(answer_at.into(), pending.wait()).await;
                let reply = match early {
                    Ok(r) => r,
                    Err(_) if pending.cancel() => {
                        return Err(DeliveryError::Unavailable(
                            "not sent to the Socket.IO server before the answer was due (cancelled)".into(),
                        ));
                    }
                    Err(_) => {
                        interim(&DeliveryError::Unknown(
                            "sent to the Socket.IO server but not acknowledged yet; it may still arrive".into(),
                        ));
                        let hard = answer_at + *timeout;
                        tokio::time::timeout_at(hard.into(), pending.wait())
                            .await
                            .unwrap_or(Err(ClientError::NoAck(*timeout * 2)))
                    }
                };
                let reply = reply.map_err(|e| {
                    if e.maybe_sent() {
                        DeliveryError::Unknown(format!("{e}; it may or may not have been delivered"))
                    } else {
                        DeliveryError::Unavailable(e.to_string())
                    }
                })?;
                let ack = reply.into_iter().next().unwrap_or(Value::Null);
                match ack.get("ok").and_then(Value::as_bool) {
                    Some(true) => Ok(ack.get("id").and_then(Value::as_str).unwrap_or(&message.id).to_owned()),
                    // The server's chat budget refused it: not broadcast, so safe to retry later.
                    _ if ack["error"]["code"] == "rate_limited" => Err(DeliveryError::Unavailable(format!(
                        "rate limited by the server: {}",
                        ack["error"]["message"].as_str().unwrap_or("over its chat budget")
                    ))),
                    _ if ack["error"]["code"] == "partially_delivered" => Err(DeliveryError::Partial(format!(
                        "partially delivered by the server: {}",
                        ack["error"]["message"].as_str().unwrap_or("one of its events went out")
                    ))),
                    _ if ack["error"]["code"] == "delivery_unknown" => Err(DeliveryError::Unknown(format!(
                        "the server does not know whether it was delivered: {}",
                        ack["error"]["message"].as_str().unwrap_or("its store did not answer")
                    ))),
                    // The server could not store it (e.g. the streams adapter's XADD failed).
                    _ if ack["error"]["code"] == "not_delivered" => Err(DeliveryError::Unavailable(format!(
                        "not delivered by the server: {}",
                        ack["error"]["message"].as_str().unwrap_or("its adapter refused it")
                    ))),
                    _ => match serde_json::from_value::<ValidationError>(ack["error"].clone()) {
                        Ok(e) => Err(DeliveryError::Invalid(e)),
                        Err(_) => Err(DeliveryError::Unknown(format!("unexpected acknowledgement {ack}"))),
                    },
                }
            }
            Delivery::Redis { emitter } => {
                // The emits are chosen by `controller::deliver`, then published in order; each
                // must reach a subscribed server.
                let mut planned = Planned::default();
                controller::deliver(&mut planned, controller.as_ref(), &message).await?;
                for (i, (event, value)) in planned.0.into_iter().enumerate() {
                    let failed = |reason: String| DeliverError {
                        event,
                        room: message.room_id.clone(),
                        reason,
                        partial: i > 0,
                        unknown: false,
                    };
                    let receivers = emitter
                        .emit_to_room("/", &message.room_id, event, vec![value])
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    if receivers < 1 {
                        return Err(failed("no Socket.IO server is subscribed in Redis".into()).into());
                    }
                }
                Ok(message.id)
            }
        }
    }
}

/// The Redis route's outlet: records each emit `controller::deliver` asks for, to publish after.
#[derive(Default)]
struct Planned(Vec<(&'static str, Value)>);

impl Outlet for Planned {
    fn emit(
        &mut self,
        _room: &str,
        event: &'static str,
        message: &Message,
    ) -> crate::adapter::BoxFuture<'static, Result<(), controller::EmitFailure>> {
        let value = serde_json::to_value(message).map_err(|e| format!("cannot serialize the message: {e}").into());
        let result = value.map(|v| self.0.push((event, v)));
        Box::pin(std::future::ready(result))
    }
}

/// The JSON body of a delivery error.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    match field {
        Some(f) => json!({"ok": false, "error": {"code": code, "field": f, "message": message}}),
        None => json!({"ok": false, "error": {"code": code, "message": message}}),
    }
}
