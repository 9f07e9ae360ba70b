//! A minimal WebSocket client for load generation: one HTTP upgrade, masked text frames out,
//! unmasked frames parsed in place from one read buffer (no allocation per received frame).
//! With `--deflate on` it offers permessage-deflate and inflates compressed messages (into one
//! buffer per connection; the inflater is per thread when the server keeps no context).

use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// WebSocket opcodes the bench cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A text frame.
    Text,
    /// A binary frame.
    Binary,
    /// The peer closed.
    Close,
    /// A ping (answered by [`Ws::reply_pong`]).
    Ping,
    /// Anything else (pong, continuation) — ignored.
    Other,
}

/// One client connection.
pub struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    mask_state: u32,
    deflate: Deflate,
    /// The last inflated message ([`INFLATED`] ranges point here).
    inflated: Vec<u8>,
}

/// Whether new connections offer permessage-deflate (`--deflate on`).
static OFFER_DEFLATE: AtomicBool = AtomicBool::new(false);

/// Makes every connection opened from now on offer permessage-deflate.
pub fn offer_deflate(on: bool) {
    OFFER_DEFLATE.store(on, Relaxed);
}

/// The `from` of a payload range that lies in the inflated buffer, not the read buffer.
const INFLATED: usize = usize::MAX;

/// The tail a sync flush ends with, left off compressed messages on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the server agreed to.
enum Deflate {
    /// No extension.
    Off,
    /// server_no_context_takeover: any inflater, reset per message.
    NoContext,
    /// The server keeps its window across messages: this connection's own inflater.
    Context(Box<Decompress>),
}

thread_local! {
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Inflates one message (tail removed) into `out`.
fn inflate(d: &mut Decompress, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    for chunk in [input, &TAIL[..]] {
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(out.capacity().max(4096));
            }
            let (in0, out0) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(&chunk[pos..], out, FlushDecompress::Sync)
                .map_err(|e| err(format!("inflate: {e}")))?;
            pos += (d.total_in() - in0) as usize;
            if status == Status::StreamEnd || (pos == chunk.len() && out.len() < out.capacity()) {
                break;
            }
            if d.total_in() == in0 && out.len() == out0 {
                return Err(err("inflate made no progress"));
            }
        }
    }
    Ok(())
}

