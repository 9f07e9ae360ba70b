//! The chat `Message` (its ids come from [`crate::ids::time_ordered`]).

use serde::Serialize;
use serde_json::{Map, Value};

/// A delivered chat message (ARCHITECTURE.md, "Application contract").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Cluster-unique, time-ordered id.
    pub id: String,
    /// Display text, derived per message type.
    pub text: String,
    /// Who sent it (`Anonymous` by default).
    pub sender: String,
    /// ISO-8601 UTC time the server accepted it.
    pub timestamp: String,
    /// The room it was sent to.
    pub room_id: String,
    /// `type` plus the type's fields and any fields the client added.
    pub metadata: Map<String, Value>,
}
