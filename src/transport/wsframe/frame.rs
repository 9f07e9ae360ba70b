//! RFC 6455 framing, server side and sans-IO: [`Decoder`] takes whole messages (and control frames)
//! off the front of a read buffer, checking everything a server must (masked client frames,
//! fragmentation order, control frame rules, RSV bits, message size, UTF-8 of text), and
//! [`encode`] writes unmasked server frames. Compressed messages (RFC 7692) are inflated here,
//! with the output capped at the message limit.

use super::deflate;
use bytes::{Buf, Bytes, BytesMut};

/// A frame's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: the next fragment of a data message.
    Continuation,
    /// 0x1: a text message (UTF-8).
    Text,
    /// 0x2: a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    const fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: data inconsistent with the message type (bad UTF-8, corrupt deflate data).
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What a client did wrong: the close code to answer with and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The close code the server sends.
    pub code: u16,
    /// A short reason, for logs and the close frame.
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// One thing read from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message (valid UTF-8).
    Text(Bytes),
    /// A whole binary message.
    Binary(Bytes),
    /// A ping, with its payload.
    Ping(Bytes),
    /// A pong, with its payload.
    Pong(Bytes),
    /// A close frame: its code (`None` when the frame had no payload) and reason.
    Close(Option<(u16, String)>),
}

/// A data message being reassembled from fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    buf: BytesMut,
}

/// Reassembles client frames into messages.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    deflate: bool,
    partial: Option<Partial>,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: Opcode,
    mask: [u8; 4],
    len: usize,
    header_len: usize,
}