/// Opens a TCP connection to `addr` (from `source` when given), with Nagle off.
pub(crate) async fn dial(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

impl Ws {
    /// Opens a TCP connection (from `source` when given) and upgrades it at `path`.
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>, path: &str) -> io::Result<Ws> {
        let stream = dial(addr, source).await?;
        let mut ws = Ws {
            stream,
            buf: vec![0; 4096],
            start: 0,
            end: 0,
            out: Vec::with_capacity(256),
            mask_state: 0x9E37_79B9 ^ (addr.port() as u32).wrapping_mul(2_654_435_761),
            deflate: Deflate::Off,
            inflated: Vec::new(),
        };
        let offer = if OFFER_DEFLATE.load(Relaxed) {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        ws.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(pos) = memchr::memmem::find(&ws.buf[..ws.end], b"\r\n\r\n") {
                let head = &ws.buf[..pos];
                if !head.starts_with(b"HTTP/1.1 101") {
                    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                    return Err(err(format!("upgrade refused: {}", String::from_utf8_lossy(line))));
                }
                let head = String::from_utf8_lossy(head).to_ascii_lowercase();
                if head.contains("permessage-deflate") {
                    ws.deflate = if head.contains("server_no_context_takeover") {
                        Deflate::NoContext
                    } else {
                        Deflate::Context(Box::new(Decompress::new(false)))
                    };
                }
                ws.start = pos + 4;
                return Ok(ws);
            }
            if ws.end == ws.buf.len() {
                return Err(err("upgrade response too large"));
            }
            let n = ws.stream.read(&mut ws.buf[ws.end..]).await?;
            if n == 0 {
                return Err(err("connection closed during upgrade"));
            }
            ws.end += n;
        }
    }

    /// Parses the next complete frame in the buffer, if any: its opcode and payload range.
    pub fn next_frame(&mut self) -> io::Result<Option<(Op, usize, usize)>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (avail[0], avail[1]);
        if b0 & 0x80 == 0 {
            return Err(err("fragmented frames are not supported by the bench client"));
        }
        if b1 & 0x80 != 0 {
            return Err(err("server sent a masked frame"));
        }
        let (len, header) = match b1 & 0x7F {
            126 if avail.len() >= 4 => (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4),
            127 if avail.len() >= 10 => (u64::from_be_bytes(avail[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if avail.len() < header + len {
            if header + len > self.buf.len() {
                self.buf.resize((header + len).next_power_of_two(), 0);
            }
            return Ok(None);
        }
        let op = match b0 & 0x0F {
            1 => Op::Text,
            2 => Op::Binary,
            8 => Op::Close,
            9 => Op::Ping,
            _ => Op::Other,
        };
        let from = self.start + header;
        self.start = from + len;
        if b0 & 0x40 != 0 && matches!(op, Op::Text | Op::Binary) {
            let input = &self.buf[from..from + len];
            match &mut self.deflate {
                Deflate::Off => return Err(err("compressed frame without permessage-deflate")),
                Deflate::NoContext => INFLATER.with_borrow_mut(|d| {
                    d.reset(false);
                    inflate(d, input, &mut self.inflated)
                })?,
                Deflate::Context(d) => inflate(d, input, &mut self.inflated)?,
            }
            return Ok(Some((op, INFLATED, self.inflated.len())));
        }
        Ok(Some((op, from, from + len)))
    }

    /// The bytes of a frame returned by [`Ws::next_frame`].
    pub fn payload(&self, from: usize, to: usize) -> &[u8] {
        if from == INFLATED {
            &self.inflated[..to]
        } else {
            &self.buf[from..to]
        }
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    pub async fn fill(&mut self) -> io::Result<bool> {
        self.make_room();
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    /// Moves a partial frame to the front of the buffer and grows it when full.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
    }

    /// Reads what is available without waiting; `Ok(false)` at end of stream.
    pub fn try_fill(&mut self) -> io::Result<bool> {
        self.make_room();
        match self.stream.try_read(&mut self.buf[self.end..]) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame(0x81, payload);
        self.flush().await
    }

    /// Sends one masked binary frame.
    pub async fn send_binary(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame(0x82, payload);
        self.flush().await
    }

    /// Reads frames until a text or binary message arrives (answering WebSocket pings).
    pub async fn next_message(&mut self) -> io::Result<(Op, Vec<u8>)> {
        loop {
            while let Some((op, from, to)) = self.next_frame()? {
                match op {
                    Op::Text | Op::Binary => return Ok((op, self.payload(from, to).to_vec())),
                    Op::Ping => self.reply_pong(from, to).await?,
                    Op::Close => return Err(err("closed by server")),
                    _ => {}
                }
            }
            if !self.fill().await? {
                return Err(err("connection closed"));
            }
        }
    }

    /// Answers a ping frame with a pong carrying the same payload.
    pub async fn reply_pong(&mut self, from: usize, to: usize) -> io::Result<()> {
        let payload = self.payload(from, to).to_vec();
        self.frame(0x8A, &payload);
        self.flush().await
    }

    /// Queues a masked frame in the output buffer.
    fn frame(&mut self, b0: u8, payload: &[u8]) {
        self.mask_state ^= self.mask_state << 13;
        self.mask_state ^= self.mask_state >> 17;
        self.mask_state ^= self.mask_state << 5;
        let mask = self.mask_state.to_be_bytes();
        self.out.push(b0);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&mask);
        self.out
            .extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    }

    async fn flush(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result
    }

    /// Reads frames until one text frame arrives (answering pings); returns it.
    pub async fn next_text(&mut self) -> io::Result<Vec<u8>> {
        loop {
            while let Some((op, from, to)) = self.next_frame()? {
                match op {
                    Op::Text => return Ok(self.payload(from, to).to_vec()),
                    Op::Ping => self.reply_pong(from, to).await?,
                    Op::Close => return Err(err("closed by server")),
                    _ => {}
                }
            }
            if !self.fill().await? {
                return Err(err("connection closed"));
            }
        }
    }
}
