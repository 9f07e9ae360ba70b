//! Encoding compatible with Node's adapters: JSON values ↔ msgpack (binary attachments become
//! msgpack `bin` values in place of their placeholders, as notepack encodes Buffers), broadcast
//! options, the classic adapter's broadcast envelope `[uid, packet, opts]`, and the sniffing of
//! a message that may be either JSON or msgpack ([`decode_any`]).

use crate::adapter::{BroadcastFlags, BroadcastOptions, Room};
use crate::socketio::packet::placeholder_num;
use crate::socketio::{Packet, PacketType, placeholder};
use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Value};
use std::time::Duration;
use thiserror::Error;

/// A message from another server that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not msgpack / not JSON.
    #[error("undecodable message: {0}")]
    Undecodable(String),
    /// Decoded, but not the expected shape.
    #[error("unexpected message shape: {0}")]
    Shape(&'static str),
}

/// JSON (with placeholders referring to `attachments`) → msgpack with the binaries in place.
pub fn json_to_mp(v: &Value, attachments: &[Bytes]) -> Mp {
    if let Some(Some(n)) = placeholder_num(v)
        && let Some(b) = attachments.get(n as usize)
    {
        return Mp::Binary(b.to_vec());
    }
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(|x| json_to_mp(x, attachments)).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, x)| (Mp::from(k.as_str()), json_to_mp(x, attachments)))
                .collect(),
        ),
    }
}

/// Msgpack → JSON, each `bin` replaced by a placeholder and appended to `attachments`
/// (depth-first, as Node's `deconstructPacket` numbers them).
pub fn mp_to_json(v: Mp, attachments: &mut Vec<Bytes>) -> Value {
    match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        Mp::F32(f) => serde_json::Number::from_f64(f as f64).map_or(Value::Null, Value::Number),
        Mp::F64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(s.into_str().unwrap_or_default()),
        Mp::Binary(b) => {
            attachments.push(Bytes::from(b));
            placeholder(attachments.len() - 1)
        }
        Mp::Array(a) => Value::Array(a.into_iter().map(|x| mp_to_json(x, attachments)).collect()),
        Mp::Map(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                let key = match k {
                    Mp::String(s) => s.into_str().unwrap_or_default(),
                    other => other.to_string(),
                };
                o.insert(key, mp_to_json(x, attachments));
            }
            Value::Object(o)
        }
        Mp::Ext(_, _) => Value::Null,
    }
}

/// Looks up a string key in a msgpack map.
pub fn mp_get<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn rooms_to_mp(rooms: &[Room]) -> Mp {
    Mp::Array(rooms.iter().map(|r| Mp::from(&**r)).collect())
}

fn flags_to_json(flags: &BroadcastFlags) -> Map<String, Value> {
    let mut f = Map::new();
    if flags.volatile {
        f.insert("volatile".into(), Value::Bool(true));
    }
    if flags.local {
        f.insert("local".into(), Value::Bool(true));
    }
    if let Some(t) = flags.timeout {
        f.insert("timeout".into(), Value::from(t.as_millis() as u64));
    }
    f
}

/// Broadcast options as Node serializes them: `{rooms, except, flags}`.
pub fn opts_to_mp(opts: &BroadcastOptions) -> Mp {
    let flags = Value::Object(flags_to_json(&opts.flags));
    Mp::Map(vec![
        (Mp::from("rooms"), rooms_to_mp(&opts.rooms)),
        (Mp::from("except"), rooms_to_mp(&opts.except)),
        (Mp::from("flags"), json_to_mp(&flags, &[])),
    ])
}

/// The same as JSON (for JSON-encoded requests).
pub fn opts_to_json(opts: &BroadcastOptions) -> Value {
    let rooms: Vec<Value> = opts.rooms.iter().map(|r| Value::from(&**r)).collect();
    let except: Vec<Value> = opts.except.iter().map(|r| Value::from(&**r)).collect();
    serde_json::json!({"rooms": rooms, "except": except, "flags": flags_to_json(&opts.flags)})
}

