//! The handshake details of a socket (Node's `socket.handshake`).

use crate::transport::RequestInfo;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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
        let query = request
            .query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (
                    crate::engineio::request::percent_decode(k),
                    crate::engineio::request::percent_decode(v),
                )
            })
            .collect();
        Handshake {
            headers: request.headers.clone(),
            query,
            auth,
            address: request.remote,
            url: request.url.clone(),
            secure: request.secure,
            xdomain: request.headers.contains_key(http::header::ORIGIN),
            issued: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
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
            "time": httpdate(self.issued),
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

/// A UTC timestamp for the `time` field (ISO-8601).
fn httpdate(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z", ms % 1000)
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(httpdate(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(httpdate(1_764_086_400_123), "2025-11-25T16:00:00.123Z");
    }
}
