//! Session ids: 20 characters of base64url CSPRNG randomness ([`crate::ids::token`]), optionally
//! prefixed by an instance tag.

use crate::ids::token;

/// The character separating an instance tag from the random part of a sid.
///
/// `.` is URL-safe and outside the base64url alphabet, so `tag.random` splits unambiguously and a
/// load balancer can route on the prefix (`map $arg_sid …`).
pub const TAG_SEPARATOR: char = '.';

/// Generates a session id: `random` or `tag.random`.
pub fn generate(tag: Option<&str>) -> String {
    match tag {
        Some(tag) if !tag.is_empty() => format!("{tag}{TAG_SEPARATOR}{}", token()),
        _ => token(),
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
    fn tags_prefix_and_split() {
        let sid = generate(Some("s2"));
        assert_eq!(tag_of(&sid), Some("s2"));
        assert_eq!(sid.len(), 23);
        assert_eq!(tag_of(&generate(None)), None);
    }
}
