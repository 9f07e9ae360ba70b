//! `storm`: N clients on the stock client's default path, as after a failover or a deploy: polling
//! handshake, CONNECT POST, GET (the CONNECT reply), WebSocket probe (`2probe`/`3probe`) while a
//! GET is parked (the server answers it with a noop), `5` upgrade, then `join` with an ack. At most
//! `--concurrency` clients are between their handshake and their join at once. Reports connects/s,
//! time to joined (p50/p99), and the server's CPU per client (utime + stime from /proc, so it does
//! not depend on how fast the load generator is).

use crate::stats::{self, Opts};
use crate::ws::{Op, Ws, dial};
use serde_json::{Value, json};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// One keep-alive HTTP/1.1 connection with the request headers a browser's XHR sends (no
/// `Accept-Encoding`, like the stock client in Node: the answers here are small anyway).
pub(crate) struct Http {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Http {
    /// Opens the connection (from `source` when given).
    pub(crate) async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Http> {
        let stream = dial(addr, source).await?;
        Ok(Http {
            stream,
            addr,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its answer (Content-Length bodies only); `Err` unless 200.
    pub(crate) async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Vec<u8>> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nAccept: */*\r\n\
             User-Agent: Mozilla/5.0 (X11; Linux x86_64) sio-bench storm\r\nAccept-Language: en-US,en;q=0.9\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        self.stream.write_all(&out).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            if let Some(pos) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..pos]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    return Err(err(format!("{method} answered {line}")));
                }
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| err("answer without Content-Length"))?;
                break (pos + 4, length);
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(err("connection closed before the answer"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(err("connection closed in the body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(self.buf[head_end..head_end + length].to_vec())
    }
}

/// What a polling payload holds for the client.
#[derive(Default)]
struct Seen {
    connected: bool,
    welcome: bool,
    pings: usize,
}

fn scan(payload: &[u8]) -> Seen {
    let mut seen = Seen::default();
    for p in payload.split(|&b| b == 0x1e) {
        seen.connected |= p.starts_with(b"40");
        seen.welcome |= p.starts_with(b"42[\"welcome\"");
        seen.pings += usize::from(p == b"2");
    }
    seen
}

/// One polling GET, answering its pings with a pong POST as the stock client does.
async fn poll_once(http: &mut Http, url: &str) -> io::Result<Seen> {
    let seen = scan(&http.request("GET", url, b"").await?);
    for _ in 0..seen.pings {
        http.request("POST", url, b"3").await?;
    }
    Ok(seen)
}

/// The default path's first two requests: the polling handshake, then the CONNECT packet
/// `connect` POSTed; returns the sid and the session's polling URL.
pub(crate) async fn open_session(http: &mut Http, connect: &[u8]) -> io::Result<(String, String)> {
    let base = "/socket.io/?EIO=4&transport=polling";
    let open = http.request("GET", base, b"").await?;
    let open = open.strip_prefix(b"0").ok_or_else(|| err("no Engine.IO open packet"))?;
    let v: Value = serde_json::from_slice(open).map_err(|e| err(format!("open packet: {e}")))?;
    let sid = v["sid"]
        .as_str()
        .ok_or_else(|| err("open packet without sid"))?
        .to_owned();
    let poll = format!("{base}&sid={sid}");
    if http.request("POST", &poll, connect).await? != b"ok" {
        return Err(err("CONNECT POST not answered ok"));
    }
    Ok((sid, poll))
}

/// One client's default path up to its joined room; returns its open WebSocket.
async fn client(addr: SocketAddr, source: Option<IpAddr>, room: &str) -> io::Result<Ws> {
    let mut http = Http::connect(addr, source).await?;
    let (sid, poll) = open_session(&mut http, b"40").await?;
    // Poll until the CONNECT reply (a server may send a ping first).
    let mut welcome = false;
    loop {
        let seen = poll_once(&mut http, &poll).await?;
        welcome |= seen.welcome;
        if seen.connected {
            break;
        }
    }
    let welcomed = AtomicBool::new(welcome);
    let mut ws = Ws::connect(
        addr,
        source,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await?;
    let probed = AtomicBool::new(false);
    // The stock client keeps polling while it probes, and upgrades once its GET has returned
    // (the server ends a parked GET with a noop when the probe arrives).
    let polling = async {
        loop {
            if poll_once(&mut http, &poll).await?.welcome {
                welcomed.store(true, Relaxed);
            }
            if probed.load(Relaxed) {
                return io::Result::Ok(());
            }
        }
    };
    let probe = async {
        ws.send_text(b"2probe").await?;
        loop {
            let p = ws.next_text().await?;
            if p == b"3probe" {
                probed.store(true, Relaxed);
                return io::Result::Ok(());
            }
        }
    };
    let (a, b) = tokio::join!(polling, probe);
    a?;
    b?;
    ws.send_text(b"5").await?;
    drop(http);
    while !welcomed.load(Relaxed) {
        let p = ws.next_text().await?;
        if p == b"2" {
            ws.send_text(b"3").await?;
        } else if p.starts_with(b"42[\"welcome\"") {
            welcomed.store(true, Relaxed);
        }
    }
    ws.send_text(format!("420[\"join\",\"{room}\"]").as_bytes()).await?;
    loop {
        let p = ws.next_text().await?;
        if p.starts_with(b"430") {
            if memchr::memmem::find(&p, b"\"ok\":true").is_none() {
                return Err(err(format!("join refused: {}", String::from_utf8_lossy(&p))));
            }
            return Ok(ws);
        }
        if p == b"2" {
            ws.send_text(b"3").await?;
        }
    }
}

/// Keeps a joined client open (answering pings) until `stop`.
async fn hold(mut ws: Ws, stop: Arc<AtomicBool>) {
    while !stop.load(Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), ws.fill()).await {
            Err(_) => continue,
            Ok(Ok(true)) => {}
            Ok(_) => return,
        }
        let mut pong = false;
        while let Ok(Some((op, from, to))) = ws.next_frame() {
            if op == Op::Text && ws.payload(from, to) == b"2" {
                pong = true;
            }
        }
        if pong && ws.send_text(b"3").await.is_err() {
            return;
        }
    }
}

/// Runs the scenario and prints one JSON result line.
pub async fn run(opts: Opts) -> Result<(), String> {
    let clients: usize = opts.num("clients", 1000)?;
    let concurrency: usize = opts.num("concurrency", 100)?;
    let rooms: usize = opts.num("rooms", 100)?;
    let servers = opts.servers()?;
    let sources = opts.source_ips()?;
    let pids = opts.pids()?;
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    eprintln!("storm: {clients} clients, {concurrency} at a time");
    let (_, cpu0) = stats::sample(&pids);
    let t0 = Instant::now();
    let mut holders = Vec::new();
    for i in 0..clients {
        let addr = servers[i % servers.len()];
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        let (gate, done, stop) = (gate.clone(), done_tx.clone(), stop.clone());
        holders.push(tokio::spawn(async move {
            let Ok(permit) = gate.acquire().await else {
                let _ = done.send(Err("semaphore closed".to_owned()));
                return;
            };
            let t = Instant::now();
            let room = format!("storm-{}", i % rooms.max(1));
            let joined = tokio::time::timeout(Duration::from_secs(30), client(addr, source, &room)).await;
            match joined.unwrap_or_else(|_| Err(err("not joined within 30 s"))) {
                Ok(ws) => {
                    let _ = done.send(Ok(t.elapsed().as_micros() as u64));
                    drop(permit);
                    hold(ws, stop).await;
                }
                Err(e) => {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }));
    }
    drop(done_tx);
    let (mut hist, mut errors, mut first_error) = (stats::histogram(), 0u64, None);
    for _ in 0..clients {
        let Some(r) = done_rx.recv().await else { break };
        match r {
            Ok(us) => {
                let _ = hist.record(us.max(1));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (rss, cpu1) = stats::sample(&pids);
    stop.store(true, Relaxed);
    for h in holders {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    let joined = hist.len();
    let mut out = opts.header("storm");
    out.insert("clients".into(), json!(clients));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("joined".into(), json!(joined));
    out.insert("errors".into(), json!(errors));
    out.insert("first_error".into(), json!(first_error));
    out.insert("seconds".into(), json!((elapsed * 100.0).round() / 100.0));
    out.insert("connects_per_s".into(), json!((joined as f64 / elapsed).round()));
    stats::percentiles(&mut out, "joined", &hist);
    if !pids.is_empty() {
        out.insert(
            "server_cpu_us_per_client".into(),
            json!(((cpu1 - cpu0) * 1e6 / joined.max(1) as f64).round()),
        );
        out.insert("server_rss_kib".into(), json!(rss));
    }
    println!("{}", Value::Object(out));
    Ok(())
}
