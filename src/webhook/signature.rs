//! `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, checked in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Computes the header value for `body` (for clients and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
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

/// Whether `header` is a valid signature of `body` under `secret` (constant-time comparison).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")).and_then(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        // RFC 4231 test case 2.
        let s = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", Some(&s)));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", Some(&s)));
        assert!(!verify(b"other", b"what do ya want for nothing?", Some(&s)));
        assert!(!verify(b"Jefe", b"x", None));
        assert!(!verify(b"Jefe", b"x", Some("sha256=zz")));
        assert!(!verify(b"Jefe", b"x", Some("5bdcc146")));
    }
}
