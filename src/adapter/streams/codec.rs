//! The wire format of `@socket.io/redis-streams-adapter` 0.3.x, sans-IO: stream entries (the
//! field-value pairs of one `XADD`/`XRANGE` entry: `uid`, `nsp`, `type`, `data`) ↔ a typed
//! [`StreamMessage`], the persisted session value (`SET sio:session:<pid>`) ↔ [`Session`], stream
//! offsets, and the replay filter of `restoreSession`. `docs/STREAMS.md` describes the protocol;
//! the byte-exact tests use fixtures captured from the real Node adapter
//! (`tests/js/fixtures/capture-streams.mjs`).
//!
//! Every field value is text: `type` is the decimal ClusterAdapter `MessageType`; `data` is JSON,
//! or, when it carries binary, base64 of the msgpack encoding of the same object. Requests that
//! wait for answers (broadcasts with acks, `fetchSockets`, `serverSideEmit`) and all responses do
//! not go through the stream but through pub/sub, as whole msgpack messages (the sharded adapter's
//! format), see [`is_ephemeral`].

use crate::adapter::BroadcastOptions;
use crate::adapter::redis::codec::{
    CodecError, decode_mp, json_to_mp, mp_get, mp_to_json, opts_from_json, opts_to_json, opts_to_mp,
};
use crate::server::rooms::Room;
use crate::socketio::packet::{has_binary, placeholder_num};
use crate::socketio::{Packet, PacketType, placeholder};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Value};

/// Default approximate stream length kept by `XADD … MAXLEN ~` (`maxLen`).
pub const DEFAULT_MAX_LEN: u64 = 10_000;
/// Default `XREAD COUNT` (`readCount`).
pub const DEFAULT_READ_COUNT: u64 = 100;
/// Default `XREAD BLOCK` in milliseconds (`blockTimeInMs`).
pub const DEFAULT_BLOCK_TIME_MS: u64 = 5_000;
/// Default prefix of the session keys (`sessionKeyPrefix`).
pub const DEFAULT_SESSION_KEY_PREFIX: &str = "sio:session:";
/// How many `XRANGE` calls Node's `restoreSession` makes at most.
pub const RESTORE_MAX_XRANGE_CALLS: usize = 100;

/// socket.io-adapter's `MessageType` numbers that appear in the stream (from the one mapping,
/// [`MessageType`], as constants for `match`).
pub mod message_type {
    use crate::adapter::cluster::MessageType;
    /// A broadcast (with a `requestId`: expecting acks, which goes over pub/sub instead).
    pub const BROADCAST: u64 = MessageType::Broadcast.code();
    /// Make the matching sockets join rooms.
    pub const SOCKETS_JOIN: u64 = MessageType::SocketsJoin.code();
    /// Make the matching sockets leave rooms.
    pub const SOCKETS_LEAVE: u64 = MessageType::SocketsLeave.code();
    /// Disconnect the matching sockets.
    pub const DISCONNECT_SOCKETS: u64 = MessageType::DisconnectSockets.code();
    /// `fetchSockets` request (pub/sub).
    pub const FETCH_SOCKETS: u64 = MessageType::FetchSockets.code();
    /// `serverSideEmit` (pub/sub).
    pub const SERVER_SIDE_EMIT: u64 = MessageType::ServerSideEmit.code();
}
use message_type as mt;

/// The typed content of a stream entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// `type 3` without `requestId`: deliver `packet` to the sockets `opts` selects.
    Broadcast {
        /// The event (its `nsp` is the entry's; Node leaves it out of `data`).
        packet: Packet,
        /// Rooms, excepts and flags.
        opts: BroadcastOptions,
    },
    /// `type 4`: the sockets `opts` selects join `rooms`.
    SocketsJoin {
        /// Which sockets.
        opts: BroadcastOptions,
        /// Rooms to join.
        rooms: Vec<Room>,
    },
    /// `type 5`: the sockets `opts` selects leave `rooms`.
    SocketsLeave {
        /// Which sockets.
        opts: BroadcastOptions,
        /// Rooms to leave.
        rooms: Vec<Room>,
    },
    /// `type 6`: disconnect the sockets `opts` selects (`close`: also close their connection).
    DisconnectSockets {
        /// Which sockets.
        opts: BroadcastOptions,
        /// Close the underlying connection too.
        close: bool,
    },
    /// Any other type, kept as JSON (binaries as placeholders into `attachments`).
    Other {
        /// The `MessageType` number.
        ty: u64,
        /// `data`, if the entry had one.
        data: Option<Value>,
        /// Binaries referenced from `data`.
        attachments: Vec<Bytes>,
    },
}

