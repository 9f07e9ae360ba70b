//! Classifies an HTTP request to the Engine.IO endpoint, as Node's `Server.verify` does.
//!
//! Pure: the caller passes the method, the query and a sid lookup, and gets back what to do.

use super::config::{EngineConfig, TransportKind};
use super::error::EngineError;

/// The HTTP methods the endpoint distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET: handshake or poll.
    Get,
    /// POST: polling data.
    Post,
    /// Anything else.
    Other,
}

/// The Engine.IO query parameters of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `EIO`: protocol version.
    pub eio: Option<String>,
    /// `transport`.
    pub transport: Option<String>,
    /// `sid`, present after the handshake.
    pub sid: Option<String>,
}

impl Query {
    /// Extracts the Engine.IO parameters from a raw query string (`+` and `%XX` decoded; invalid
    /// escapes and UTF-8 are kept or replaced, never refused: verification judges the values).
    pub fn parse(raw: &str) -> Query {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            let slot = match &*k {
                "EIO" => &mut q.eio,
                "transport" => &mut q.transport,
                "sid" => &mut q.sid,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        q
    }
}

/// What a verified request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A new session on this transport (polling GET, or a WebSocket upgrade without sid).
    Handshake(TransportKind),
    /// A polling GET on an existing session.
    Poll(String),
    /// A polling POST on an existing session.
    Post(String),
    /// A WebSocket upgrade of an existing polling session.
    Upgrade(String),
}

/// Verifies a request and tells what it is for.
///
/// `is_websocket` says the request asks for a WebSocket upgrade; `lookup(sid)` returns the
/// current transport of a live session.
pub fn verify(
    config: &EngineConfig,
    method: Method,
    query: &Query,
    is_websocket: bool,
    lookup: impl FnOnce(&str) -> Option<TransportKind>,
) -> Result<Route, EngineError> {
    let transport = query
        .transport
        .as_deref()
        .and_then(TransportKind::parse)
        .filter(|t| match t {
            TransportKind::Polling => config.transports.polling,
            TransportKind::WebSocket => config.transports.websocket,
        })
        .ok_or(EngineError::UnknownTransport)?;
    match query.sid.as_deref().filter(|s| !s.is_empty()) {
        Some(sid) => {
            let current = lookup(sid).ok_or(EngineError::UnknownSid)?;
            if is_websocket && transport == TransportKind::WebSocket {
                return Ok(Route::Upgrade(sid.to_owned()));
            }
            if current != transport || transport == TransportKind::WebSocket {
                return Err(EngineError::BadRequest);
            }
            match method {
                Method::Get => Ok(Route::Poll(sid.to_owned())),
                Method::Post => Ok(Route::Post(sid.to_owned())),
                Method::Other => Err(EngineError::BadRequest),
            }
        }
        None => {
            if method != Method::Get {
                return Err(EngineError::BadHandshakeMethod);
            }
            if transport == TransportKind::WebSocket && !is_websocket {
                return Err(EngineError::BadRequest);
            }
            if query.eio.as_deref() != Some("4") {
                return Err(EngineError::UnsupportedProtocolVersion);
            }
            Ok(Route::Handshake(transport))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_the_last_wins() {
        let q = Query::parse("EIO=4&transport=polling&t=x&sid=a%2Bb+c&sid=d%2");
        assert_eq!(q.eio.as_deref(), Some("4"));
        assert_eq!(q.transport.as_deref(), Some("polling"));
        assert_eq!(q.sid.as_deref(), Some("d%2"));
        assert_eq!(Query::parse("sid=a%2Bb+c&&x").sid.as_deref(), Some("a+b c"));
        assert_eq!(Query::parse("sid=%FF").sid.as_deref(), Some("\u{FFFD}"));
        assert_eq!(Query::parse(""), Query::default());
    }
}
