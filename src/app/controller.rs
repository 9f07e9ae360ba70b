//! The `MessageController` trait (the original design's BaseMessageController) and the steps
//! every message type shares: validate the room and sender, build the typed part, assemble the
//! `Message`, and broadcast both the specific event and the generic `message` to the room.

use super::message::Message;
use super::validate::{Fields, ValidationError, sender};
use crate::adapter::BoxFuture;
use crate::ids;
use crate::server::{EmitError, Namespace};
use crate::time::{iso8601, now_ms};
use serde_json::{Map, Value};

/// What a controller derives from a valid payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// The message text (e.g. the caption of an image).
    pub text: String,
    /// The type's fields for `metadata`.
    pub fields: Map<String, Value>,
}

/// One message type: its event, its `metadata.type`, and how to validate and build it.
///
/// Adding a message type is one file implementing this trait and one line in
/// [`super::registry::default_controllers`].
pub trait MessageController: Send + Sync + 'static {
    /// The client event, e.g. `message:image`.
    fn event(&self) -> &'static str;
    /// `metadata.type`, e.g. `image`.
    fn kind(&self) -> &'static str;
    /// Payload fields this type understands; any other field is kept in `metadata` unchanged.
    fn known_fields(&self) -> &'static [&'static str];
    /// Validates the type's fields and derives the text and metadata fields.
    fn build(&self, fields: &Fields<'_>) -> Result<Draft, ValidationError>;
}

/// Fields every payload may carry, handled here rather than by the controllers.
const COMMON: [&str; 3] = ["roomId", "sender", "metadata"];

/// Validates `payload` for `controller` and builds the `Message` (not yet delivered).
pub fn prepare(controller: &dyn MessageController, payload: &Value) -> Result<Message, ValidationError> {
    let fields = Fields::of(payload)?;
    let room_id = fields.name("roomId")?.to_owned();
    let sender = sender(&fields)?;
    let client_metadata = fields.optional_object("metadata")?;
    let draft = controller.build(&fields)?;
    let mut metadata = Map::new();
    if let Some(m) = client_metadata {
        metadata.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (k, v) in fields.0 {
        if !COMMON.contains(&k.as_str()) && !controller.known_fields().contains(&k.as_str()) {
            metadata.insert(k.clone(), v.clone());
        }
    }
    metadata.extend(draft.fields);
    metadata.insert("type".into(), Value::String(controller.kind().to_owned()));
    Ok(Message {
        id: ids::time_ordered(),
        text: draft.text,
        sender,
        timestamp: iso8601(now_ms()),
        room_id,
        metadata,
    })
}

/// Where a prepared message is broadcast: a namespace of this process's server (cluster-wide
/// through its adapter), or the webhook's Redis emitter.
pub trait Outlet {
    /// Starts broadcasting `event` with `message` to `room` (the work starts when called, so
    /// successive emits keep their order); the future resolves once the emit is durable (with
    /// connection state recovery: stored by the adapter, e.g. `XADD` answered), `Err` saying why
    /// it did not go out.
    fn emit(
        &mut self,
        room: &str,
        event: &'static str,
        message: &Message,
    ) -> BoxFuture<'static, Result<(), EmitFailure>>;
}

/// Why one emit did not go out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmitFailure {
    /// Why.
    pub reason: String,
    /// It may have gone out after all (e.g. a store that timed out after the write was sent).
    pub unknown: bool,
}

impl From<String> for EmitFailure {
    fn from(reason: String) -> Self {
        EmitFailure { reason, unknown: false }
    }
}

impl Outlet for Namespace {
    fn emit(
        &mut self,
        room: &str,
        event: &'static str,
        message: &Message,
    ) -> BoxFuture<'static, Result<(), EmitFailure>> {
        let value = match serde_json::to_value(message) {
            Ok(v) => v,
            Err(e) => {
                return Box::pin(std::future::ready(Err(
                    format!("cannot serialize the message: {e}").into()
                )));
            }
        };
        let durable = self.to(room).emit_durable(event, vec![value], Vec::new());
        Box::pin(async move {
            durable.await.map_err(|e: EmitError| EmitFailure {
                unknown: matches!(e, EmitError::Adapter(crate::adapter::AdapterError::Unknown(_))),
                reason: e.to_string(),
            })
        })
    }
}

