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
    /// Extracts the Engine.IO parameters from a raw query string (percent-decoded).
    pub fn parse(raw: &str) -> Query {
        let mut q = Query::default();
        for pair in raw.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // Only the three parameters kept are decoded (the client's `t` cache-buster is not).
            match k {
                "EIO" => q.eio = Some(percent_decode(v)),
                "transport" => q.transport = Some(percent_decode(v)),
                "sid" => q.sid = Some(percent_decode(v)),
                _ => {}
            }
        }
        q
    }
}

/// Decodes `%XX` escapes and `+` in a query value; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