impl Body {
    /// The ClusterAdapter `MessageType` number.
    pub fn message_type(&self) -> u64 {
        match self {
            Body::Broadcast { .. } => mt::BROADCAST,
            Body::SocketsJoin { .. } => mt::SOCKETS_JOIN,
            Body::SocketsLeave { .. } => mt::SOCKETS_LEAVE,
            Body::DisconnectSockets { .. } => mt::DISCONNECT_SOCKETS,
            Body::Other { ty, .. } => *ty,
        }
    }
}

/// One stream entry: who wrote it, for which namespace, and what.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamMessage {
    /// The writing adapter's uid (16 hex characters in Node).
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// The content.
    pub body: Body,
}

/// Whether Node sends this kind of message over pub/sub instead of the stream: broadcasts with
/// acks (`requestId` set), `serverSideEmit` and `fetchSockets`.
pub fn is_ephemeral(ty: u64, has_request_id: bool) -> bool {
    (ty == mt::BROADCAST && has_request_id) || ty == mt::SERVER_SIDE_EMIT || ty == mt::FETCH_SOCKETS
}

/// The packet type number Node puts in adapter messages: 2 or 3, binary or not (its encoder
/// picks 5/6 itself when it finds binaries).
fn node_type(ty: PacketType) -> u8 {
    match ty {
        PacketType::BinaryEvent => PacketType::Event.as_u8(),
        PacketType::BinaryAck => PacketType::Ack.as_u8(),
        other => other.as_u8(),
    }
}

fn rooms_json(rooms: &[Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::from(&**r)).collect())
}

fn rooms_mp(rooms: &[Room]) -> Mp {
    Mp::Array(rooms.iter().map(|r| Mp::from(&**r)).collect())
}

/// The `data` object of `body` as JSON (with placeholders) and its attachments.
fn data_json(body: &Body) -> (Option<Value>, &[Bytes]) {
    let mut m = Map::new();
    match body {
        Body::Broadcast { packet, opts } => {
            let mut p = Map::new();
            p.insert("type".into(), Value::from(node_type(packet.ty)));
            if let Some(d) = &packet.data {
                p.insert("data".into(), d.clone());
            }
            if let Some(id) = packet.id {
                p.insert("id".into(), Value::from(id));
            }
            m.insert("packet".into(), Value::Object(p));
            m.insert("opts".into(), opts_to_json(opts));
            (Some(Value::Object(m)), &packet.attachments)
        }
        Body::SocketsJoin { opts, rooms } | Body::SocketsLeave { opts, rooms } => {
            m.insert("opts".into(), opts_to_json(opts));
            m.insert("rooms".into(), rooms_json(rooms));
            (Some(Value::Object(m)), &[])
        }
        Body::DisconnectSockets { opts, close } => {
            m.insert("opts".into(), opts_to_json(opts));
            m.insert("close".into(), Value::Bool(*close));
            (Some(Value::Object(m)), &[])
        }
        Body::Other { data, attachments, .. } => (data.clone(), attachments),
    }
}

/// The msgpack form of a broadcast's `data` (Node's key order, binaries in place).
fn broadcast_mp(packet: &Packet, opts: &BroadcastOptions) -> Mp {
    let mut p = vec![(Mp::from("type"), Mp::from(node_type(packet.ty)))];
    if let Some(d) = &packet.data {
        p.push((Mp::from("data"), json_to_mp(d, &packet.attachments)));
    }
    if let Some(id) = packet.id {
        p.push((Mp::from("id"), Mp::from(id)));
    }
    Mp::Map(vec![
        (Mp::from("packet"), Mp::Map(p)),
        (Mp::from("opts"), opts_to_mp(opts)),
    ])
}

