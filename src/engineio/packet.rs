//! Engine.IO v4 packets (types 0–6) and their single-packet wire forms.
//!
//! A packet travels either as a WebSocket frame ([`Frame`]: text `<type digit><data>`, or a binary
//! frame holding a binary message's raw bytes) or inside a polling payload (see [`super::payload`]).

use super::str::Str;
use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The seven Engine.IO packet types, with their wire digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: handshake, server to client.
    Open,
    /// `1`: the transport is about to close.
    Close,
    /// `2`: heartbeat request (server to client in v4; `2probe` from the client during an upgrade).
    Ping,
    /// `3`: heartbeat answer.
    Pong,
    /// `4`: an application message.
    Message,
    /// `5`: completes a transport upgrade.
    Upgrade,
    /// `6`: does nothing; releases a pending polling request.
    Noop,
}

impl PacketType {
    /// The wire digit.
    pub const fn as_char(self) -> char {
        match self {
            PacketType::Open => '0',
            PacketType::Close => '1',
            PacketType::Ping => '2',
            PacketType::Pong => '3',
            PacketType::Message => '4',
            PacketType::Upgrade => '5',
            PacketType::Noop => '6',
        }
    }

    /// The packet type for a wire digit.
    pub const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => PacketType::Open,
            b'1' => PacketType::Close,
            b'2' => PacketType::Ping,
            b'3' => PacketType::Pong,
            b'4' => PacketType::Message,
            b'5' => PacketType::Upgrade,
            b'6' => PacketType::Noop,
            _ => return None,
        })
    }
}

/// The data of a message packet: text, or binary bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// A text message.
    Text(Str),
    /// A binary message.
    Binary(Bytes),
}

/// A decoded Engine.IO packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// `0` + handshake JSON.
    Open(Str),
    /// `1`.
    Close,
    /// `2` + optional data (`probe` during an upgrade).
    Ping(Str),
    /// `3` + optional data (`probe` during an upgrade).
    Pong(Str),
    /// `4` + message data.
    Message(Data),
    /// `5`.
    Upgrade,
    /// `6`.
    Noop,
}

/// Why bytes could not be decoded as an Engine.IO packet.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Nothing to decode.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type digit (or `b` in a payload).
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b`-prefixed payload element is not valid base64.
    #[error("invalid base64 in binary packet")]
    Base64,
    /// A payload is not valid UTF-8.
    #[error("payload is not valid UTF-8")]
    Utf8,
}

/// One encoded packet as it goes into a WebSocket frame (and, joined, into a polling payload).
///
/// Encoding a packet once into a `Frame` and cloning the frame for every receiver is how
/// broadcasts avoid re-encoding: clones share the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame: the type digit followed by the data.
    Text(Str),
    /// A binary frame: a binary message's raw bytes.
    Binary(Bytes),
}

impl Frame {
    /// Bytes this frame occupies on the wire (before any framing).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame is empty (never true for an encoded packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A text message frame (`4<text>`), encoded once.
    pub fn message_text(text: &str) -> Frame {
        let mut buf = String::with_capacity(text.len() + 1);
        buf.push('4');
        buf.push_str(text);
        Frame::Text(Str::from(buf))
    }

    /// Decodes a frame received on a WebSocket.
    pub fn decode(self) -> Result<Packet, PacketError> {
        match self {
            Frame::Text(s) => Packet::decode_text(&s),
            Frame::Binary(b) => Ok(Packet::Message(Data::Binary(b))),
        }
    }
}

impl Packet {
    /// Encodes the packet for a WebSocket frame.
    pub fn encode(&self) -> Frame {
        let text = |ty: PacketType, data: &str| {
            let mut buf = BytesMut::with_capacity(1 + data.len());
            buf.put_u8(ty.as_char() as u8);
            buf.put_slice(data.as_bytes());
            // Built from a digit and a &str: valid UTF-8.
            Frame::Text(Str::from_utf8(buf.freeze()).unwrap_or_default())
        };
        match self {
            Packet::Open(s) => text(PacketType::Open, s),
            Packet::Close => Frame::Text(Str::from_static("1")),
            Packet::Ping(s) if s.is_empty() => Frame::Text(Str::from_static("2")),
            Packet::Ping(s) => text(PacketType::Ping, s),
            Packet::Pong(s) if s.is_empty() => Frame::Text(Str::from_static("3")),
            Packet::Pong(s) => text(PacketType::Pong, s),
            Packet::Message(Data::Text(s)) => text(PacketType::Message, s),
            Packet::Message(Data::Binary(b)) => Frame::Binary(b.clone()),
            Packet::Upgrade => Frame::Text(Str::from_static("5")),
            Packet::Noop => Frame::Text(Str::from_static("6")),
        }
    }

    /// Decodes a text-encoded packet: a type digit followed by its data.
    pub fn decode_text(s: &Str) -> Result<Packet, PacketError> {
        let first = *s.as_bytes().first().ok_or(PacketError::Empty)?;
        let ty = PacketType::from_byte(first).ok_or(PacketError::UnknownType(char::from(first)))?;
        let data = || s.slice_from(1);
        Ok(match ty {
            PacketType::Open => Packet::Open(data()),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(data()),
            PacketType::Pong => Packet::Pong(data()),
            PacketType::Message => Packet::Message(Data::Text(data())),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_packets_round_trip() {
        for (wire, packet) in [
            ("1", Packet::Close),
            ("2", Packet::Ping(Str::default())),
            ("2probe", Packet::Ping(Str::from("probe"))),
            ("3probe", Packet::Pong(Str::from("probe"))),
            ("4hello é", Packet::Message(Data::Text(Str::from("hello é")))),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
        ] {
            assert_eq!(Packet::decode_text(&Str::from(wire)).unwrap(), packet);
            assert_eq!(packet.encode(), Frame::Text(Str::from(wire)));
        }
    }

    #[test]
    fn bad_text_is_an_error() {
        assert_eq!(Packet::decode_text(&Str::from("")), Err(PacketError::Empty));
        assert_eq!(Packet::decode_text(&Str::from("7")), Err(PacketError::UnknownType('7')));
        assert_eq!(Packet::decode_text(&Str::from("é")), Err(PacketError::UnknownType('Ã')));
    }

    #[test]
    fn binary_frames_are_messages() {
        let frame = Frame::Binary(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(
            frame.clone().decode().unwrap(),
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3])))
        );
        assert_eq!(
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3]))).encode(),
            frame
        );
    }
}