fn room_list(v: Option<&Value>) -> Vec<Room> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    r.as_str()
                        .map(Room::from)
                        .or_else(|| r.as_number().map(|n| Room::from(n.to_string())))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses `{rooms, except, flags}` from JSON (msgpack options are converted to JSON first).
pub fn opts_from_json(v: &Value) -> BroadcastOptions {
    let flags = v.get("flags");
    let flag = |k: &str| flags.and_then(|f| f.get(k)).and_then(Value::as_bool).unwrap_or(false);
    BroadcastOptions {
        rooms: room_list(v.get("rooms")),
        except: room_list(v.get("except")),
        flags: BroadcastFlags {
            volatile: flag("volatile"),
            local: flag("local"),
            timeout: flags
                .and_then(|f| f.get("timeout"))
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
        },
    }
}

/// A packet as Node's adapters carry it: `{type, data, nsp[, id]}` with binaries in place.
pub fn packet_to_mp(packet: &Packet) -> Mp {
    let mut m = vec![(Mp::from("type"), Mp::from(packet.ty.as_u8()))];
    if let Some(data) = &packet.data {
        m.push((Mp::from("data"), json_to_mp(data, &packet.attachments)));
    }
    m.push((Mp::from("nsp"), Mp::from(packet.nsp.as_str())));
    if let Some(id) = packet.id {
        m.push((Mp::from("id"), Mp::from(id)));
    }
    Mp::Map(m)
}

/// Parses a `{type, data, nsp[, id]}` packet.
pub fn packet_from_mp(v: Mp) -> Result<Packet, CodecError> {
    let mut attachments = Vec::new();
    let json = mp_to_json(v, &mut attachments);
    let ty = json
        .get("type")
        .and_then(Value::as_u64)
        .and_then(|n| PacketType::from_u8(u8::try_from(n).ok()?))
        .ok_or(CodecError::Shape("packet.type"))?
        .plain();
    let nsp = json.get("nsp").and_then(Value::as_str).unwrap_or("/").to_owned();
    let id = json.get("id").and_then(Value::as_u64);
    let data = json.get("data").cloned();
    Ok(Packet {
        ty,
        nsp,
        id,
        data,
        attachments,
    })
}

/// The classic adapter's broadcast message: msgpack `[uid, packet, opts]`.
pub fn encode_broadcast(uid: &str, packet: &Packet, opts: &BroadcastOptions) -> Vec<u8> {
    encode_mp(&Mp::Array(vec![Mp::from(uid), packet_to_mp(packet), opts_to_mp(opts)]))
}

/// Decodes a message that is JSON when it starts with `{` and msgpack otherwise (how Node's
/// adapters tell them apart), the msgpack `bin` values becoming placeholders into the returned
/// attachments.
pub fn decode_any(payload: &[u8]) -> Result<(Value, Vec<Bytes>), CodecError> {
    if payload.first() == Some(&b'{') {
        let v = serde_json::from_slice(payload).map_err(|e| CodecError::Undecodable(e.to_string()))?;
        return Ok((v, Vec::new()));
    }
    let mut attachments = Vec::new();
    let v = mp_to_json(decode_mp(payload)?, &mut attachments);
    Ok((v, attachments))
}

/// Encodes a msgpack value.
pub fn encode_mp(v: &Mp) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// Decodes any msgpack value.
pub fn decode_mp(bytes: &[u8]) -> Result<Mp, CodecError> {
    let mut cursor = bytes;
    rmpv::decode::read_value(&mut cursor).map_err(|e| CodecError::Undecodable(e.to_string()))
}

/// The uid of a broadcast `[uid, packet, opts]`, read without decoding the rest (None when the
/// payload does not start that way).
pub fn peek_broadcast_uid(bytes: &[u8]) -> Option<&[u8]> {
    let rest = match *bytes.first()? {
        0x90..=0x9f => bytes.get(1..)?,
        0xdc => bytes.get(3..)?,
        0xdd => bytes.get(5..)?,
        _ => return None,
    };
    let (len, rest) = match *rest.first()? {
        b @ 0xa0..=0xbf => (usize::from(b & 0x1f), rest.get(1..)?),
        0xd9 => (usize::from(*rest.get(1)?), rest.get(2..)?),
        0xda => (
            usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
            rest.get(3..)?,
        ),
        _ => return None,
    };
    rest.get(..len)
}