/// The `data` field value: JSON, or base64 msgpack when the content has binaries (or is not an
/// object, which Node never sends).
fn encode_data(body: &Body) -> Option<String> {
    let (json, attachments) = data_json(body);
    let json = json?;
    // JSON only for objects: a reader takes anything not starting with `{` for base64.
    if json.is_object() && (attachments.is_empty() || !has_binary(&json)) {
        return Some(json.to_string());
    }
    let mp = match body {
        Body::Broadcast { packet, opts } => broadcast_mp(packet, opts),
        _ => json_to_mp(&json, attachments),
    };
    let mut out = Vec::with_capacity(64);
    let _ = rmpv::encode::write_value(&mut out, &mp);
    Some(BASE64.encode(out))
}

/// The `XADD` field-value pairs of `msg`, in Node's order: `uid`, `nsp`, `type`, then `data`
/// when there is one.
pub fn encode_entry(msg: &StreamMessage) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("uid", msg.uid.clone()),
        ("nsp", msg.nsp.clone()),
        ("type", msg.body.message_type().to_string()),
    ];
    if let Some(data) = encode_data(&msg.body) {
        fields.push(("data", data));
    }
    fields
}

fn field<'a, K: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &'a [(K, V)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k.as_ref() == name.as_bytes())
        .map(|(_, v)| v.as_ref())
}

fn text<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, CodecError> {
    std::str::from_utf8(bytes).map_err(|_| CodecError::Shape(what))
}

/// The `data` field value → JSON (with placeholders) and its binaries, plus the msgpack form
/// when it was msgpack. Like Node: JSON when it starts with `{`, base64 msgpack otherwise.
fn decode_data(raw: &[u8]) -> Result<(Value, Vec<Bytes>, Option<Mp>), CodecError> {
    if raw.first() == Some(&b'{') {
        let v = serde_json::from_slice(raw).map_err(|e| CodecError::Undecodable(e.to_string()))?;
        return Ok((v, Vec::new(), None));
    }
    let bin = BASE64.decode(raw).map_err(|e| CodecError::Undecodable(e.to_string()))?;
    let mp = decode_mp(&bin)?;
    let mut attachments = Vec::new();
    let v = mp_to_json(mp.clone(), &mut attachments);
    Ok((v, attachments, Some(mp)))
}

fn room_list(v: Option<&Value>, what: &'static str) -> Result<Vec<Room>, CodecError> {
    let a = v.and_then(Value::as_array).ok_or(CodecError::Shape(what))?;
    a.iter()
        .map(|r| r.as_str().map(Room::from).ok_or(CodecError::Shape(what)))
        .collect()
}

fn opts_of(data: &Value) -> Result<BroadcastOptions, CodecError> {
    let opts = data
        .get("opts")
        .filter(|o| o.is_object())
        .ok_or(CodecError::Shape("data.opts"))?;
    Ok(opts_from_json(opts))
}

/// Keeps only the attachments `v` refers to, renumbered in depth-first order (a msgpack map with
/// a repeated key loses the earlier value, and with it the reference to its binary).
fn compact(v: &mut Value, old: &[Bytes], new: &mut Vec<Bytes>) {
    if let Some(Some(n)) = placeholder_num(v) {
        if let Some(b) = old.get(n as usize) {
            new.push(b.clone());
            *v = placeholder(new.len() - 1);
        }
        return;
    }
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| compact(x, old, new)),
        Value::Object(o) => o.values_mut().for_each(|x| compact(x, old, new)),
        _ => {}
    }
}

/// `(v, attachments)` with only the referenced attachments.
fn compacted(mut v: Value, old: Vec<Bytes>) -> (Value, Vec<Bytes>) {
    let mut new = Vec::new();
    if !old.is_empty() {
        compact(&mut v, &old, &mut new);
    }
    (v, new)
}

