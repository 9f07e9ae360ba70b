//! The Socket.IO v5 decoder: text packets and the reassembly of binary attachments.
//!
//! A value, not a service: feed it each Engine.IO message in order; it returns a packet when one
//! is complete. Errors are typed and reset the reassembly state; nothing panics.

use super::packet::{Packet, PacketType, RESERVED_EVENTS, placeholder_num};
use super::parser::Parser;
use bytes::Bytes;
use serde_json::Value;
use thiserror::Error;

/// Why a Socket.IO packet could not be decoded (Node's parser messages).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The first character is not a packet type digit.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count is missing, not a positive integer, or not followed by `-`.
    #[error("Illegal attachments")]
    IllegalAttachments,
    /// More attachments than allowed.
    #[error("too many attachments")]
    TooManyAttachments,
    /// The payload is not JSON or not valid for the packet type.
    #[error("invalid payload")]
    InvalidPayload,
    /// A placeholder refers to an attachment that does not exist.
    #[error("illegal attachments")]
    BadPlaceholder,
    /// A text message arrived while attachments were expected.
    #[error("got plaintext data when reconstructing a packet")]
    UnexpectedText,
    /// A binary message arrived with no packet waiting for attachments.
    #[error("got binary data when not reconstructing a packet")]
    UnexpectedBinary,
    /// The packet holds more values than its size allows (the msgpack parser's budget).
    #[error("packet too large")]
    TooLarge,
    /// A text message reached the msgpack parser, which only reads binary messages.
    #[error("expected a binary msgpack message")]
    ExpectedBinary,
}

/// Limits the decoder enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Most binary attachments one packet may carry (Node's `maxAttachments`, 10).
    pub max_attachments: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits { max_attachments: 10 }
    }
}

/// Decodes Socket.IO packets from a stream of Engine.IO messages.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: DecoderLimits,
    parser: Parser,
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: DecoderLimits) -> Decoder {
        Decoder::with_parser(limits, Parser::Default)
    }

    /// A decoder for `parser`'s wire format.
    pub fn with_parser(limits: DecoderLimits, parser: Parser) -> Decoder {
        Decoder {
            limits,
            parser,
            pending: None,
        }
    }

    /// Whether a packet is waiting for binary attachments.
    pub fn is_reconstructing(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds a text message.
    pub fn add_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.parser == Parser::Msgpack {
            return Err(DecodeError::ExpectedBinary);
        }
        if self.pending.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (packet, attachments) = decode_text(text, &self.limits)?;
        if attachments == 0 {
            return Ok(Some(packet));
        }
        self.pending = Some((packet, attachments));
        Ok(None)
    }

    /// Feeds a binary message.
    pub fn add_binary(&mut self, bytes: Bytes) -> Result<Option<Packet>, DecodeError> {
        if self.parser == Parser::Msgpack {
            return super::msgpack::decode(&bytes, &self.limits).map(Some);
        }
        let Some((mut packet, expected)) = self.pending.take() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        packet.attachments.push(bytes);
        if packet.attachments.len() < expected {
            self.pending = Some((packet, expected));
            return Ok(None);
        }
        if let Some(data) = &packet.data {
            check_placeholders(data, expected)?;
        }
        Ok(Some(packet))
    }
}

/// Every placeholder must name an attachment in `0..count` (Node's `reconstructPacket`).
fn check_placeholders(v: &Value, count: usize) -> Result<(), DecodeError> {
    if let Some(num) = placeholder_num(v) {
        return match num {
            Some(n) if (n as usize) < count => Ok(()),
            _ => Err(DecodeError::BadPlaceholder),
        };
    }
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| check_placeholders(x, count)),
        Value::Object(o) => o.values().try_for_each(|x| check_placeholders(x, count)),
        _ => Ok(()),
    }
}

/// Decodes the text part of a packet; returns it with the number of attachments to expect.
pub fn decode_text(s: &str, limits: &DecoderLimits) -> Result<(Packet, usize), DecodeError> {
    let b = s.as_bytes();
    // Node: Number("") is 0, so an empty string is a CONNECT to "/".
    let ty = match b.first() {
        None => PacketType::Connect,
        Some(&c) => PacketType::from_digit(c).ok_or(DecodeError::UnknownType)?,
    };
    let mut i = 1.min(b.len());
    let mut attachments = 0;
    if ty.is_binary() {
        let dash = s[i..].find('-').map(|d| i + d).ok_or(DecodeError::IllegalAttachments)?;
        let digits = &s[i..dash];
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(DecodeError::IllegalAttachments);
        }
        let n: usize = digits.parse().map_err(|_| DecodeError::TooManyAttachments)?;
        if n < 1 {
            return Err(DecodeError::IllegalAttachments);
        }
        if n > limits.max_attachments {
            return Err(DecodeError::TooManyAttachments);
        }
        attachments = n;
        i = dash + 1;
    }
    let mut nsp = "/";
    if b.get(i) == Some(&b'/') {
        let end = s[i..].find(',').map_or(s.len(), |c| i + c);
        nsp = &s[i..end];
        i = (end + 1).min(s.len());
    }
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let id = if digits > 0 {
        let id = s[i..i + digits]
            .parse::<u64>()
            .map_err(|_| DecodeError::InvalidPayload)?;
        i += digits;
        Some(id)
    } else {
        None
    };
    let data = if i < s.len() {
        let v: Value = serde_json::from_str(&s[i..]).map_err(|_| DecodeError::InvalidPayload)?;
        if !payload_valid(ty, &v) {
            return Err(DecodeError::InvalidPayload);
        }
        Some(v)
    } else {
        None
    };
    let ty = match ty {
        PacketType::BinaryEvent => PacketType::Event,
        PacketType::BinaryAck => PacketType::Ack,
        t => t,
    };
    Ok((
        Packet {
            ty,
            nsp: nsp.to_owned(),
            id,
            data,
            attachments: Vec::new(),
        },
        attachments,
    ))
}

