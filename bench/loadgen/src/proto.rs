//! The bench's two wire dialects over [`Ws`]: Socket.IO v5 on Engine.IO v4 (`sio`), and the raw
//! WebSocket ceiling server's JSON-per-frame protocol (`raw`). Also the payload helpers the
//! receivers use on the hot path (spotting a delivery and its sender timestamp without parsing).

use crate::ws::Ws;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// Which server dialect to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Socket.IO over a direct WebSocket (`/socket.io/?EIO=4&transport=websocket`).
    Sio,
    /// One JSON object per text frame at `/ws` (the raw tokio-tungstenite server).
    Raw,
    /// Socket.IO over a direct WebSocket with the msgpack parser (`PARSER=msgpack`): each packet
    /// one binary frame `{type, data, nsp, id}`.
    Msgpack,
}

impl Proto {
    /// Parses `sio` or `raw`.
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "sio" => Ok(Proto::Sio),
            "raw" => Ok(Proto::Raw),
            "msgpack" => Ok(Proto::Msgpack),
            other => Err(format!("--proto: expected sio, msgpack or raw, got {other:?}")),
        }
    }
}

/// Microseconds since the Unix epoch (comparable across processes on one machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The next Engine.IO packet other than a ping (which it answers with a pong).
async fn next_packet(ws: &mut Ws) -> io::Result<Vec<u8>> {
    loop {
        let p = ws.next_text().await?;
        if p != b"2" {
            return Ok(p);
        }
        ws.send_text(b"3").await?;
    }
}

/// Opens a connection and completes the Engine.IO open and Socket.IO CONNECT to `/`.
pub async fn open(addr: SocketAddr, source: Option<IpAddr>, proto: Proto) -> io::Result<Ws> {
    match proto {
        Proto::Raw => Ws::connect(addr, source, "/ws").await,
        Proto::Msgpack => {
            let mut ws = Ws::connect(addr, source, "/socket.io/?EIO=4&transport=websocket").await?;
            ws.next_text().await?;
            ws.send_binary(&mp_packet(0, None, b"")).await?;
            loop {
                let (op, p) = next_message(&mut ws).await?;
                if op == crate::ws::Op::Binary && mp_type(&p) == Some(0) {
                    return Ok(ws);
                }
                if op == crate::ws::Op::Binary && mp_type(&p) == Some(4) {
                    return Err(err(format!("CONNECT refused: {}", lossy(&p))));
                }
            }
        }
        Proto::Sio => {
            let mut ws = Ws::connect(addr, source, "/socket.io/?EIO=4&transport=websocket").await?;
            let open = ws.next_text().await?;
            if open.first() != Some(&b'0') {
                return Err(err(format!("expected an Engine.IO open packet, got {}", lossy(&open))));
            }
            ws.send_text(b"40").await?;
            loop {
                let p = next_packet(&mut ws).await?;
                match p.as_slice() {
                    [b'4', b'0', ..] => return Ok(ws),
                    [b'4', b'4', ..] => return Err(err(format!("CONNECT refused: {}", lossy(&p)))),
                    _ => {}
                }
            }
        }
    }
}