/// The broadcast packet of `data`; with the msgpack form, its binaries are those of
/// `packet.data` alone (numbered from 0), wherever else the message has some.
fn packet_of(data: &Value, mp: Option<&Mp>, nsp: &str) -> Result<Packet, CodecError> {
    let p = data.get("packet").ok_or(CodecError::Shape("data.packet"))?;
    let ty = match p.get("type").and_then(Value::as_u64) {
        Some(2 | 5) => PacketType::Event,
        Some(3 | 6) => PacketType::Ack,
        _ => return Err(CodecError::Shape("data.packet.type")),
    };
    let mut all = Vec::new();
    let payload = match mp.and_then(|m| mp_get(m, "packet")) {
        Some(packet) => mp_get(packet, "data").map(|d| mp_to_json(d.clone(), &mut all)),
        None => p.get("data").cloned(),
    };
    let (payload, attachments) = match payload {
        Some(v) => {
            let (v, a) = compacted(v, all);
            (Some(v), a)
        }
        None => (None, Vec::new()),
    };
    Ok(Packet {
        ty,
        nsp: nsp.to_owned(),
        id: p.get("id").and_then(Value::as_u64),
        data: payload,
        attachments,
    })
}

/// Parses one entry's field-value pairs (any order; unknown fields ignored). Entries without
/// `nsp` are not adapter messages (Node skips them); they give [`CodecError::Shape`].
pub fn decode_entry<K: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(K, V)]) -> Result<StreamMessage, CodecError> {
    let nsp = text(field(fields, "nsp").ok_or(CodecError::Shape("nsp"))?, "nsp")?.to_owned();
    let uid = text(field(fields, "uid").ok_or(CodecError::Shape("uid"))?, "uid")?.to_owned();
    let ty: u64 = text(field(fields, "type").ok_or(CodecError::Shape("type"))?, "type")?
        .parse()
        .map_err(|_| CodecError::Shape("type"))?;
    let data = match field(fields, "data") {
        Some(raw) if !raw.is_empty() => Some(decode_data(raw)?),
        _ => None,
    };
    let body = match (ty, data) {
        (mt::BROADCAST, Some((d, _, mp))) if d.get("requestId").is_none() => Body::Broadcast {
            opts: opts_of(&d)?,
            packet: packet_of(&d, mp.as_ref(), &nsp)?,
        },
        (mt::SOCKETS_JOIN, Some((d, _, _))) => Body::SocketsJoin {
            opts: opts_of(&d)?,
            rooms: room_list(d.get("rooms"), "data.rooms")?,
        },
        (mt::SOCKETS_LEAVE, Some((d, _, _))) => Body::SocketsLeave {
            opts: opts_of(&d)?,
            rooms: room_list(d.get("rooms"), "data.rooms")?,
        },
        (mt::DISCONNECT_SOCKETS, Some((d, _, _))) => Body::DisconnectSockets {
            opts: opts_of(&d)?,
            close: d.get("close").and_then(Value::as_bool).unwrap_or(false),
        },
        (mt::BROADCAST | mt::SOCKETS_JOIN | mt::SOCKETS_LEAVE | mt::DISCONNECT_SOCKETS, None) => {
            return Err(CodecError::Shape("data"));
        }
        (ty, data) => {
            let (data, attachments) = match data {
                Some((d, a, _)) => {
                    let (d, a) = compacted(d, a);
                    (Some(d), a)
                }
                None => (None, Vec::new()),
            };
            Body::Other { ty, data, attachments }
        }
    };
    Ok(StreamMessage { uid, nsp, body })
}

/// A persisted session: what Node's `persistSession` writes (`{sid, pid, rooms, data}`).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The socket id to restore.
    pub sid: String,
    /// The private id the client presents (a capability).
    pub pid: String,
    /// Its rooms (its own id included).
    pub rooms: Vec<Room>,
    /// `socket.data` (JSON; binaries are not supported there).
    pub data: Value,
}