/// Parses the header at the front of `buf`: `Ok(None)` until all of it has arrived. A frame that
/// cannot be accepted is refused from its header, before its payload is waited for.
fn parse_header(buf: &[u8], max: usize) -> Result<Option<Header>, Violation> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x30 != 0 {
        return Err(violation(CLOSE_PROTOCOL, "RSV2/RSV3 set"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(violation(CLOSE_PROTOCOL, "unknown opcode"))?;
    if b1 & 0x80 == 0 {
        return Err(violation(CLOSE_PROTOCOL, "unmasked client frame"));
    }
    let (len, at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(n);
            if n >> 63 != 0 {
                return Err(violation(CLOSE_PROTOCOL, "frame length has its top bit set"));
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (len > 125 || b0 & 0x80 == 0) {
        return Err(violation(CLOSE_PROTOCOL, "control frame fragmented or over 125 bytes"));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= max)
        .ok_or(violation(CLOSE_TOO_BIG, "message too big"))?;
    if buf.len() < at + 4 {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[at..at + 4]);
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode,
        mask,
        len,
        header_len: at + 4,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

impl Decoder {
    /// A decoder for messages of at most `max_message` bytes (after inflating); `deflate` says
    /// whether permessage-deflate was negotiated (RSV1 marks a compressed message).
    pub fn new(max_message: usize, deflate: bool) -> Decoder {
        Decoder {
            max_message,
            deflate,
            partial: None,
        }
    }

    /// Whether a fragmented message is half received.
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes the next message or control frame off the front of `buf`: `Ok(None)` until one is
    /// complete (fragments are consumed as they arrive). After an `Err` the connection must close
    /// with its code.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Violation> {
        loop {
            let in_flight = self.partial.as_ref().map_or(0, |p| p.buf.len());
            let room = self.max_message.saturating_sub(in_flight);
            // A control frame may arrive between fragments even when the message is nearly full.
            let Some(h) = parse_header(buf, room.max(125))? else {
                return Ok(None);
            };
            if !h.opcode.is_control() && h.len > room {
                return Err(violation(CLOSE_TOO_BIG, "message too big"));
            }
            if buf.len() < h.header_len + h.len {
                buf.reserve(h.header_len + h.len - buf.len());
                return Ok(None);
            }
            buf.advance(h.header_len);
            let mut payload = buf.split_to(h.len);
            unmask(&mut payload, h.mask);
            if let Some(done) = self.on_frame(h.fin, h.rsv1, h.opcode, payload)? {
                return Ok(Some(done));
            }
        }
    }

    fn on_frame(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: Opcode,
        payload: BytesMut,
    ) -> Result<Option<Incoming>, Violation> {
        if rsv1 && (!self.deflate || !matches!(opcode, Opcode::Text | Opcode::Binary)) {
            return Err(violation(
                CLOSE_PROTOCOL,
                "RSV1 set without permessage-deflate or on a non-first frame",
            ));
        }
        match opcode {
            Opcode::Ping => Ok(Some(Incoming::Ping(payload.freeze()))),
            Opcode::Pong => Ok(Some(Incoming::Pong(payload.freeze()))),
            Opcode::Close => close_payload(payload.freeze()).map(|c| Some(Incoming::Close(c))),
            Opcode::Text | Opcode::Binary => {
                if self.partial.is_some() {
                    return Err(violation(CLOSE_PROTOCOL, "new message before the last one ended"));
                }
                let p = Partial {
                    text: opcode == Opcode::Text,
                    compressed: rsv1,
                    buf: payload,
                };
                if fin { self.finish(p).map(Some) } else { self.keep(p) }
            }
            Opcode::Continuation => {
                let Some(mut p) = self.partial.take() else {
                    return Err(violation(CLOSE_PROTOCOL, "continuation without a message"));
                };
                p.buf.unsplit(payload);
                if fin { self.finish(p).map(Some) } else { self.keep(p) }
            }
        }
    }

    fn keep(&mut self, p: Partial) -> Result<Option<Incoming>, Violation> {
        self.partial = Some(p);
        Ok(None)
    }

    fn finish(&mut self, p: Partial) -> Result<Incoming, Violation> {
        let data = if p.compressed {
            deflate::inflate(&p.buf, self.max_message).map_err(|e| match e {
                deflate::InflateError::TooBig => violation(CLOSE_TOO_BIG, "message too big once inflated"),
                deflate::InflateError::Corrupt => violation(CLOSE_INVALID_DATA, "invalid deflate data"),
            })?
        } else {
            p.buf.freeze()
        };
        if p.text {
            if std::str::from_utf8(&data).is_err() {
                return Err(violation(CLOSE_INVALID_DATA, "text message is not UTF-8"));
            }
            Ok(Incoming::Text(data))
        } else {
            Ok(Incoming::Binary(data))
        }
    }
}

/// Reads a close frame's code and reason (RFC 6455 section 7.4).
fn close_payload(p: Bytes) -> Result<Option<(u16, String)>, Violation> {
    if p.is_empty() {
        return Ok(None);
    }
    if p.len() == 1 {
        return Err(violation(CLOSE_PROTOCOL, "close frame of one byte"));
    }
    let code = u16::from_be_bytes([p[0], p[1]]);
    // As Node's `ws`: the codes RFC 6455 and the IANA registry define, and 3000-4999.
    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !valid {
        return Err(violation(CLOSE_PROTOCOL, "invalid close code"));
    }
    let reason =
        std::str::from_utf8(&p[2..]).map_err(|_| violation(CLOSE_INVALID_DATA, "close reason is not UTF-8"))?;
    Ok(Some((code, reason.to_owned())))
}

/// Appends one unmasked server frame (FIN set) to `out`.
pub fn encode(out: &mut BytesMut, opcode: Opcode, rsv1: bool, payload: &[u8]) {
    let b0 = 0x80 | if rsv1 { 0x40 } else { 0 } | opcode.bits();
    out.reserve(payload.len() + 10);
    out.extend_from_slice(&[b0]);
    match payload.len() {
        n @ 0..=125 => out.extend_from_slice(&[n as u8]),
        n if n <= usize::from(u16::MAX) => {
            out.extend_from_slice(&[126]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.extend_from_slice(&[127]);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (an empty one when `code` is `None`).
pub fn encode_close(out: &mut BytesMut, code: Option<u16>, reason: &str) {
    let mut p = Vec::with_capacity(2 + reason.len());
    if let Some(code) = code {
        p.extend_from_slice(&code.to_be_bytes());
        // A control frame's payload is at most 125 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        p.extend_from_slice(&reason.as_bytes()[..end]);
    }
    encode(out, Opcode::Close, false, &p);
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
