//! Wires the chat application onto the Socket.IO server in one place: `welcome` on connect,
//! `join` / `leave` / `echo`, and one handler per message controller.

use super::audio::AudioController;
use super::controller::{DeliverError, MessageController, deliver, prepare};
use super::file::FileController;
use super::image::ImageController;
use super::location::LocationController;
use super::message::Message;
use super::rate::{ChatBudget, ChatRate, RateLimited, message_size};
use super::text::TextController;
use super::validate::{Fields, ValidationError};
use super::zalo::ZaloController;
use crate::server::{AckSender, Event, Server, Socket};
use futures_util::FutureExt as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Every message type the app handles. Adding a type: one controller file, one line here.
pub fn default_controllers() -> Vec<Arc<dyn MessageController>> {
    vec![
        Arc::new(TextController),
        Arc::new(ZaloController),
        Arc::new(ImageController),
        Arc::new(FileController),
        Arc::new(LocationController),
        Arc::new(AudioController),
    ]
}

/// Why [`ChatApp::send`] did not deliver a message.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The payload is invalid.
    #[error("{}", .0.message)]
    Invalid(ValidationError),
    /// It is valid but was not (fully) broadcast.
    #[error(transparent)]
    NotDelivered(DeliverError),
}

/// The chat application.
#[derive(Clone)]
pub struct ChatApp {
    instance_id: Arc<str>,
    controllers: Arc<Vec<Arc<dyn MessageController>>>,
    rate: ChatRate,
}

fn error_json(e: &ValidationError) -> Value {
    json!({"ok": false, "error": e})
}

impl ChatApp {
    /// The app with the default controllers.
    pub fn new(instance_id: &str) -> ChatApp {
        ChatApp {
            instance_id: Arc::from(instance_id),
            controllers: Arc::new(default_controllers()),
            rate: ChatRate::default(),
        }
    }

    /// The app with a per-socket inbound budget for chat messages (off when both rates are 0).
    pub fn with_chat_rate(mut self, rate: ChatRate) -> ChatApp {
        self.rate = rate;
        self
    }

    /// The controller handling `event`.
    pub fn controller(&self, event: &str) -> Option<Arc<dyn MessageController>> {
        self.controllers.iter().find(|c| c.event() == event).cloned()
    }

    /// The registered controllers.
    pub fn controllers(&self) -> &[Arc<dyn MessageController>] {
        &self.controllers
    }

    /// Validates and delivers a message for `controller` into the main namespace of `io`. The
    /// broadcast starts when called; the future resolves once it is durable (with connection
    /// state recovery on the streams adapter: `XADD` answered), so an ack sent after it is a
    /// promise a recovering client will get the message.
    pub fn send(
        &self,
        io: &Server,
        controller: &dyn MessageController,
        payload: &Value,
    ) -> impl Future<Output = Result<Message, SendError>> + Send + 'static + use<> {
        let delivery = prepare(controller, payload).map(|message| {
            let sent = deliver(&mut io.sockets(), controller, &message);
            (message, sent)
        });
        async move {
            let (message, sent) = delivery.map_err(SendError::Invalid)?;
            sent.await.map_err(SendError::NotDelivered)?;
            Ok(message)
        }
    }

    /// Registers the app's handlers on every socket of the main namespace.
    pub fn attach(&self, io: &Server) {
        let app = self.clone();
        let io2 = io.clone();
        io.of("/").on_connection(move |socket| app.on_connection(&io2, socket));
    }

    fn on_connection(&self, io: &Server, socket: &Socket) {
        let _ = socket.emit(
            "welcome",
            json!({"instanceId": &*self.instance_id, "socketId": socket.id()}),
        );
        let instance = self.instance_id.clone();
        socket.on("join", move |s, ev, ack| {
            let reply = match room_arg(ev.args.first()) {
                Ok(room) => match s.join(&room) {
                    Ok(()) => {
                        tracing::debug!(sid = %s.id(), %room, "joined");
                        json!({"ok": true, "roomId": room, "instanceId": &*instance})
                    }
                    Err(e) => {
                        json!({"ok": false, "error": {"code": "limit", "message": e.to_string(), "field": "roomId"}})
                    }
                },
                Err(e) => error_json(&e),
            };
            answer_when_stored(s, ack, reply);
        });
        socket.on("leave", |s, ev, ack| {
            let reply = match room_arg(ev.args.first()) {
                Ok(room) => {
                    s.leave(&room);
                    json!({"ok": true, "roomId": room})
                }
                Err(e) => error_json(&e),
            };
            answer_when_stored(s, ack, reply);
        });
        socket.on("echo", |_s, ev, ack| {
            if let Some(ack) = ack {
                let _ = ack.send_args(ev.args, ev.binary);
            }
        });
        // One budget per socket, shared by its message events; its handlers run on the
        // connection's task, so the lock is never contended.
        let budget = self.rate.budget(Instant::now()).map(|b| Arc::new(Mutex::new(b)));
        for controller in self.controllers.iter() {
            let controller = controller.clone();
            let app = self.clone();
            let io = io.clone();
            let budget = budget.clone();
            let event = controller.event();
            socket.on(event, move |s, ev, ack| {
                if let Some(budget) = &budget
                    && let Err(limited) = charge(budget, &ev)
                {
                    refuse_rate_limited(s, controller.event(), limited, ack);
                    return;
                }
                let payload = ev.args.first().cloned().unwrap_or(Value::Null);
                let sent = app.send(&io, controller.as_ref(), &payload);
                // Answered once the broadcast is durable: at once without a store, else later.
                let (s, event) = (s.clone(), controller.event());
                let mut sent = Box::pin(sent);
                match (&mut sent).now_or_never() {
                    Some(result) => answer_sent(&s, event, result, ack),
                    None => {
                        tokio::spawn(async move { answer_sent(&s, event, sent.await, ack) });
                    }
                }
            });
        }
    }
}

