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
}

impl Proto {
    /// Parses `sio` or `raw`.
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "sio" => Ok(Proto::Sio),
            "raw" => Ok(Proto::Raw),
            other => Err(format!("--proto: expected sio or raw, got {other:?}")),
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

/// The frame a sender emits: a chat `message` with the sender's timestamp `ts` (µs).
pub fn message_frame(proto: Proto, room: &str, sender: usize, seq: u64, ts: u64) -> Vec<u8> {
    let body = format!(
        "{{\"roomId\":\"{room}\",\"message\":\"hello from the bench, a typical short chat line\",\
         \"sender\":\"bench-{sender}\",\"ts\":{ts},\"seq\":{seq}}}"
    );
    match proto {
        Proto::Sio => format!("42[\"message\",{body}]").into_bytes(),
        Proto::Raw => body.into_bytes(),
    }
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
    };
    if delivery {
        Incoming::Delivery(find_u64(p, b"\"ts\":"))
    } else if p == b"2" && proto == Proto::Sio {
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
        assert_eq!(find_u64(b"\"ts\":99999999999999999999999", b"\"ts\":"), None);
    }
}
