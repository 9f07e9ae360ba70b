//! The msgpack parser, wire-compatible with `socket.io-msgpack-parser` 3.x: each packet is one
//! binary Engine.IO message holding the object `{type, data, nsp, id}` as notepack.io encodes it.
//! Binaries sit in place inside `data` (msgpack `bin`; browsers' ArrayBuffers arrive as ext type 0),
//! so there are no attachment messages and no BINARY_EVENT/BINARY_ACK types.
//!
//! Inside the server a packet keeps the default parser's shape (JSON `data` with placeholders plus
//! `attachments`), so everything above the parser is the same for both.

use super::decoder::{DecodeError, DecoderLimits, payload_valid};
use super::packet::{Packet, PacketType, placeholder, placeholder_num};
use bytes::Bytes;
use rmp::Marker;
use rmp::encode as enc;
use serde_json::{Map, Number, Value};

/// How deep decoded values may nest (serde_json's own limit for text).
const MAX_DEPTH: usize = 128;

/// Most values one message may decode to: one per two bytes (plus some slack), what the same bytes
/// could hold as JSON text (`0,`). msgpack writes `nil` or `{}` in one byte, and each becomes a
/// 32- to 80-byte value: without this, 1 MB of them would take ~13 MB to decode.
fn value_budget(len: usize) -> usize {
    len / 2 + 64
}

/// Encodes a packet as `{type, data, nsp, id}` (keys without a value left out), attachments put
/// back in place of their placeholders as `bin`, numbers as notepack writes them.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let len = 2 + u32::from(packet.data.is_some()) + u32::from(packet.id.is_some());
    let ty = match packet.ty {
        PacketType::BinaryEvent => PacketType::Event,
        PacketType::BinaryAck => PacketType::Ack,
        t => t,
    };
    // Writes into a Vec cannot fail.
    let _ = enc::write_map_len(&mut out, len);
    let _ = enc::write_str(&mut out, "type");
    let _ = enc::write_uint(&mut out, u64::from(ty.as_u8()));
    if let Some(data) = &packet.data {
        let _ = enc::write_str(&mut out, "data");
        write_value(&mut out, data, &packet.attachments);
    }
    let _ = enc::write_str(&mut out, "nsp");
    let _ = enc::write_str(&mut out, &packet.nsp);
    if let Some(id) = packet.id {
        let _ = enc::write_str(&mut out, "id");
        let _ = enc::write_uint(&mut out, id);
    }
    out
}

/// Writes a JSON value; placeholders naming an attachment become that attachment's bytes.
fn write_value(out: &mut Vec<u8>, v: &Value, attachments: &[Bytes]) {
    if let Some(Some(n)) = placeholder_num(v)
        && let Some(b) = usize::try_from(n).ok().and_then(|n| attachments.get(n))
    {
        let _ = enc::write_bin(out, b);
        return;
    }
    match v {
        Value::Null => {
            let _ = enc::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = enc::write_bool(out, *b);
        }
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            let _ = enc::write_str(out, s);
        }
        Value::Array(a) => {
            let _ = enc::write_array_len(out, a.len() as u32);
            for x in a {
                write_value(out, x, attachments);
            }
        }
        Value::Object(o) => {
            let _ = enc::write_map_len(out, o.len() as u32);
            for (k, x) in o {
                let _ = enc::write_str(out, k);
                write_value(out, x, attachments);
            }
        }
    }
}

/// JavaScript has one number type: notepack writes integral values as the smallest integer and
/// everything else as float 64.
fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        let _ = enc::write_uint(out, u);
    } else if let Some(i) = n.as_i64() {
        let _ = enc::write_sint(out, i);
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        let integral = f.is_finite() && f.fract() == 0.0;
        if integral && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            let _ = enc::write_uint(out, f as u64);
        } else if integral && (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            let _ = enc::write_sint(out, f as i64);
        } else {
            let _ = enc::write_f64(out, f);
        }
    }
}

