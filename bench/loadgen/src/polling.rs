//! A minimal Engine.IO v4 long-polling client for load generation: the stock client's
//! polling-only path (`transports: ["polling"]`). Handshake GET, CONNECT POST, then GETs in a
//! loop with one outstanding and POSTs for the client's own packets (pongs, the join), each kind
//! on its own keep-alive HTTP/1.1 connection as Node's HTTP agent ends up doing (a parked GET holds
//! one socket, so a POST takes another). No `Accept-Encoding`, as the stock client in Node sends
//! none. Responses are read into one reused buffer; payloads are split on `\x1e` in place.

use crate::ws::dial;
use serde_json::Value;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The record separator between the packets of one polling payload.
pub const SEPARATOR: u8 = 0x1e;
/// Most bytes a response head may take.
const MAX_HEAD: usize = 16 * 1024;
/// Most bytes a response body may take (a backlog of this much means the run is broken anyway).
const MAX_BODY: usize = 64 << 20;

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// One keep-alive HTTP/1.1 connection, one request at a time.
pub struct Http {
    stream: TcpStream,
    addr: SocketAddr,
    source: Option<IpAddr>,
    /// Bytes read; the last answer's body is `buf[body.0..body.1]`, and `buf[..consumed]` is done.
    buf: Vec<u8>,
    body: (usize, usize),
    consumed: usize,
    out: Vec<u8>,
}

/// The value of header `name` (lowercase) in a response head.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

impl Http {
    /// Opens a connection to `addr` (from `source` when given).
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Http> {
        Ok(Http {
            stream: dial(addr, source).await?,
            addr,
            source,
            buf: Vec::with_capacity(4096),
            body: (0, 0),
            consumed: 0,
            out: Vec::with_capacity(512),
        })
    }

    /// Whether the server closed this idle connection (Node closes keep-alive sockets idle for 5 s).
    fn peer_closed(&self) -> bool {
        let mut probe = [0u8; 1];
        !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends one request for `path` (with the stock client's cache-busting `t`) and reads its
    /// answer; `Err` unless it is a 200 with a `Content-Length` body (see [`Http::body`]).
    pub async fn request(&mut self, method: &str, path: &str, t: u64, body: &[u8]) -> io::Result<()> {
        if method == "POST" && self.consumed == self.buf.len() && self.peer_closed() {
            // As Node's agent does with a socket the server closed while it sat in the pool.
            self.stream = dial(self.addr, self.source).await?;
            self.buf.clear();
            self.consumed = 0;
        }
        self.out.clear();
        write!(
            self.out,
            "{method} {path}&t={t:x} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nAccept: */*\r\n",
            self.addr
        )?;
        if method == "POST" {
            write!(
                self.out,
                "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
                body.len()
            )?;
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        self.read_response(method).await
    }

    async fn read_more(&mut self) -> io::Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(err("connection closed before the whole answer"));
        }
        Ok(())
    }

    async fn read_response(&mut self, method: &str) -> io::Result<()> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        let head_end = loop {
            if let Some(pos) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(err(format!("{method}: response head over {MAX_HEAD} bytes")));
            }
            self.read_more().await?;
        };
        let head = &self.buf[..head_end];
        if !head.starts_with(b"HTTP/1.1 200") {
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            return Err(err(format!("{method} answered {}", String::from_utf8_lossy(line))));
        }
        let length = header(head, b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
            .ok_or_else(|| err(format!("{method}: answer without a Content-Length")))?;
        if length > MAX_BODY {
            return Err(err(format!("{method}: answer of {length} bytes")));
        }
        let end = head_end + 4 + length;
        while self.buf.len() < end {
            self.read_more().await?;
        }
        self.body = (head_end + 4, end);
        self.consumed = end;
        Ok(())
    }

    /// The body of the last answer.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.0..self.body.1]
    }
}

/// The packets of a polling payload.
pub fn packets(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload.split(|&b| b == SEPARATOR)
}

/// One Socket.IO client on polling only, connected to `/`.
pub struct Client {
    get: Http,
    post: Http,
    /// `/socket.io/?EIO=4&transport=polling&sid=…`
    path: String,
    /// The cache-busting counter (`t`).
    t: u64,
    /// Whether the app's `welcome` has arrived.
    welcomed: bool,
}