/// The session key: `<prefix><pid>`.
pub fn session_key(prefix: &str, pid: &str) -> String {
    format!("{prefix}{pid}")
}

/// The `SET` value of a session: base64 of msgpack `{sid, pid, rooms, data}`.
pub fn encode_session(s: &Session) -> String {
    let mp = Mp::Map(vec![
        (Mp::from("sid"), Mp::from(s.sid.as_str())),
        (Mp::from("pid"), Mp::from(s.pid.as_str())),
        (Mp::from("rooms"), rooms_mp(&s.rooms)),
        (Mp::from("data"), json_to_mp(&s.data, &[])),
    ]);
    let mut out = Vec::with_capacity(96);
    let _ = rmpv::encode::write_value(&mut out, &mp);
    BASE64.encode(out)
}

/// The session value our servers write through: Node's map followed by `nsp` (the namespace it
/// may be restored in) and `srv` (the writing adapter's uid, so a server deletes only its own
/// write), two keys Node's `restoreSession` ignores.
pub fn encode_session_scoped(s: &Session, nsp: &str, srv: &str) -> String {
    let mut map = vec![
        (Mp::from("sid"), Mp::from(s.sid.as_str())),
        (Mp::from("pid"), Mp::from(s.pid.as_str())),
        (Mp::from("rooms"), rooms_mp(&s.rooms)),
        (Mp::from("data"), json_to_mp(&s.data, &[])),
    ];
    map.push((Mp::from("nsp"), Mp::from(nsp)));
    map.push((Mp::from("srv"), Mp::from(srv)));
    let mut out = Vec::with_capacity(128);
    let _ = rmpv::encode::write_value(&mut out, &Mp::Map(map));
    BASE64.encode(out)
}

/// The namespace a session value is scoped to: `Some` for ours ([`encode_session_scoped`]),
/// `None` for Node's, which any namespace may restore (as Node does).
pub fn session_nsp(raw: &[u8]) -> Option<String> {
    let bin = BASE64.decode(raw.trim_ascii()).ok()?;
    let mp = decode_mp(&bin).ok()?;
    mp_get(&mp, "nsp").and_then(|v| v.as_str()).map(str::to_owned)
}

/// Parses a session value (as `GET` returns it). Binaries in `data` are refused.
pub fn decode_session(raw: &[u8]) -> Result<Session, CodecError> {
    let bin = BASE64
        .decode(raw.trim_ascii())
        .map_err(|e| CodecError::Undecodable(e.to_string()))?;
    let mut attachments = Vec::new();
    let v = mp_to_json(decode_mp(&bin)?, &mut attachments);
    if !attachments.is_empty() {
        return Err(CodecError::Shape("session.data has binary"));
    }
    let s = |k: &'static str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(CodecError::Shape(k))
    };
    Ok(Session {
        sid: s("sid")?,
        pid: s("pid")?,
        rooms: room_list(v.get("rooms"), "rooms")?,
        data: v.get("data").cloned().unwrap_or(Value::Null),
    })
}

/// A stream entry id `<ms>-<seq>` (both fitting in u64), as Node checks offsets before using
/// them (`/^[0-9]+-[0-9]+$/`).
pub fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(ms)?, num(seq)?))
}

/// The smallest id after `id` (for an inclusive `XRANGE` start; Node's `nextOffset`, which
/// supports Redis < 6.2 without `(` exclusive ranges). `None` for a malformed id.
pub fn next_offset(id: &str) -> Option<String> {
    let (ms, seq) = parse_stream_id(id)?;
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

/// Whether a broadcast is replayed to a restored session with `session_rooms`: Node's
/// `shouldIncludePacket` (no rooms, or one of the session's rooms; none of them excepted), and
/// not volatile (Node replays volatile packets too, although they never carried an offset).
pub fn should_replay(session_rooms: &[Room], opts: &BroadcastOptions) -> bool {
    let included = opts.rooms.is_empty() || session_rooms.iter().any(|r| opts.rooms.contains(r));
    let excluded = session_rooms.iter().any(|r| opts.except.contains(r));
    included && !excluded && !opts.flags.volatile
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