/// Acks a room change once its session write was attempted (best effort, bounded; at once
/// without a store), so that a join acknowledged just before a `kill -9` of this instance is
/// still in the session the client recovers elsewhere. A refused change is answered at once.
fn answer_when_stored(s: &Socket, ack: Option<AckSender>, reply: Value) {
    if ack.is_none() || reply["ok"] != Value::Bool(true) {
        answer(ack, reply);
        return;
    }
    let mut stored = s.sessions_written();
    match (&mut stored).now_or_never() {
        Some(_) => answer(ack, reply),
        None => {
            tokio::spawn(async move {
                stored.await;
                answer(ack, reply);
            });
        }
    }
}

/// Acks a chat message (and tells the sender's `message:error` listeners when it failed).
fn answer_sent(s: &Socket, event: &'static str, result: Result<Message, SendError>, ack: Option<AckSender>) {
    match result {
        Ok(message) => answer(ack, json!({"ok": true, "id": message.id})),
        Err(SendError::NotDelivered(e)) => {
            tracing::warn!(sid = %s.id(), error = %e, "message not delivered");
            // Unknown: it may still arrive. Partial: the typed event went out, a retry would repeat it.
            let code = match (e.unknown, e.partial) {
                (true, _) => "delivery_unknown",
                (false, true) => "partially_delivered",
                (false, false) => "not_delivered",
            };
            let error = json!({"code": code, "message": e.to_string(), "field": null});
            let _ = s.emit("message:error", json!({"event": event, "error": &error}));
            answer(ack, json!({"ok": false, "error": error}));
        }
        Err(SendError::Invalid(e)) => {
            tracing::debug!(sid = %s.id(), event, field = %e.field, code = ?e.code, "invalid message");
            crate::metrics::inc(&crate::metrics::METRICS.invalid_messages);
            let _ = s.emit("message:error", json!({"event": event, "error": &e}));
            answer(ack, error_json(&e));
        }
    }
}

/// `join`/`leave` take a room id string (or `{roomId}` for convenience).
fn room_arg(v: Option<&Value>) -> Result<String, ValidationError> {
    let wrapped;
    let obj = match v {
        Some(Value::Object(_)) => v.unwrap_or(&Value::Null),
        other => {
            wrapped = json!({"roomId": other.cloned().unwrap_or(Value::Null)});
            &wrapped
        }
    };
    Ok(Fields::of(obj)?.name("roomId")?.to_owned())
}

/// Charges one message event against the socket's budget.
fn charge(budget: &Mutex<ChatBudget>, ev: &Event) -> Result<(), RateLimited> {
    let mut budget = budget.lock();
    let size = if budget.counts_bytes() {
        message_size(&ev.args, &ev.binary)
    } else {
        0
    };
    budget.charge(size, Instant::now())
}

/// Refuses a message over the sender's budget: not broadcast, `message:error` and the ack say
/// `rate_limited`, the socket stays connected. Logged at info once per run of refusals.
fn refuse_rate_limited(s: &Socket, event: &'static str, limited: RateLimited, ack: Option<AckSender>) {
    crate::metrics::inc(&crate::metrics::METRICS.limit_chat_rate);
    let limit = limited.limit.as_str();
    let retry_after_ms = limited.retry_after.as_millis() as u64;
    if limited.refused_in_row == 1 {
        tracing::info!(sid = %s.id(), event, limit, retry_after_ms, "rate limited: chat messages refused until the socket is under its budget");
    } else {
        tracing::debug!(sid = %s.id(), event, limit, retry_after_ms, refused = limited.refused_in_row, "rate limited");
    }
    let error = json!({
        "code": "rate_limited",
        "message": format!("too many chat messages ({limit} per second budget); retry in {retry_after_ms} ms"),
        "field": null,
        "retryAfterMs": retry_after_ms,
    });
    let _ = s.emit("message:error", json!({"event": event, "error": &error}));
    answer(ack, json!({"ok": false, "error": error}));
}

fn answer(ack: Option<AckSender>, value: Value) {
    if let Some(ack) = ack {
        let _ = ack.send(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_controller_per_event() {
        let app = ChatApp::new("i1");
        let mut events: Vec<_> = app.controllers().iter().map(|c| c.event()).collect();
        events.sort();
        assert_eq!(
            events,
            [
                "message",
                "message:audio",
                "message:file",
                "message:image",
                "message:location",
                "message:zalo"
            ]
        );
        assert!(app.controller("message:image").is_some());
        assert!(app.controller("message:video").is_none());
    }

    #[test]
    fn room_arguments() {
        assert_eq!(room_arg(Some(&json!("r1"))).unwrap(), "r1");
        assert_eq!(room_arg(Some(&json!({"roomId": "r2"}))).unwrap(), "r2");
        assert_eq!(room_arg(Some(&json!(""))).unwrap_err().field, "roomId");
        assert_eq!(room_arg(None).unwrap_err().code, crate::app::ErrorCode::Required);
        assert_eq!(
            room_arg(Some(&json!(5))).unwrap_err().code,
            crate::app::ErrorCode::InvalidType
        );
    }
}
