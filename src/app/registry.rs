//! Wires the chat application onto the Socket.IO server in one place: `welcome` on connect,
//! `join` / `leave` / `echo`, and one handler per message controller.

use super::audio::AudioController;
use super::controller::{MessageController, deliver, prepare};
use super::file::FileController;
use super::image::ImageController;
use super::location::LocationController;
use super::message::Message;
use super::text::TextController;
use super::validate::{Fields, ValidationError};
use super::zalo::ZaloController;
use crate::server::{AckSender, Server, Socket};
use serde_json::{Value, json};
use std::sync::Arc;

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

/// The chat application.
#[derive(Clone)]
pub struct ChatApp {
    instance_id: Arc<str>,
    controllers: Arc<Vec<Arc<dyn MessageController>>>,
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
        }
    }

    /// The controller handling `event`.
    pub fn controller(&self, event: &str) -> Option<Arc<dyn MessageController>> {
        self.controllers.iter().find(|c| c.event() == event).cloned()
    }

    /// The registered controllers.
    pub fn controllers(&self) -> &[Arc<dyn MessageController>] {
        &self.controllers
    }

    /// Validates and delivers a message for `controller` into the main namespace of `io`:
    /// the path shared by socket events and the webhook.
    pub fn send(
        &self,
        io: &Server,
        controller: &dyn MessageController,
        payload: &Value,
    ) -> Result<Message, ValidationError> {
        let message = prepare(controller, payload)?;
        if let Err(e) = deliver(&io.sockets(), controller, &message) {
            tracing::warn!(error = %e, room = %message.room_id, "message not delivered");
        }
        Ok(message)
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
            answer(ack, reply);
        });
        socket.on("leave", |s, ev, ack| {
            let reply = match room_arg(ev.args.first()) {
                Ok(room) => {
                    s.leave(&room);
                    json!({"ok": true, "roomId": room})
                }
                Err(e) => error_json(&e),
            };
            answer(ack, reply);
        });
        socket.on("echo", |_s, ev, ack| {
            if let Some(ack) = ack {
                let _ = ack.send_args(ev.args, ev.binary);
            }
        });
        for controller in self.controllers.iter() {
            let controller = controller.clone();
            let app = self.clone();
            let io = io.clone();
            let event = controller.event();
            socket.on(event, move |s, ev, ack| {
                let payload = ev.args.first().cloned().unwrap_or(Value::Null);
                match app.send(&io, controller.as_ref(), &payload) {
                    Ok(message) => answer(ack, json!({"ok": true, "id": message.id})),
                    Err(e) => {
                        tracing::debug!(sid = %s.id(), event = controller.event(), field = %e.field, code = e.code, "invalid message");
                        crate::metrics::inc(&crate::metrics::METRICS.invalid_messages);
                        let _ = s.emit("message:error", json!({"event": controller.event(), "error": &e}));
                        answer(ack, error_json(&e));
                    }
                }
            });
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
        assert_eq!(room_arg(None).unwrap_err().code, "required");
        assert_eq!(room_arg(Some(&json!(5))).unwrap_err().code, "invalid_type");
    }
}
