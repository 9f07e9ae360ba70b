//! The `MessageController` trait (the original design's BaseMessageController) and the steps
//! every message type shares: validate the room and sender, build the typed part, assemble the
//! `Message`, and broadcast both the specific event and the generic `message` to the room.

use super::message::Message;
use super::validate::{Fields, ValidationError, sender};
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

/// Broadcasts `message` to its room, cluster-wide: the specific event (for typed messages), then
/// the generic `message`.
pub fn deliver(nsp: &Namespace, controller: &dyn MessageController, message: &Message) -> Result<(), EmitError> {
    let room = nsp.to(&message.room_id);
    if controller.event() != "message" {
        room.emit(controller.event(), message)?;
    }
    room.emit("message", message)
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