/// Decodes one binary message into a packet, checked as the JS parser's `checkPacket` does (type
/// 0–4, `nsp` a string, `id` absent or an integer, `data` of the right kind) plus the default
/// parser's event-name rules, at most `limits.max_attachments` binaries, and at most one value per
/// two bytes of input (see [`value_budget`]).
pub fn decode(bytes: &Bytes, limits: &DecoderLimits) -> Result<Packet, DecodeError> {
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        attachments: Vec::new(),
        max_attachments: limits.max_attachments,
        values_left: value_budget(bytes.len()),
    };
    let Some(len) = r.map_len()? else {
        return Err(DecodeError::InvalidPayload);
    };
    let (mut ty, mut nsp, mut id, mut data) = (None, None, None, None);
    for _ in 0..len {
        let key = match r.value(0)? {
            Some(Value::String(k)) => k,
            _ => return Err(DecodeError::InvalidPayload),
        };
        // Only `data` may carry binaries; anything else (the client's `options`) is read and dropped.
        let v = if key == "data" {
            r.value(0)?
        } else {
            let kept = std::mem::take(&mut r.attachments);
            let v = r.value(0)?;
            r.attachments = kept;
            v
        };
        match key.as_str() {
            "type" => ty = v,
            "nsp" => nsp = v,
            "id" => id = v,
            "data" => data = v,
            _ => {}
        }
    }
    if r.pos != bytes.len() {
        return Err(DecodeError::InvalidPayload);
    }
    let ty = match ty.as_ref().and_then(Value::as_u64) {
        Some(0) => PacketType::Connect,
        Some(1) => PacketType::Disconnect,
        Some(2) => PacketType::Event,
        Some(3) => PacketType::Ack,
        Some(4) => PacketType::ConnectError,
        _ => return Err(DecodeError::UnknownType),
    };
    let Some(Value::String(nsp)) = nsp else {
        return Err(DecodeError::InvalidPayload);
    };
    let id = match id {
        None => None,
        Some(v) => Some(v.as_u64().ok_or(DecodeError::InvalidPayload)?),
    };
    let valid = match (&data, ty) {
        (None, PacketType::Connect | PacketType::Disconnect) => true,
        (None, _) | (Some(_), PacketType::Disconnect) => false,
        (Some(v), _) => payload_valid(ty, v),
    };
    if !valid {
        return Err(DecodeError::InvalidPayload);
    }
    Ok(Packet {
        ty,
        nsp,
        id,
        data,
        attachments: r.attachments,
    })
}