/// Node's `isPayloadValid`.
pub(crate) fn payload_valid(ty: PacketType, v: &Value) -> bool {
    match ty {
        PacketType::Connect => v.is_object(),
        PacketType::Disconnect => false,
        PacketType::ConnectError => v.is_string() || v.is_object(),
        PacketType::Event | PacketType::BinaryEvent => match v.as_array().and_then(|a| a.first()) {
            Some(Value::Number(_)) => true,
            Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
            _ => false,
        },
        PacketType::Ack | PacketType::BinaryAck => v.is_array(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(s: &str) -> Result<Packet, DecodeError> {
        let mut d = Decoder::default();
        d.add_text(s).map(|p| p.expect("complete packet"))
    }

    #[test]
    fn decodes_like_node() {
        let p = one("0").unwrap();
        assert_eq!((p.ty, p.nsp.as_str(), p.data), (PacketType::Connect, "/", None));
        let p = one(r#"0/admin,{"token":"123"}"#).unwrap();
        assert_eq!((p.nsp.as_str(), p.data), ("/admin", Some(json!({"token":"123"}))));
        let p = one("40").unwrap();
        assert_eq!(
            (p.ty, p.id),
            (PacketType::ConnectError, Some(0)),
            "digits after the type are an ack id"
        );
        let p = one("0/random").unwrap();
        assert_eq!(p.nsp, "/random");
        let p = one(r#"2/admin,456["message",1]"#).unwrap();
        assert_eq!(
            (p.nsp.as_str(), p.id, p.event_name()),
            ("/admin", Some(456), Some("message"))
        );
        assert_eq!(p.args(), &[json!(1)]);
        let p = one("1/admin,").unwrap();
        assert_eq!((p.ty, p.nsp.as_str()), (PacketType::Disconnect, "/admin"));
        let p = one("").unwrap();
        assert_eq!(p.ty, PacketType::Connect);
        let p = one(r#"3/admin,13["bar"]"#).unwrap();
        assert_eq!((p.ty, p.id), (PacketType::Ack, Some(13)));
    }

    #[test]
    fn rejects_what_node_rejects() {
        for (input, err) in [
            ("abc", DecodeError::UnknownType),
            ("999", DecodeError::UnknownType),
            ("5", DecodeError::IllegalAttachments),
            ("51", DecodeError::IllegalAttachments),
            ("50-", DecodeError::IllegalAttachments),
            ("5a-", DecodeError::IllegalAttachments),
            ("51.23-", DecodeError::IllegalAttachments),
            ("511-[\"a\"]", DecodeError::TooManyAttachments),
            (r#"442["some","data""#, DecodeError::InvalidPayload),
            (r#"0/admin,"invalid""#, DecodeError::InvalidPayload),
            ("0[]", DecodeError::InvalidPayload),
            ("1/admin,{}", DecodeError::InvalidPayload),
            (r#"2/admin,"invalid"#, DecodeError::InvalidPayload),
            ("2/admin,{}", DecodeError::InvalidPayload),
            (r#"2[{"toString":"foo"}]"#, DecodeError::InvalidPayload),
            (r#"2[true,"foo"]"#, DecodeError::InvalidPayload),
            (r#"2[null,"bar"]"#, DecodeError::InvalidPayload),
            (r#"2["connect"]"#, DecodeError::InvalidPayload),
            (r#"2["disconnect","123"]"#, DecodeError::InvalidPayload),
            ("2{}", DecodeError::InvalidPayload),
            (r#"2abc["message-with-ack",1]"#, DecodeError::InvalidPayload),
            ("2[]", DecodeError::InvalidPayload),
        ] {
            assert_eq!(one(input).unwrap_err(), err, "{input}");
        }
    }

    #[test]
    fn reassembles_attachments() {
        let mut d = Decoder::default();
        let text = r#"52-789["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        assert_eq!(d.add_text(text), Ok(None));
        assert!(d.is_reconstructing());
        assert_eq!(d.add_binary(Bytes::from_static(&[1, 2, 3])), Ok(None));
        let p = d.add_binary(Bytes::from_static(&[4, 5, 6])).unwrap().unwrap();
        assert_eq!((p.ty, p.id, p.attachments.len()), (PacketType::Event, Some(789), 2));
        assert_eq!(p.encode_text(), text);
        assert_eq!(d.add_binary(Bytes::new()), Err(DecodeError::UnexpectedBinary));
    }

    #[test]
    fn bad_placeholders_and_interleaving_fail() {
        let mut d = Decoder::default();
        d.add_text(r#"51-["m",{"_placeholder":true,"num":3}]"#).unwrap();
        assert_eq!(d.add_binary(Bytes::new()), Err(DecodeError::BadPlaceholder));
        d.add_text(r#"51-["m",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(d.add_text("2[\"x\"]"), Err(DecodeError::UnexpectedText));
        assert!(!d.is_reconstructing());
        assert_eq!(d.add_text("2[\"x\"]").unwrap().unwrap().event_name(), Some("x"));
    }
}
