//! The chat `Message` and its cluster-unique, time-ordered ids.

use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static COUNTER: AtomicU16 = AtomicU16::new(0);

/// A 26-character id: 48 bits of milliseconds, a 16-bit per-process counter and 64 random bits,
/// in Crockford base32. Ids sort by creation time across instances (to the millisecond) and do
/// not collide: the random part differs between instances, the counter within one.
pub fn new_id() -> String {
    let ms = now_ms() & 0xFFFF_FFFF_FFFF;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    let mut rnd = [0u8; 8];
    let _ = getrandom::fill(&mut rnd);
    let value: u128 = ((ms as u128) << 80) | (counter << 64) | u64::from_be_bytes(rnd) as u128;
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An ISO-8601 UTC timestamp with milliseconds, like JavaScript's `toISOString()`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = crate::server::handshake::civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} < {b}");
        let many: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