/// A cursor over one message. `value` returns `None` for notepack's `undefined` (fixext 1, type 0).
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    attachments: Vec<Bytes>,
    max_attachments: usize,
    values_left: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::InvalidPayload)?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let r = self.take(n)?;
        Ok(self.buf[r].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn map_len(&mut self) -> Result<Option<usize>, DecodeError> {
        let m = Marker::from_u8(*self.buf.get(self.pos).ok_or(DecodeError::InvalidPayload)?);
        self.pos += 1;
        Ok(match m {
            Marker::FixMap(n) => Some(n.into()),
            Marker::Map16 => Some(self.be(2)? as usize),
            Marker::Map32 => Some(self.be(4)? as usize),
            _ => None,
        })
    }

    fn binary(&mut self, len: usize) -> Result<Value, DecodeError> {
        if self.attachments.len() >= self.max_attachments {
            return Err(DecodeError::TooManyAttachments);
        }
        let r = self.take(len)?;
        self.attachments.push(self.buf.slice(r));
        Ok(placeholder(self.attachments.len() - 1))
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        let r = self.take(len)?;
        // notepack decodes with Buffer#toString("utf8"): invalid sequences become U+FFFD.
        Ok(Value::String(String::from_utf8_lossy(&self.buf[r]).into_owned()))
    }

    fn ext(&mut self, len: usize, fixed: bool) -> Result<Option<Value>, DecodeError> {
        let ty = self.be(1)? as u8;
        match (ty, fixed, len) {
            // notepack's `undefined`.
            (0, true, 1) => {
                self.take(1)?;
                Ok(None)
            }
            // An ArrayBuffer or typed array (what browsers send for binary data).
            (0, false, _) => self.binary(len).map(Some),
            // Dates and application extensions have no JSON form.
            _ => {
                self.take(len)?;
                Ok(Some(Value::Null))
            }
        }
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut a = Vec::with_capacity(len.min(self.buf.len() - self.pos));
        for _ in 0..len {
            // JSON.stringify writes undefined array items as null.
            a.push(self.value(depth + 1)?.unwrap_or(Value::Null));
        }
        Ok(Value::Array(a))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut o = Map::new();
        for _ in 0..len {
            let key = match self.value(depth + 1)? {
                Some(Value::String(k)) => k,
                // JavaScript object keys are strings: `{1: x}` arrives as the key "1".
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(DecodeError::InvalidPayload),
            };
            if let Some(v) = self.value(depth + 1)? {
                o.insert(key, v);
            }
        }
        Ok(Value::Object(o))
    }

    fn value(&mut self, depth: usize) -> Result<Option<Value>, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::InvalidPayload);
        }
        self.values_left = self.values_left.checked_sub(1).ok_or(DecodeError::TooLarge)?;
        let m = Marker::from_u8(*self.buf.get(self.pos).ok_or(DecodeError::InvalidPayload)?);
        self.pos += 1;
        let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
        let v = match m {
            Marker::FixPos(n) => Value::from(n),
            Marker::FixNeg(n) => Value::from(n),
            Marker::Null => Value::Null,
            Marker::False => Value::Bool(false),
            Marker::True => Value::Bool(true),
            Marker::U8 => Value::from(self.be(1)?),
            Marker::U16 => Value::from(self.be(2)?),
            Marker::U32 => Value::from(self.be(4)?),
            Marker::U64 => Value::from(self.be(8)?),
            Marker::I8 => Value::from(self.be(1)? as u8 as i8),
            Marker::I16 => Value::from(self.be(2)? as u16 as i16),
            Marker::I32 => Value::from(self.be(4)? as u32 as i32),
            Marker::I64 => Value::from(self.be(8)? as i64),
            Marker::F32 => float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => self.string(n.into())?,
            Marker::Str8 => {
                let n = self.be(1)? as usize;
                self.string(n)?
            }
            Marker::Str16 => {
                let n = self.be(2)? as usize;
                self.string(n)?
            }
            Marker::Str32 => {
                let n = self.be(4)? as usize;
                self.string(n)?
            }
            Marker::Bin8 => {
                let n = self.be(1)? as usize;
                self.binary(n)?
            }
            Marker::Bin16 => {
                let n = self.be(2)? as usize;
                self.binary(n)?
            }
            Marker::Bin32 => {
                let n = self.be(4)? as usize;
                self.binary(n)?
            }
            Marker::FixArray(n) => self.array(n.into(), depth)?,
            Marker::Array16 => {
                let n = self.be(2)? as usize;
                self.array(n, depth)?
            }
            Marker::Array32 => {
                let n = self.be(4)? as usize;
                self.array(n, depth)?
            }
            Marker::FixMap(n) => self.map(n.into(), depth)?,
            Marker::Map16 => {
                let n = self.be(2)? as usize;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = self.be(4)? as usize;
                self.map(n, depth)?
            }
            Marker::FixExt1 => return self.ext(1, true),
            Marker::FixExt2 => return self.ext(2, true),
            Marker::FixExt4 => return self.ext(4, true),
            Marker::FixExt8 => return self.ext(8, true),
            Marker::FixExt16 => return self.ext(16, true),
            Marker::Ext8 => {
                let len = self.be(1)? as usize;
                return self.ext(len, false);
            }
            Marker::Ext16 => {
                let len = self.be(2)? as usize;
                return self.ext(len, false);
            }
            Marker::Ext32 => {
                let len = self.be(4)? as usize;
                return self.ext(len, false);
            }
            Marker::Reserved => return Err(DecodeError::InvalidPayload),
        };
        Ok(Some(v))
    }
}

#[cfg(test)]
#[path = "msgpack_tests.rs"]
mod tests;