impl Client {
    /// Handshake GET, CONNECT POST, and GETs until the CONNECT reply.
    pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Client> {
        let base = "/socket.io/?EIO=4&transport=polling";
        let mut get = Http::connect(addr, source).await?;
        get.request("GET", base, 0, b"").await?;
        let open = get
            .body()
            .strip_prefix(b"0")
            .ok_or_else(|| err("no Engine.IO open packet"))?;
        let v: Value = serde_json::from_slice(open).map_err(|e| err(format!("open packet: {e}")))?;
        let sid = v["sid"].as_str().ok_or_else(|| err("open packet without sid"))?;
        let mut client = Client {
            get,
            post: Http::connect(addr, source).await?,
            path: format!("{base}&sid={sid}"),
            t: 1,
            welcomed: false,
        };
        client.send(b"40").await?;
        client
            .until(|p| {
                if p.starts_with(b"44") {
                    return Err(err(format!("CONNECT refused: {}", String::from_utf8_lossy(p))));
                }
                Ok(p.starts_with(b"40"))
            })
            .await?;
        Ok(client)
    }

    /// Waits for the app's `welcome` (socketioxide acks CONNECT before its handler runs), then
    /// joins `room` and waits for the ack.
    pub async fn join(&mut self, room: &str) -> io::Result<()> {
        if !self.welcomed {
            self.until(|p| Ok(p.starts_with(b"42[\"welcome\""))).await?;
        }
        self.send(format!("420[\"join\",\"{room}\"]").as_bytes()).await?;
        self.until(|p| {
            if !p.starts_with(b"430") {
                return Ok(false);
            }
            if memchr::memmem::find(p, b"\"ok\":true").is_none() {
                return Err(err(format!("join refused: {}", String::from_utf8_lossy(p))));
            }
            Ok(true)
        })
        .await
    }

    /// Polls until `found` says a packet is the one awaited, answering pings on the way (and
    /// noting the `welcome`, which may share the CONNECT reply's payload).
    async fn until(&mut self, mut found: impl FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
        let mut pong = false;
        loop {
            self.poll(pong).await?;
            pong = false;
            let mut done = false;
            for p in packets(self.get.body()) {
                match p {
                    b"2" => pong = true,
                    b"1" => return Err(err("the server closed the session")),
                    p => {
                        self.welcomed |= p.starts_with(b"42[\"welcome\"");
                        done |= found(p)?;
                    }
                }
            }
            if done {
                if pong {
                    self.send(b"3").await?;
                }
                return Ok(());
            }
        }
    }

    /// POSTs `payload` on the POST connection; `Err` unless answered `ok`.
    pub async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.t += 1;
        self.post.request("POST", &self.path, self.t, payload).await?;
        if self.post.body() != b"ok" {
            return Err(err(format!(
                "POST answered {}",
                String::from_utf8_lossy(self.post.body())
            )));
        }
        Ok(())
    }

    /// One GET (its payload is then [`Client::payload`]); with `pong`, a pong POST goes out at the
    /// same time, as the stock client sends it while its next GET is already parked.
    pub async fn poll(&mut self, pong: bool) -> io::Result<()> {
        self.t += 1;
        let (get, t) = (&mut self.get, self.t);
        if !pong {
            return get.request("GET", &self.path, t, b"").await;
        }
        self.t += 1;
        let post = &mut self.post;
        let (g, p) = tokio::join!(
            get.request("GET", &self.path, t, b""),
            post.request("POST", &self.path, t + 1, b"3")
        );
        p?;
        if post.body() != b"ok" {
            return Err(err("pong POST not answered ok"));
        }
        g
    }

    /// The payload of the last GET.
    pub fn payload(&self) -> &[u8] {
        self.get.body()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_payloads_and_reads_headers() {
        let p = b"42[\"message\",{}]\x1e2\x1e6";
        assert_eq!(
            packets(p).collect::<Vec<_>>(),
            vec![&b"42[\"message\",{}]"[..], b"2", b"6"]
        );
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 12\r\nX: y";
        assert_eq!(header(head, b"content-length"), Some(&b"12"[..]));
        assert_eq!(header(head, b"content-encoding"), None);
    }
}
