//! Signed requests: `X-Webhook-Timestamp: <unix seconds>` and
//! `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`, checked in constant
//! time. Timestamps more than [`TOLERANCE_SECS`] away from now are refused, and every signature
//! seen within that window is remembered (bounded), so a captured request cannot be replayed.

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// How far a request's timestamp may be from the server's clock, in seconds (5 minutes).
pub const TOLERANCE_SECS: i64 = 300;
/// Most signatures remembered against replays; past it the oldest are dropped and timestamps up
/// to theirs are refused as stale, so a dropped one can still not be replayed.
pub const MAX_SEEN: usize = 100_000;
/// Shortest accepted `WEBHOOK_SECRET`, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a request's signature was refused (answer 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// `X-Webhook-Timestamp` is missing or not a whole number of seconds.
    MissingTimestamp,
    /// The signature is missing or does not match the timestamp and body.
    BadSignature,
    /// The timestamp is more than [`TOLERANCE_SECS`] away from now.
    StaleTimestamp,
}

impl SignatureError {
    /// `(code, header, message)` of the 401 answer.
    pub fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            SignatureError::MissingTimestamp => (
                "missing_timestamp",
                "X-Webhook-Timestamp",
                "X-Webhook-Timestamp (unix seconds) is required when requests are signed",
            ),
            SignatureError::BadSignature => (
                "invalid_signature",
                "X-Webhook-Signature",
                "X-Webhook-Signature is missing or wrong (HMAC-SHA256 of \"<timestamp>.<body>\")",
            ),
            SignatureError::StaleTimestamp => (
                "stale_timestamp",
                "X-Webhook-Timestamp",
                "X-Webhook-Timestamp is more than 5 minutes away from the server's clock",
            ),
        }
    }
}

/// The current unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Computes the `X-Webhook-Signature` value for `body` sent at `timestamp` (for clients and tests).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, &timestamp.to_string(), body).finalize().into_bytes();
    format!(
        "sha256={}",
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A request whose signature checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed {
    /// Its timestamp.
    pub timestamp: i64,
    /// Its HMAC.
    pub mac: [u8; 32],
}

/// Checks `signature` of `body` at `timestamp` (the header values) under `secret` at `now`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
    now: i64,
) -> Result<Signed, SignatureError> {
    let ts_text = timestamp.map(str::trim).ok_or(SignatureError::MissingTimestamp)?;
    let ts: i64 = ts_text.parse().map_err(|_| SignatureError::MissingTimestamp)?;
    let sig = signature
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(hex)
        .ok_or(SignatureError::BadSignature)?;
    let m = mac(secret, ts_text, body);
    m.verify_slice(&sig).map_err(|_| SignatureError::BadSignature)?;
    if now.abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&sig);
    Ok(Signed {
        timestamp: ts,
        mac: out,
    })
}

#[derive(Default)]
struct Seen {
    entries: BTreeSet<(i64, [u8; 32])>,
    /// Timestamps at or below this are refused: their signatures may have been dropped.
    floor: i64,
}

/// Signatures seen within the tolerance window.
pub struct ReplayGuard {
    seen: Mutex<Seen>,
    max: usize,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(MAX_SEEN)
    }
}

/// What the replay guard says about a signed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sighting {
    /// First time this signature is seen.
    First,
    /// Seen before: a replay (or a byte-identical retry).
    Again,
    /// Older than signatures the guard had to drop: refuse as stale.
    TooOld,
}

impl ReplayGuard {
    /// Remembers at most `max` signatures.
    pub fn new(max: usize) -> Self {
        ReplayGuard {
            seen: Mutex::default(),
            max: max.max(1),
        }
    }

    /// Records `signed` at `now` and says whether it was seen before.
    pub fn check(&self, signed: Signed, now: i64) -> Sighting {
        let mut seen = self.seen.lock();
        // Signatures with timestamps older than the window would be refused as stale anyway.
        while let Some(first) = seen.entries.first() {
            if first.0 >= now - TOLERANCE_SECS {
                break;
            }
            seen.entries.pop_first();
        }
        if signed.timestamp <= seen.floor {
            return Sighting::TooOld;
        }
        if !seen.entries.insert((signed.timestamp, signed.mac)) {
            return Sighting::Again;
        }
        while seen.entries.len() > self.max {
            if let Some((ts, _)) = seen.entries.pop_first() {
                seen.floor = seen.floor.max(ts);
            }
        }
        if signed.timestamp <= seen.floor {
            return Sighting::TooOld;
        }
        Sighting::First
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        // RFC 4231 test case 2, with the timestamp prefix as part of the message.
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        let rfc = m.finalize().into_bytes();
        assert_eq!(
            rfc.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let now = 1_800_000_000;
        let s = sign(b"Jefe", now, b"body");
        let ts = now.to_string();
        assert!(verify(b"Jefe", Some(&ts), b"body", Some(&s), now).is_ok());
        assert!(verify(b"Jefe", Some(&ts), b"body", Some(&s), now + 300).is_ok());
        assert_eq!(
            verify(b"Jefe", Some(&ts), b"body", Some(&s), now + 301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(b"Jefe", Some(&ts), b"body", Some(&s), now - 301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(b"Jefe", Some(&ts), b"bodz", Some(&s), now),
            Err(SignatureError::BadSignature)
        );
        let other = (now + 1).to_string();
        assert_eq!(
            verify(b"Jefe", Some(&other), b"body", Some(&s), now),
            Err(SignatureError::BadSignature),
            "the timestamp is signed"
        );
        assert_eq!(
            verify(b"Jefe", None, b"body", Some(&s), now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(b"Jefe", Some("soon"), b"body", Some(&s), now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(b"Jefe", Some(&ts), b"body", Some("sha256=zz"), now),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify(b"Jefe", Some(&ts), b"body", None, now),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn replays_are_seen_and_the_guard_is_bounded() {
        let guard = ReplayGuard::new(3);
        let at = |ts: i64, b: u8| Signed {
            timestamp: ts,
            mac: [b; 32],
        };
        let now = 1_000_000;
        assert_eq!(guard.check(at(now, 1), now), Sighting::First);
        assert_eq!(guard.check(at(now, 1), now), Sighting::Again);
        assert_eq!(guard.check(at(now + 1, 2), now), Sighting::First);
        assert_eq!(guard.check(at(now + 2, 3), now), Sighting::First);
        // Full: the oldest is dropped, and its timestamp becomes the floor.
        assert_eq!(guard.check(at(now + 3, 4), now), Sighting::First);
        assert_eq!(guard.len(), 3);
        assert_eq!(
            guard.check(at(now, 1), now),
            Sighting::TooOld,
            "a dropped one stays refused"
        );
        // Later, old entries leave the window by themselves.
        assert_eq!(guard.check(at(now + 400, 5), now + 400), Sighting::First);
        assert_eq!(guard.len(), 1);
    }
}
