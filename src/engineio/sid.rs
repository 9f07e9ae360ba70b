//! Session ids: 20 characters of base64url CSPRNG randomness, optionally prefixed by an instance tag.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The character separating an instance tag from the random part of a sid.
///
/// `.` is URL-safe and outside the base64url alphabet, so `tag.random` splits unambiguously and a
/// load balancer can route on the prefix (`map $arg_sid …`).
pub const TAG_SEPARATOR: char = '.';

/// Returns 20 characters of base64url randomness (15 bytes from the OS CSPRNG).
pub fn random_id() -> String {
    let mut bytes = [0u8; 15];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS generator failing is not recoverable in a meaningful way; fall back to a
        // time- and address-seeded mix rather than panicking. Logged so operators see it.
        tracing::error!("OS random generator failed; using a weaker fallback for a session id");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ (&bytes as *const _ as usize as u128);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i * 8) % 128)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Generates a session id: `random` or `tag.random`.
pub fn generate(tag: Option<&str>) -> String {
    match tag {
        Some(tag) if !tag.is_empty() => format!("{tag}{TAG_SEPARATOR}{}", random_id()),
        _ => random_id(),
    }
}

/// The instance tag of a sid made by [`generate`], if it has one.
pub fn tag_of(sid: &str) -> Option<&str> {
    sid.split_once(TAG_SEPARATOR).map(|(tag, _)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_20_base64url_chars_and_distinct() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }

    #[test]
    fn tags_prefix_and_split() {
        let sid = generate(Some("s2"));
        assert_eq!(tag_of(&sid), Some("s2"));
        assert_eq!(sid.len(), 23);
        assert_eq!(tag_of(&generate(None)), None);
    }
}
