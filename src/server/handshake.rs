//! The handshake details of a socket (Node's `socket.handshake`).

use crate::transport::RequestInfo;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the client sent when it connected.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// Request headers of the first HTTP request.
    pub headers: Arc<HeaderMap>,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The CONNECT payload (`{}` when none).
    pub auth: Value,
    /// The peer address.
    pub address: SocketAddr,
    /// The client's address: the peer, or the client a trusted proxy names (`TRUSTED_PROXIES`).
    pub client: std::net::IpAddr,
    /// The request path and query.
    pub url: String,
    /// Whether the connection is secure.
    pub secure: bool,
    /// Whether an `Origin` header was present (cross-domain).
    pub xdomain: bool,
    /// When the socket connected, in ms since the epoch.
    pub issued: u64,
}

impl Handshake {
    /// Builds the handshake from the opening request and the CONNECT payload.
    pub fn new(request: &RequestInfo, auth: Value) -> Handshake {
        let query = form_urlencoded::parse(request.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Handshake {
            headers: request.headers.clone(),
            query,
            auth,
            address: request.remote,
            client: request.client,
            url: request.url.clone(),
            secure: request.secure,
            xdomain: request.headers.contains_key(http::header::ORIGIN),
            issued: crate::time::now_ms(),
        }
    }

    /// A query parameter.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The handshake as Node serializes it (for `fetchSockets` across servers).
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (k, v) in self.headers.iter() {
            if let Ok(v) = v.to_str() {
                headers.insert(k.as_str().to_owned(), Value::String(v.to_owned()));
            }
        }
        let query: Map<String, Value> = self
            .query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "headers": headers,
            "time": crate::time::iso8601(self.issued),
            "address": self.address.ip().to_string(),
            "xdomain": self.xdomain,
            "secure": self.secure,
            "issued": self.issued,
            "url": self.url,
            "query": query,
            "auth": self.auth,
        })
    }
}