/// Joins `room` and waits for the server's confirmation. Over Socket.IO it first waits for the
/// app's `welcome` (emitted once the server's handlers are registered: socketioxide acks CONNECT
/// before its connect handler has run, and drops an event that arrives in between).
pub async fn join(ws: &mut Ws, proto: Proto, room: &str) -> io::Result<()> {
    match proto {
        Proto::Sio => {
            while !next_packet(ws).await?.starts_with(b"42[\"welcome\"") {}
            ws.send_text(format!("420[\"join\",\"{room}\"]").as_bytes()).await?;
            loop {
                let p = next_packet(ws).await?;
                if p.starts_with(b"430") {
                    if memchr::memmem::find(&p, b"\"ok\":true").is_none() {
                        return Err(err(format!("join refused: {}", lossy(&p))));
                    }
                    return Ok(());
                }
            }
        }
        Proto::Msgpack => {
            while memchr::memmem::find(&next_message(ws).await?.1, b"\xa7welcome").is_none() {}
            let mut data = vec![0x92, 0xa4];
            data.extend_from_slice(b"join");
            mp_str(&mut data, room);
            ws.send_binary(&mp_packet(2, Some(0), &data)).await?;
            loop {
                let (_, p) = next_message(ws).await?;
                if mp_type(&p) == Some(3) {
                    if memchr::memmem::find(&p, b"\xa2ok\xc3").is_none() {
                        return Err(err(format!("join refused: {}", lossy(&p))));
                    }
                    return Ok(());
                }
            }
        }
        Proto::Raw => {
            ws.send_text(format!("{{\"join\":\"{room}\"}}").as_bytes()).await?;
            loop {
                if ws.next_text().await?.starts_with(b"{\"joined\"") {
                    return Ok(());
                }
            }
        }
    }
}

/// The chat line senders send (`--message-bytes`; a short line by default).
static MESSAGE_TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes senders send chat lines of about `bytes` bytes: words drawn from a small vocabulary,
/// so they compress about as well as real chat text.
pub fn set_message_bytes(bytes: usize) {
    const WORDS: [&str; 16] = [
        "hello", "from", "the", "bench", "order", "shipped", "today", "please", "check", "room", "message", "thanks",
        "delivery", "customer", "will", "arrive",
    ];
    let mut text = String::with_capacity(bytes + 16);
    let mut x: u32 = 0x2545_F491;
    while text.len() < bytes {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        text.push_str(WORDS[(x % 16) as usize]);
        text.push(' ');
    }
    text.truncate(bytes);
    let _ = MESSAGE_TEXT.set(text);
}

/// The frame a sender emits: a chat `message` with the sender's timestamp `ts` (µs).
pub fn message_frame(proto: Proto, room: &str, sender: usize, seq: u64, ts: u64) -> Vec<u8> {
    let line = MESSAGE_TEXT
        .get()
        .map_or("hello from the bench, a typical short chat line", String::as_str);
    let body = format!(
        "{{\"roomId\":\"{room}\",\"message\":\"{line}\",\
         \"sender\":\"bench-{sender}\",\"ts\":{ts},\"seq\":{seq}}}"
    );
    match proto {
        Proto::Sio => format!("42[\"message\",{body}]").into_bytes(),
        Proto::Raw => body.into_bytes(),
        Proto::Msgpack => {
            let mut data = vec![0x92, 0xa7];
            data.extend_from_slice(b"message");
            data.push(0x85);
            for (k, v) in [("roomId", room), ("message", line)] {
                mp_str(&mut data, k);
                mp_str(&mut data, v);
            }
            mp_str(&mut data, "sender");
            mp_str(&mut data, &format!("bench-{sender}"));
            mp_str(&mut data, "ts");
            data.push(0xcf);
            data.extend_from_slice(&ts.to_be_bytes());
            mp_str(&mut data, "seq");
            data.push(0xcf);
            data.extend_from_slice(&seq.to_be_bytes());
            mp_packet(2, None, &data)
        }
    }
}

/// The next text or binary message, answering Engine.IO pings.
async fn next_message(ws: &mut Ws) -> io::Result<(crate::ws::Op, Vec<u8>)> {
    loop {
        let (op, p) = ws.next_message().await?;
        if op == crate::ws::Op::Text && p == b"2" {
            ws.send_text(b"3").await?;
            continue;
        }
        return Ok((op, p));
    }
}

