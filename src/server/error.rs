//! Errors of the server API: emitting, acks, and refusing a namespace connection.

use serde_json::Value;
use thiserror::Error;

/// Why an emit was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The event name is reserved (`connect`, `disconnect`, …).
    #[error("\"{0}\" is a reserved event name")]
    Reserved(String),
    /// A value could not be serialized to JSON.
    #[error("cannot serialize the payload: {0}")]
    Serialize(String),
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
    /// A configured limit refused it.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// The adapter could not make the packet durable (connection state recovery).
    #[error(transparent)]
    Adapter(#[from] crate::adapter::AdapterError),
}

/// Why an acknowledgement did not arrive.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AckError {
    /// No answer within the timeout ("operation has timed out"); holds the answers that did arrive
    /// (for broadcasts).
    #[error("operation has timed out")]
    Timeout(Vec<Value>),
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// A middleware's refusal: sent to the client as CONNECT_ERROR `{"message", "data"?}`.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{message}")]
pub struct ConnectError {
    /// The error message.
    pub message: String,
    /// Extra data for the client (`err.data`).
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> ConnectError {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds data for the client.
    pub fn with_data(mut self, data: Value) -> ConnectError {
        self.data = Some(data);
        self
    }
}
