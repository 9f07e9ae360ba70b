//! `Str`: a cheap, clonable UTF-8 string backed by shared `Bytes`.

use bytes::Bytes;
use std::fmt;

/// An immutable UTF-8 string over shared bytes: cloning it never copies.
///
/// The only way to build one is from data already known to be UTF-8 (`&str`, `String`, or bytes
/// checked with [`Str::from_utf8`]), so [`Str::as_str`] never fails.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Str(Bytes);

impl Str {
    /// Wraps bytes after checking that they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Str(bytes))
    }

    /// A static string without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees the bytes are valid UTF-8 and `Bytes` is immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the underlying shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A sub-string starting at byte `start` (which must be a char boundary), without copying.
    pub fn slice_from(&self, start: usize) -> Str {
        debug_assert!(self.as_str().is_char_boundary(start));
        if !self.as_str().is_char_boundary(start) {
            return Str(self.0.clone());
        }
        Str(self.0.slice(start..))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(Bytes::from(s))
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
