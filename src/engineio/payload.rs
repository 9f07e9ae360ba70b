//! Polling payloads: packets joined by the record separator `\x1e`, binary as `b` + base64.

use super::packet::{Data, Frame, Packet, PacketError};
use super::str::Str;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use bytes::Bytes;

/// The record separator between packets of one payload.
pub const SEPARATOR: char = '\x1e';

/// Standard base64 that accepts input with or without padding, like Node's `Buffer.from(s, "base64")`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Bytes `frames` take joined into one payload (separators and base64 included).
fn encoded_len<'a>(frames: impl Iterator<Item = &'a Frame>) -> (usize, usize) {
    frames.fold((0, 0), |(len, n), f| {
        let size = match f {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => 1 + base64::encoded_len(b.len(), true).unwrap_or(usize::MAX / 2),
        };
        (len + size + usize::from(n > 0), n + 1)
    })
}

/// Joins frames into `out`, which has room for them (one allocation, no regrowth).
fn encode_into<'a>(frames: impl Iterator<Item = &'a Frame>, out: &mut String) {
    for (i, frame) in frames.enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(s) => out.push_str(s),
            Frame::Binary(b) => {
                out.push('b');
                general_purpose::STANDARD.encode_string(b, out);
            }
        }
    }
}

/// Joins encoded frames into one polling payload.
pub fn encode<'a>(frames: impl IntoIterator<Item = &'a Frame, IntoIter: Clone>) -> String {
    let frames = frames.into_iter();
    let mut out = String::with_capacity(encoded_len(frames.clone()).0);
    encode_into(frames, &mut out);
    out
}

/// [`encode`] as shared bytes: a payload of one text frame is that frame's bytes (a broadcast's
/// one encoding, not copied); several are copied once into a buffer of the exact size.
pub fn encode_bytes<'a>(frames: impl IntoIterator<Item = &'a Frame, IntoIter: Clone>) -> Bytes {
    let frames = frames.into_iter();
    let (len, n) = encoded_len(frames.clone());
    if n == 1
        && let Some(Frame::Text(s)) = frames.clone().next()
    {
        return s.as_bytes().clone();
    }
    let mut out = String::with_capacity(len);
    encode_into(frames, &mut out);
    Bytes::from(out.into_bytes())
}

/// Splits a polling payload into packets. Stops at the first element that does not decode.
///
/// Returns the packets decoded before the error together with the error, so that a caller can
/// act on them in order as Node does before closing with "parse error".
pub fn decode(body: Bytes) -> (Vec<Packet>, Option<PacketError>) {
    let body = match Str::from_utf8(body) {
        Ok(s) => s,
        Err(_) => return (Vec::new(), Some(PacketError::Utf8)),
    };
    let mut packets = Vec::new();
    let mut start = 0;
    let text = body.as_str();
    loop {
        let end = text[start..].find(SEPARATOR).map_or(text.len(), |i| start + i);
        let element = Str::from_utf8(body.as_bytes().slice(start..end)).unwrap_or_default();
        match decode_element(&element) {
            Ok(p) => packets.push(p),
            Err(e) => return (packets, Some(e)),
        }
        if end == text.len() {
            return (packets, None);
        }
        start = end + SEPARATOR.len_utf8();
    }
}

fn decode_element(element: &Str) -> Result<Packet, PacketError> {
    if let Some(b64) = element.strip_prefix('b') {
        let bytes = LENIENT.decode(b64).map_err(|_| PacketError::Base64)?;
        return Ok(Packet::Message(Data::Binary(Bytes::from(bytes))));
    }
    Packet::decode_text(element)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Packet {
        Packet::Message(Data::Text(Str::from(s)))
    }

    #[test]
    fn one_text_frame_is_shared_not_copied() {
        let frame = text("a broadcast, encoded once").encode();
        let Frame::Text(s) = &frame else { unreachable!() };
        let body = encode_bytes([&frame]);
        assert_eq!(body.as_ptr(), s.as_bytes().as_ptr());
        assert_eq!(body, "4a broadcast, encoded once".as_bytes());
    }

    #[test]
    fn joins_with_record_separator_and_base64() {
        let frames = [
            text("hello").encode(),
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4]))).encode(),
            Packet::Ping(Str::default()).encode(),
        ];
        assert_eq!(encode(&frames), "4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(encode_bytes(&frames), "4hello\x1ebAQIDBA==\x1e2".as_bytes());
        assert_eq!(encode(&frames).capacity(), "4hello\x1ebAQIDBA==\x1e2".len());
        assert_eq!(encode_bytes(&frames[2..]), "2".as_bytes());
        assert_eq!(encode_bytes(&frames[1..2]), "bAQIDBA==".as_bytes());
        assert_eq!(encode_bytes(&[]), "".as_bytes());
    }

    #[test]
    fn splits_and_decodes() {
        let (packets, err) = decode(Bytes::from_static(b"4hello\x1ebAQIDBA==\x1e3\x1e4"));
        assert_eq!(err, None);
        assert_eq!(
            packets,
            vec![
                text("hello"),
                Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
                Packet::Pong(Str::default()),
                text(""),
            ]
        );
    }

    #[test]
    fn stops_at_first_bad_element() {
        let (packets, err) = decode(Bytes::from_static(b"4a\x1e9x\x1e4b"));
        assert_eq!(packets, vec![text("a")]);
        assert_eq!(err, Some(PacketError::UnknownType('9')));
        assert_eq!(decode(Bytes::new()).1, Some(PacketError::Empty));
        assert_eq!(decode(Bytes::from_static(b"b!!")).1, Some(PacketError::Base64));
        assert_eq!(decode(Bytes::from_static(b"\xff")).1, Some(PacketError::Utf8));
        assert_eq!(decode(Bytes::from_static(b"4a\x1e")).1, Some(PacketError::Empty));
    }
}