/// Why a prepared message was not (fully) broadcast.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{event} to room {room:?} not broadcast: {reason}")]
pub struct DeliverError {
    /// The event that failed.
    pub event: &'static str,
    /// The room it was for.
    pub room: String,
    /// Why.
    pub reason: String,
    /// Another event of the same message did go out (a retry would repeat it).
    pub partial: bool,
    /// The failed event may have gone out after all (its outcome is unknown).
    pub unknown: bool,
}

/// Broadcasts `message` to its room: the specific event (for typed messages), then the generic
/// `message`, both started at once in that order. Resolves once every emit is durable, or with the
/// first failure, saying which event it was and whether another one went out.
pub fn deliver(
    outlet: &mut dyn Outlet,
    controller: &dyn MessageController,
    message: &Message,
) -> impl Future<Output = Result<(), DeliverError>> + Send + 'static + use<> {
    let specific = Some(controller.event()).filter(|e| *e != "message");
    let emits: Vec<_> = specific
        .into_iter()
        .chain(["message"])
        .map(|event| (event, outlet.emit(&message.room_id, event, message)))
        .collect();
    let room = message.room_id.clone();
    async move {
        let mut results = Vec::with_capacity(emits.len());
        for (event, emit) in emits {
            results.push((event, emit.await));
        }
        let partial = results.iter().any(|(_, r)| r.is_ok());
        match results.into_iter().find_map(|(event, r)| r.err().map(|f| (event, f))) {
            Some((event, f)) => Err(DeliverError {
                event,
                room,
                reason: f.reason,
                partial,
                unknown: f.unknown,
            }),
            None => Ok(()),
        }
    }
}

/// Inserts `value` under `key` when present.
pub(crate) fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

/// A JSON number, integral when it is one.
pub(crate) fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::image::ImageController;
    use crate::app::text::TextController;
    use serde_json::json;

    /// Records emits; fails the `fail_at`-th one.
    struct Recorder(Vec<&'static str>, Option<usize>);

    impl Outlet for Recorder {
        fn emit(
            &mut self,
            _room: &str,
            event: &'static str,
            _m: &Message,
        ) -> BoxFuture<'static, Result<(), EmitFailure>> {
            let failed = self.1 == Some(self.0.len());
            self.0.push(event);
            Box::pin(std::future::ready(if failed {
                Err(String::from("refused").into())
            } else {
                Ok(())
            }))
        }
    }

    #[tokio::test]
    async fn typed_messages_go_out_as_their_event_then_message() {
        let image = prepare(&ImageController, &json!({"roomId": "r", "imageUrl": "http://a/b.png"})).unwrap();
        let mut out = Recorder(vec![], None);
        deliver(&mut out, &ImageController, &image).await.unwrap();
        assert_eq!(out.0, ["message:image", "message"]);
        let text = prepare(&TextController, &json!({"roomId": "r", "message": "hi"})).unwrap();
        let mut out = Recorder(vec![], None);
        deliver(&mut out, &TextController, &text).await.unwrap();
        assert_eq!(out.0, ["message"]);
    }

    #[tokio::test]
    async fn failures_name_the_event_and_whether_some_went_out() {
        let image = prepare(&ImageController, &json!({"roomId": "r", "imageUrl": "http://a/b.png"})).unwrap();
        // The first failed but the second went out: partial.
        let e = deliver(&mut Recorder(vec![], Some(0)), &ImageController, &image)
            .await
            .unwrap_err();
        assert_eq!((e.event, e.room.as_str(), e.partial), ("message:image", "r", true));
        let text = prepare(&TextController, &json!({"roomId": "r", "message": "hi"})).unwrap();
        let e = deliver(&mut Recorder(vec![], Some(0)), &TextController, &text)
            .await
            .unwrap_err();
        assert_eq!((e.event, e.partial), ("message", false));
        let e = deliver(&mut Recorder(vec![], Some(1)), &ImageController, &image)
            .await
            .unwrap_err();
        assert_eq!((e.event, e.partial), ("message", true));
        assert_eq!(e.to_string(), "message to room \"r\" not broadcast: refused");
    }
}