/// Decodes `[uid, packet, opts]`.
pub fn decode_broadcast(bytes: &[u8]) -> Result<(String, Packet, BroadcastOptions), CodecError> {
    let Mp::Array(mut parts) = decode_mp(bytes)? else {
        return Err(CodecError::Shape("broadcast is not an array"));
    };
    if parts.len() < 3 {
        return Err(CodecError::Shape("broadcast needs [uid, packet, opts]"));
    }
    let opts = parts.pop().unwrap_or(Mp::Nil);
    let packet = parts.pop().unwrap_or(Mp::Nil);
    let uid = parts
        .pop()
        .and_then(|u| u.as_str().map(str::to_owned))
        .ok_or(CodecError::Shape("uid"))?;
    let opts = opts_from_json(&mp_to_json(opts, &mut Vec::new()));
    Ok((uid, packet_from_mp(packet)?, opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn broadcast_round_trip_with_binary() {
        let data = json!(["file", {"name": "a", "blob": placeholder(0)}, placeholder(1)]);
        let packet = Packet {
            ty: PacketType::Event,
            nsp: "/chat".into(),
            id: None,
            data: Some(data),
            attachments: vec![Bytes::from_static(b"\x01\x02"), Bytes::from_static(b"z")],
        };
        let opts = BroadcastOptions {
            rooms: vec![Room::from("r1")],
            except: vec![Room::from("x")],
            flags: BroadcastFlags {
                volatile: true,
                ..Default::default()
            },
        };
        let bytes = encode_broadcast("abc123", &packet, &opts);
        let (uid, p, o) = decode_broadcast(&bytes).unwrap();
        assert_eq!(peek_broadcast_uid(&bytes), Some(&b"abc123"[..]));
        assert_eq!(peek_broadcast_uid(&bytes[..3]), None);
        assert_eq!(peek_broadcast_uid(b"{\"uid\":1}"), None);
        // Any prefix of a message, and any short input, answers without panicking.
        for n in 0..bytes.len() {
            let _ = peek_broadcast_uid(&bytes[..n]);
        }
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = peek_broadcast_uid(&[a, b]);
                let _ = peek_broadcast_uid(&[0x93, a, b]);
                let _ = peek_broadcast_uid(&[0x93, 0xda, a, b]);
            }
        }
        assert_eq!(uid, "abc123");
        assert_eq!(p, packet);
        assert_eq!(o, opts);
    }

    #[test]
    fn node_shape_is_a_three_element_array_of_maps() {
        let packet = Packet::event("/", "message", [json!({"a": 1})]);
        let v = decode_mp(&encode_broadcast("u", &packet, &BroadcastOptions::default())).unwrap();
        let parts = v.as_array().unwrap();
        assert_eq!(parts[0].as_str(), Some("u"));
        assert_eq!(mp_get(&parts[1], "type").and_then(Mp::as_u64), Some(2));
        assert_eq!(mp_get(&parts[1], "nsp").and_then(Mp::as_str), Some("/"));
        assert_eq!(mp_get(&parts[2], "rooms").and_then(Mp::as_array).map(Vec::len), Some(0));
        assert!(decode_broadcast(b"\xc1").is_err());
        assert!(decode_broadcast(&[0x91, 0xa1, b'u']).is_err());
    }

    #[test]
    fn sniffs_json_and_msgpack() {
        let (v, a) = decode_any(br#"{"type":3}"#).unwrap();
        assert_eq!((v, a.len()), (json!({"type": 3}), 0));
        let mp = encode_mp(&Mp::Map(vec![(Mp::from("b"), Mp::Binary(vec![7]))]));
        assert_eq!(mp, [0x81, 0xa1, b'b', 0xc4, 0x01, 7]);
        let (v, a) = decode_any(&mp).unwrap();
        assert_eq!(v, json!({"b": placeholder(0)}));
        assert_eq!(&a[0][..], &[7]);
        assert!(matches!(decode_any(b"{oops"), Err(CodecError::Undecodable(_))));
        assert!(matches!(decode_any(b""), Err(CodecError::Undecodable(_))));
    }
}
