//! HTTP compression of polling responses, as Node's engine.io does by default
//! (`httpCompression: {threshold: 1024}`): a body of at least [`THRESHOLD`] bytes is sent gzip- or
//! deflate-encoded when the request's `Accept-Encoding` allows one of them.

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use http::{HeaderMap, header};
use std::io::Write as _;

/// Smallest body compressed, bytes (Node's default threshold).
pub const THRESHOLD: usize = 1024;

/// A content coding the server can apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `deflate` (the zlib format, as HTTP and Node's `zlib.createDeflate` mean it).
    Deflate,
}

impl Encoding {
    /// The `Content-Encoding` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }
}

/// The coding `Accept-Encoding` prefers among gzip and deflate (highest q; gzip on a tie, as
/// Node's `accepts(req).encodings(["gzip", "deflate"])`), or `None`.
pub fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let (mut gzip, mut deflate, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = if name.eq_ignore_ascii_case("gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case("deflate") {
                &mut deflate
            } else if name == "*" {
                &mut any
            } else {
                continue;
            };
            *slot = Some(q);
        }
    }
    let gzip = gzip.or(any).unwrap_or(0.0);
    let deflate = deflate.or(any).unwrap_or(0.0);
    match (gzip > 0.0, deflate > 0.0) {
        (true, _) if gzip >= deflate => Some(Encoding::Gzip),
        (_, true) => Some(Encoding::Deflate),
        _ => None,
    }
}

/// Compresses `data` at zlib's default level (Node's too).
pub fn compress(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    let out = Vec::with_capacity(data.len() / 3 + 64);
    // Writing into a Vec cannot fail.
    match encoding {
        Encoding::Gzip => {
            let mut e = GzEncoder::new(out, Compression::default());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        Encoding::Deflate => {
            let mut e = ZlibEncoder::new(out, Compression::default());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::{GzDecoder, ZlibDecoder};
    use http::HeaderValue;
    use std::io::Read as _;

    fn pick(v: &str) -> Option<Encoding> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiates_like_node() {
        assert_eq!(negotiate(&HeaderMap::new()), None);
        assert_eq!(pick("gzip, deflate, br"), Some(Encoding::Gzip));
        assert_eq!(pick("deflate, gzip"), Some(Encoding::Gzip), "a tie goes to gzip");
        assert_eq!(pick("deflate"), Some(Encoding::Deflate));
        assert_eq!(pick("gzip;q=0.5, deflate"), Some(Encoding::Deflate));
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("br, identity"), None);
        assert_eq!(pick("*"), Some(Encoding::Gzip));
        assert_eq!(pick("*;q=0, deflate"), Some(Encoding::Deflate));
        assert_eq!(pick("GZIP"), Some(Encoding::Gzip));
        assert_eq!(pick("gzip;q=nonsense"), Some(Encoding::Gzip));
    }

    #[test]
    fn round_trips() {
        let data = "4[\"message\",{\"text\":\"hello\"}]\x1e".repeat(100);
        let mut out = String::new();
        GzDecoder::new(&compress(Encoding::Gzip, data.as_bytes())[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, data);
        out.clear();
        let z = compress(Encoding::Deflate, data.as_bytes());
        assert_eq!(z[0], 0x78, "zlib header");
        ZlibDecoder::new(&z[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