/// Appends a msgpack string.
fn mp_str(out: &mut Vec<u8>, s: &str) {
    match s.len() {
        n if n < 32 => out.push(0xa0 | n as u8),
        n if n < 256 => out.extend_from_slice(&[0xd9, n as u8]),
        n => {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

/// A msgpack packet `{type, nsp: "/", data?, id?}`; `data` is an already encoded value.
fn mp_packet(ty: u8, id: Option<u8>, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x82 + u8::from(!data.is_empty()) + u8::from(id.is_some())];
    mp_str(&mut out, "type");
    out.push(ty);
    mp_str(&mut out, "nsp");
    mp_str(&mut out, "/");
    if !data.is_empty() {
        mp_str(&mut out, "data");
        out.extend_from_slice(data);
    }
    if let Some(id) = id {
        mp_str(&mut out, "id");
        out.push(id);
    }
    out
}

/// The `type` of a msgpack packet (found by its key, whatever the key order).
fn mp_type(p: &[u8]) -> Option<u8> {
    let at = memchr::memmem::find(p, b"\xa4type")? + 5;
    p.get(at).copied().filter(|t| *t < 0x80)
}

/// What a received text frame is, for a receiver.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A chat message delivery, with its sender timestamp when found.
    Delivery(Option<u64>),
    /// An Engine.IO ping to answer with `3`.
    Ping,
    /// Anything else (welcome, acks, ...).
    Other,
}

/// Classifies a text frame without parsing the JSON.
pub fn classify(proto: Proto, p: &[u8]) -> Incoming {
    let delivery = match proto {
        Proto::Sio => p.starts_with(b"42[\"message\""),
        Proto::Raw => p.starts_with(b"{\"roomId\""),
        Proto::Msgpack => mp_type(p) == Some(2) && memchr::memmem::find(p, b"\xa7message").is_some(),
    };
    if delivery && proto == Proto::Msgpack {
        Incoming::Delivery(find_mp_u64(p, b"\xa2ts"))
    } else if delivery {
        Incoming::Delivery(find_u64(p, b"\"ts\":"))
    } else if p == b"2" && proto != Proto::Raw {
        Incoming::Ping
    } else {
        Incoming::Other
    }
}

/// The unsigned integer right after `key` in `p`.
pub fn find_u64(p: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(p, key)? + key.len();
    let digits = p[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
        any = true;
    }
    any.then_some(n)
}

/// The msgpack unsigned integer right after the msgpack key `key`.
fn find_mp_u64(p: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(p, key)? + key.len();
    let (width, start) = match *p.get(at)? {
        b @ 0..=0x7f => return Some(u64::from(b)),
        0xcc => (1, at + 1),
        0xcd => (2, at + 1),
        0xce => (4, at + 1),
        0xcf => (8, at + 1),
        _ => return None,
    };
    let bytes = p.get(start..start + width)?;
    Some(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(&p[..p.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        let f = message_frame(Proto::Sio, "r", 1, 7, 123);
        assert_eq!(classify(Proto::Sio, &f), Incoming::Delivery(Some(123)));
        let delivered = br#"42["message",{"id":"x","text":"hi","metadata":{"ts":99,"seq":1,"type":"text"}}]"#;
        assert_eq!(classify(Proto::Sio, delivered), Incoming::Delivery(Some(99)));
        assert_eq!(classify(Proto::Sio, b"2"), Incoming::Ping);
        assert_eq!(classify(Proto::Sio, b"42[\"welcome\",{}]"), Incoming::Other);
        let raw = message_frame(Proto::Raw, "r", 1, 7, 5);
        assert_eq!(classify(Proto::Raw, &raw), Incoming::Delivery(Some(5)));
        assert_eq!(find_u64(b"\"ts\":x", b"\"ts\":"), None);
        let mp = message_frame(Proto::Msgpack, "r", 1, 7, 123_456_789);
        assert_eq!(classify(Proto::Msgpack, &mp), Incoming::Delivery(Some(123_456_789)));
        assert_eq!(mp_type(&mp), Some(2));
        assert_eq!(find_u64(b"\"ts\":99999999999999999999999", b"\"ts\":"), None);
    }
}
