//! Engine.IO's HTTP-level errors (codes 0–5) with Node's messages and status codes.

use thiserror::Error;

/// A request the Engine.IO endpoint refuses, answered as Node's `engine.io` does:
/// status 400 (403 for [`EngineError::Forbidden`]) and a JSON body `{"code":N,"message":"…"}`.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// Code 0: the `transport` query parameter is missing or not enabled.
    #[error("Transport unknown")]
    UnknownTransport,
    /// Code 1: the `sid` names no live session.
    #[error("Session ID unknown")]
    UnknownSid,
    /// Code 2: a handshake that is not a GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// Code 3: anything else malformed (transport mismatch, overlapping requests, …).
    #[error("Bad request")]
    BadRequest,
    /// Code 4: refused by the application (`allowRequest`) or by a limit.
    #[error("Forbidden")]
    Forbidden,
    /// Code 5: `EIO` is not `4`.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// Node's numeric error code.
    pub const fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The HTTP status Node answers with.
    pub const fn status(self) -> u16 {
        match self {
            EngineError::Forbidden => 403,
            _ => 400,
        }
    }

    /// The JSON body Node answers with, byte for byte.
    pub fn body(self) -> String {
        ErrorBody::new(self.code(), &self.to_string()).to_json()
    }
}

/// Engine.IO's error body `{"code":N,"message":"…"}`, also used for a handshake a limit refuses.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody<'a> {
    /// The Engine.IO error code (0–5).
    pub code: u8,
    /// Human-readable explanation.
    pub message: &'a str,
}

impl<'a> ErrorBody<'a> {
    /// A body with this code and message.
    pub fn new(code: u8, message: &'a str) -> ErrorBody<'a> {
        ErrorBody { code, message }
    }

    /// The body as JSON text (fields in declaration order, strings escaped).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_node() {
        assert_eq!(
            EngineError::UnknownTransport.body(),
            r#"{"code":0,"message":"Transport unknown"}"#
        );
        assert_eq!(
            EngineError::UnknownSid.body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(
            EngineError::BadHandshakeMethod.body(),
            r#"{"code":2,"message":"Bad handshake method"}"#
        );
        assert_eq!(EngineError::BadRequest.body(), r#"{"code":3,"message":"Bad request"}"#);
        assert_eq!(EngineError::Forbidden.body(), r#"{"code":4,"message":"Forbidden"}"#);
        assert_eq!(
            EngineError::UnsupportedProtocolVersion.body(),
            r#"{"code":5,"message":"Unsupported protocol version"}"#
        );
        assert_eq!(EngineError::Forbidden.status(), 403);
        assert_eq!(
            ErrorBody::new(4, "say \"no\"").to_json(),
            r#"{"code":4,"message":"say \"no\""}"#
        );
        assert_eq!(EngineError::BadRequest.status(), 400);
    }
}
