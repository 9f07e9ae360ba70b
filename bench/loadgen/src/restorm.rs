//! `reconnect-storm`: N clients on the stock client's default path through nginx onto three
//! instances, each joined to a room, then `kill -9` of one instance. Each moved client does what
//! socket.io-client 4.8 does: it notices the close, waits the Manager's backoff (1000 ms doubling,
//! ±50 % jitter, at most 5000 ms; reset after a successful reconnect), opens a new session on the
//! default path, sends CONNECT with `{pid, offset}` when the server offered a pid, and rejoins its
//! room unless the CONNECT reply says the session was recovered (same pid). Reports, from the kill:
//! when the moved clients noticed and when they were back (p50/p99/max), whether all came back
//! within the deadline, failed attempts, recovered and rejoined counts.

use crate::stats::{self, Opts};
use crate::storm::Http;
use crate::ws::{Op, Ws};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// socket.io-client's reconnection delay (the `backo2` algorithm it embeds) with the client's
/// defaults: `reconnectionDelay` 1000 ms, `randomizationFactor` 0.5, `reconnectionDelayMax` 5000 ms.
struct Backoff {
    attempts: u32,
    rng: u64,
}

impl Backoff {
    fn new(seed: u64) -> Backoff {
        Backoff {
            attempts: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// A uniform number in [0, 1) (xorshift64*; `Math.random()` in the client).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next delay, as `Backoff.prototype.duration` computes it from `rand`.
    fn duration_with(&mut self, rand: f64) -> Duration {
        let ms = 1000.0 * 2f64.powi(self.attempts.min(30) as i32);
        self.attempts += 1;
        let deviation = (rand * 0.5 * ms).floor();
        let ms = if ((rand * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
        Duration::from_millis(ms.min(5000.0) as u64)
    }

    /// The next delay.
    fn duration(&mut self) -> Duration {
        let rand = self.random();
        self.duration_with(rand)
    }

    fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// What the stock client keeps of its Socket.IO session across reconnects (`_pid`, `_lastOffset`).
#[derive(Default)]
struct Session {
    pid: Option<String>,
    offset: Option<String>,
}

/// One Engine.IO packet as the client sees it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// An Engine.IO ping (answered with `3`).
    Ping,
    /// The CONNECT reply; `recovered` when it carries the pid the client sent.
    Connected { recovered: bool },
    /// A CONNECT error.
    Refused(String),
    /// The app's `welcome` event.
    Welcome,
    /// An ack (the bench's only acked emit is `join`); `ok` when it says `"ok":true`.
    Ack { ok: bool },
    /// Anything else.
    Other,
}

impl Session {
    /// The CONNECT packet the client sends: `40`, or `40{"pid":…,"offset":…}` once the server
    /// offered a pid (socket.io-client's `_sendConnectPacket`; an unset offset is left out).
    fn connect_packet(&self) -> Vec<u8> {
        match (&self.pid, &self.offset) {
            (None, _) => b"40".to_vec(),
            (Some(pid), None) => format!("40{{\"pid\":{}}}", json!(pid)).into_bytes(),
            (Some(pid), Some(offset)) => {
                format!("40{{\"pid\":{},\"offset\":{}}}", json!(pid), json!(offset)).into_bytes()
            }
        }
    }

    /// Reads one Engine.IO packet: the CONNECT reply sets the pid (`onconnect`), and while a pid
    /// is set, an event whose last argument is a string sets the offset (`onevent`).
    fn observe(&mut self, p: &[u8]) -> Seen {
        match p {
            b"2" => Seen::Ping,
            [b'4', b'0', rest @ ..] => {
                let v: Value = serde_json::from_slice(rest).unwrap_or(Value::Null);
                let pid = v["pid"].as_str().map(str::to_owned);
                let recovered = pid.is_some() && pid == self.pid;
                self.pid = pid;
                Seen::Connected { recovered }
            }
            [b'4', b'4', rest @ ..] => Seen::Refused(String::from_utf8_lossy(rest).into_owned()),
            [b'4', b'2', rest @ ..] => {
                let welcome = rest.starts_with(b"[\"welcome\"");
                if self.pid.is_some()
                    && let Ok(Value::Array(args)) = serde_json::from_slice::<Value>(rest)
                    && let Some(Value::String(offset)) = args.last()
                {
                    self.offset = Some(offset.clone());
                }
                if welcome { Seen::Welcome } else { Seen::Other }
            }
            [b'4', b'3', ..] => Seen::Ack {
                ok: memchr::memmem::find(p, b"\"ok\":true").is_some(),
            },
            _ => Seen::Other,
        }
    }
}

/// A client that is connected and in its room.
struct Up {
    ws: Ws,
    instance: String,
    recovered: bool,
}

/// One polling GET: applies its packets to the session and answers its pings with a pong POST.
async fn poll(http: &mut Http, url: &str, session: &mut Session) -> io::Result<Vec<Seen>> {
    let body = http.request("GET", url, b"").await?;
    let seen: Vec<Seen> = body.split(|&b| b == 0x1e).map(|p| session.observe(p)).collect();
    for s in &seen {
        match s {
            Seen::Ping => {
                http.request("POST", url, b"3").await?;
            }
            Seen::Refused(why) => return Err(err(format!("CONNECT refused: {why}"))),
            _ => {}
        }
    }
    Ok(seen)
}

/// The next packet over the WebSocket, applied to the session (pings answered).
async fn next_seen(ws: &mut Ws, session: &mut Session) -> io::Result<Seen> {
    loop {
        let p = ws.next_text().await?;
        match session.observe(&p) {
            Seen::Ping => ws.send_text(b"3").await?,
            Seen::Refused(why) => return Err(err(format!("CONNECT refused: {why}"))),
            seen => return Ok(seen),
        }
    }
}

/// One connection attempt on the default path (polling handshake, CONNECT, probe, upgrade), then
/// `join` unless the session was recovered.
async fn connect(addr: SocketAddr, source: Option<IpAddr>, room: &str, session: &mut Session) -> io::Result<Up> {
    let base = "/socket.io/?EIO=4&transport=polling";
    let mut http = Http::connect(addr, source).await?;
    let open = http.request("GET", base, b"").await?;
    let open = open.strip_prefix(b"0").ok_or_else(|| err("no Engine.IO open packet"))?;
    let v: Value = serde_json::from_slice(open).map_err(|e| err(format!("open packet: {e}")))?;
    let sid = v["sid"]
        .as_str()
        .ok_or_else(|| err("open packet without sid"))?
        .to_owned();
    let instance = sid.split_once('.').map_or("", |(i, _)| i).to_owned();
    let poll_url = format!("{base}&sid={sid}");
    if http.request("POST", &poll_url, &session.connect_packet()).await? != b"ok" {
        return Err(err("CONNECT POST not answered ok"));
    }
    let (mut recovered, mut welcome) = (None, false);
    while recovered.is_none() {
        for s in poll(&mut http, &poll_url, session).await? {
            match s {
                Seen::Connected { recovered: r } => recovered = Some(r),
                Seen::Welcome => welcome = true,
                _ => {}
            }
        }
    }
    let recovered = recovered.unwrap_or(false);
    let welcomed = AtomicBool::new(welcome);
    let probed = AtomicBool::new(false);
    let mut ws = Ws::connect(
        addr,
        source,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await?;
    // The client keeps polling while it probes and upgrades once its GET has returned.
    let polling = async {
        loop {
            if poll(&mut http, &poll_url, session).await?.contains(&Seen::Welcome) {
                welcomed.store(true, Relaxed);
            }
            if probed.load(Relaxed) {
                return io::Result::Ok(());
            }
        }
    };
    let probe = async {
        ws.send_text(b"2probe").await?;
        while ws.next_text().await? != b"3probe" {}
        probed.store(true, Relaxed);
        io::Result::Ok(())
    };
    let (a, b) = tokio::join!(polling, probe);
    a?;
    b?;
    ws.send_text(b"5").await?;
    drop(http);
    if !recovered {
        // The app's `connect` handler rejoins (after `welcome`, as the bench does everywhere).
        let mut welcome = welcomed.load(Relaxed);
        while !welcome {
            welcome = next_seen(&mut ws, session).await? == Seen::Welcome;
        }
        ws.send_text(format!("420[\"join\",{}]", json!(room)).as_bytes())
            .await?;
        loop {
            if let Seen::Ack { ok } = next_seen(&mut ws, session).await? {
                if !ok {
                    return Err(err("join refused"));
                }
                break;
            }
        }
    }
    Ok(Up {
        ws,
        instance,
        recovered,
    })
}

/// Keeps a client open (answering pings, tracking offsets) until its connection ends (`Some`, when)
/// or `stop` (`None`).
async fn hold(ws: &mut Ws, session: &mut Session, stop: &mut watch::Receiver<bool>) -> Option<Instant> {
    loop {
        let more = tokio::select! {
            r = ws.fill() => r,
            _ = stop.wait_for(|s| *s) => return None,
        };
        if !matches!(more, Ok(true)) {
            return Some(Instant::now());
        }
        let mut pong = false;
        loop {
            match ws.next_frame() {
                Ok(Some((Op::Text, from, to))) => pong |= session.observe(ws.payload(from, to)) == Seen::Ping,
                Ok(Some((Op::Close, ..))) | Err(_) => return Some(Instant::now()),
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        if pong && ws.send_text(b"3").await.is_err() {
            return Some(Instant::now());
        }
    }
}

/// What a client task reports.
enum Ev {
    /// Connected and joined for the first time, on this instance.
    Up(usize, String),
    /// A failed first connection (retried with backoff).
    SetupFailed(String),
    /// Its connection ended, at this instant.
    Noticed(usize, Instant),
    /// A failed reconnection attempt.
    AttemptFailed(String),
    /// Back: reconnected and rejoined or recovered.
    Back {
        idx: usize,
        at: Instant,
        instance: String,
        recovered: bool,
        attempts: u32,
        /// How long the successful attempt took (after its backoff delay).
        took: Duration,
    },
}

/// The fixed part of every client.
struct Shared {
    addr: SocketAddr,
    source: Option<IpAddr>,
    room: String,
    gate: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<Ev>,
}

/// Sleeps `d` unless `stop` comes first (`false` then).
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// One client's whole life: first connection (at most `--concurrency` at once), then hold and
/// reconnect as socket.io-client's Manager does, until `stop`.
async fn client(idx: usize, c: Shared, mut stop: watch::Receiver<bool>) {
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20); // the client's `timeout` option
    let mut backoff = Backoff::new(idx as u64 + 1);
    let mut session = Session::default();
    let mut up = loop {
        let Ok(permit) = c.gate.acquire().await else { return };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, connect(c.addr, c.source, &c.room, &mut session)).await {
            Ok(Ok(up)) => break up,
            Ok(Err(e)) => drop(c.tx.send(Ev::SetupFailed(e.to_string()))),
            Err(_) => drop(c.tx.send(Ev::SetupFailed("no connection within 20 s".into()))),
        }
        drop(permit);
        if !pause(backoff.duration(), &mut stop).await {
            return;
        }
    };
    backoff.reset();
    let _ = c.tx.send(Ev::Up(idx, up.instance.clone()));
    loop {
        let Some(at) = hold(&mut up.ws, &mut session, &mut stop).await else {
            return;
        };
        let _ = c.tx.send(Ev::Noticed(idx, at));
        backoff.reset(); // Manager.onclose
        let mut attempts = 0;
        let mut started: Instant;
        up = loop {
            if !pause(backoff.duration(), &mut stop).await {
                return;
            }
            attempts += 1;
            started = Instant::now();
            match tokio::time::timeout(ATTEMPT_TIMEOUT, connect(c.addr, c.source, &c.room, &mut session)).await {
                Ok(Ok(up)) => break up,
                Ok(Err(e)) => drop(c.tx.send(Ev::AttemptFailed(e.to_string()))),
                Err(_) => drop(c.tx.send(Ev::AttemptFailed("no connection within 20 s".into()))),
            }
        };
        backoff.reset(); // Manager.onreconnect
        let (instance, recovered) = (up.instance.clone(), up.recovered);
        let _ = c.tx.send(Ev::Back {
            idx,
            at: Instant::now(),
            instance,
            recovered,
            attempts,
            took: started.elapsed(),
        });
    }
}

/// CPU seconds of `pid`'s child processes (nginx's workers, given its master).
fn children_cpu(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let pids: Vec<u32> = children.split_whitespace().filter_map(|c| c.parse().ok()).collect();
    stats::sample(&pids).1
}

/// Runs the scenario and prints one JSON result line.
pub async fn run(opts: Opts) -> Result<(), String> {
    let clients: usize = opts.num("clients", 6000)?;
    let rooms: usize = opts.num("rooms", 300)?;
    let concurrency: usize = opts.num("concurrency", 200)?;
    let deadline = Duration::from_secs_f64(opts.num("deadline", 30.0)?);
    let settle = Duration::from_secs_f64(opts.num("settle", 2.0)?);
    let setup_deadline = Duration::from_secs_f64(opts.num("setup-deadline", 180.0)?);
    let kill: u32 = opts
        .get("kill")
        .ok_or("--kill PID (the instance to kill -9) is required")?
        .parse()
        .map_err(|_| "--kill: not a pid".to_owned())?;
    let victim = opts
        .get("victim")
        .ok_or("--victim NAME (the killed instance's sid prefix, e.g. sio-2) is required")?
        .to_owned();
    let nginx: Option<u32> = match opts.get("nginx-pid") {
        None => None,
        Some(p) => Some(p.parse().map_err(|_| format!("--nginx-pid: {p:?} is not a pid"))?),
    };
    let servers = opts.servers()?;
    let sources = opts.source_ips()?;
    let pids = opts.pids()?;
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    eprintln!("reconnect-storm: {clients} clients, {rooms} rooms; then kill -9 {kill} ({victim})");
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for idx in 0..clients {
        let shared = Shared {
            addr: servers[idx % servers.len()],
            source: (!sources.is_empty()).then(|| sources[idx % sources.len()]),
            room: format!("restorm-{}", idx % rooms.max(1)),
            gate: gate.clone(),
            tx: tx.clone(),
        };
        tasks.push(tokio::spawn(client(idx, shared, stop_rx.clone())));
    }
    drop(tx);

    // Everyone connected and joined.
    let mut instance_of: Vec<Option<String>> = vec![None; clients];
    let (mut up, mut setup_errors, mut first_error) = (0usize, 0u64, None::<String>);
    let setup_end = tokio::time::Instant::now() + setup_deadline;
    while up < clients {
        match tokio::time::timeout_at(setup_end, rx.recv()).await {
            Ok(Some(Ev::Up(idx, instance))) => {
                instance_of[idx] = Some(instance);
                up += 1;
            }
            Ok(Some(Ev::SetupFailed(e))) => {
                setup_errors += 1;
                first_error.get_or_insert(e);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let setup_s = t0.elapsed().as_secs_f64();
    if up < clients {
        let _ = stop_tx.send(true);
        return Err(format!(
            "only {up}/{clients} clients connected within {setup_deadline:?} ({setup_errors} errors, first: {first_error:?})"
        ));
    }
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for i in instance_of.iter().flatten() {
        *spread.entry(i.clone()).or_default() += 1;
    }
    eprintln!("reconnect-storm: {up} up in {setup_s:.1} s ({spread:?}); settling {settle:?}");
    tokio::time::sleep(settle).await;

    // The kill, and everyone back.
    let moved: Vec<bool> = instance_of
        .iter()
        .map(|i| i.as_deref() == Some(victim.as_str()))
        .collect();
    let moved_n = moved.iter().filter(|m| **m).count();
    if moved_n == 0 {
        let _ = stop_tx.send(true);
        return Err(format!("no client is on {victim:?} (instances: {spread:?})"));
    }
    let (_, cpu0) = stats::sample(&pids);
    let me = std::process::id();
    let (own0, nginx0) = (stats::cpu_seconds(me).unwrap_or(0.0), children_cpu(nginx));
    let t_kill = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-9", &kill.to_string()])
        .status();
    if !killed.is_ok_and(|s| s.success()) {
        let _ = stop_tx.send(true);
        return Err(format!("kill -9 {kill} failed"));
    }
    let (mut noticed, mut back, mut attempt) = (stats::histogram(), stats::histogram(), stats::histogram());
    let mut is_down = vec![false; clients];
    let (mut down, mut moved_back, mut collateral, mut failed_attempts) = (0usize, 0usize, 0usize, 0u64);
    let (mut recovered, mut rejoined, mut first_try) = (0usize, 0usize, 0usize);
    let (mut max_attempts, mut first_attempt_error) = (0u32, None::<String>);
    let mut moved_to: BTreeMap<String, usize> = BTreeMap::new();
    let end = tokio::time::Instant::now() + deadline;
    while moved_back < moved_n || down > 0 {
        let ev = match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => break,
        };
        match ev {
            Ev::Noticed(idx, at) => {
                is_down[idx] = true;
                down += 1;
                collateral += usize::from(!moved[idx]);
                if moved[idx] {
                    let _ = noticed.record((at.saturating_duration_since(t_kill).as_micros() as u64).max(1));
                }
            }
            Ev::Back {
                idx,
                at,
                instance,
                recovered: r,
                attempts,
                took,
            } => {
                is_down[idx] = false;
                down -= 1;
                if moved[idx] {
                    moved_back += 1;
                    let _ = back.record((at.saturating_duration_since(t_kill).as_micros() as u64).max(1));
                    *moved_to.entry(instance).or_default() += 1;
                    let _ = attempt.record((took.as_micros() as u64).max(1));
                }
                if r {
                    recovered += 1
                } else {
                    rejoined += 1
                }
                first_try += usize::from(attempts == 1);
                max_attempts = max_attempts.max(attempts);
            }
            Ev::AttemptFailed(e) => {
                failed_attempts += 1;
                first_attempt_error.get_or_insert(e);
            }
            Ev::Up(..) | Ev::SetupFailed(_) => {}
        }
    }
    let storm_s = t_kill.elapsed().as_secs_f64();
    let (rss, cpu1) = stats::sample(&pids);
    let (own1, nginx1) = (stats::cpu_seconds(me).unwrap_or(0.0), children_cpu(nginx));
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }

    let mut out = opts.header("reconnect-storm");
    out.insert("clients".into(), json!(clients));
    out.insert("rooms".into(), json!(rooms));
    out.insert("connected".into(), json!(up));
    out.insert("setup_s".into(), json!((setup_s * 10.0).round() / 10.0));
    out.insert("setup_errors".into(), json!(setup_errors));
    out.insert("spread".into(), json!(spread));
    out.insert("victim".into(), json!(victim));
    out.insert("moved".into(), json!(moved_n));
    out.insert("moved_back".into(), json!(moved_back));
    out.insert("all_back".into(), json!(moved_back == moved_n && down == 0));
    out.insert("still_down".into(), json!(is_down.iter().filter(|d| **d).count()));
    out.insert("collateral".into(), json!(collateral));
    out.insert("moved_to".into(), json!(moved_to));
    out.insert("recovered".into(), json!(recovered));
    out.insert("rejoined".into(), json!(rejoined));
    out.insert("back_first_attempt".into(), json!(first_try));
    out.insert("max_attempts".into(), json!(max_attempts));
    out.insert("errors".into(), json!(failed_attempts));
    out.insert("first_error".into(), json!(first_attempt_error));
    out.insert("storm_s".into(), json!((storm_s * 100.0).round() / 100.0));
    stats::percentiles(&mut out, "noticed", &noticed);
    stats::percentiles(&mut out, "back", &back);
    // The successful attempt alone (handshake to joined or recovered), without its backoff delay.
    stats::percentiles(&mut out, "attempt", &attempt);
    out.insert("client_cpu_s".into(), json!(((own1 - own0) * 100.0).round() / 100.0));
    if let Some(n) = nginx {
        out.insert("nginx_cpu_s".into(), json!(((nginx1 - nginx0) * 100.0).round() / 100.0));
        out.insert("nginx_pid".into(), json!(n));
    }
    if !pids.is_empty() {
        out.insert("server_cpu_s".into(), json!(((cpu1 - cpu0) * 100.0).round() / 100.0));
        out.insert(
            "server_cpu_us_per_moved".into(),
            json!(((cpu1 - cpu0) * 1e6 / moved_n as f64).round()),
        );
        out.insert("server_rss_kib".into(), json!(rss));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_the_clients() {
        // rand 0.2: floor(2) even, so ms - floor(0.2 * 0.5 * ms).
        let mut b = Backoff::new(1);
        assert_eq!(b.duration_with(0.2), Duration::from_millis(900));
        assert_eq!(b.duration_with(0.2), Duration::from_millis(1800));
        // rand 0.15: floor(1.5) odd, so ms + floor(0.075 * ms).
        assert_eq!(b.duration_with(0.15), Duration::from_millis(4300));
        assert_eq!(b.duration_with(0.0), Duration::from_millis(5000)); // capped
        b.reset();
        assert_eq!(b.duration_with(0.9999), Duration::from_millis(1499));
        for _ in 0..1000 {
            let r = b.random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn session_follows_pid_and_offset() {
        let mut s = Session::default();
        assert_eq!(s.connect_packet(), b"40");
        assert_eq!(s.observe(b"40{\"sid\":\"a\"}"), Seen::Connected { recovered: false });
        // No pid offered: offsets are not tracked.
        assert_eq!(s.observe(b"42[\"message\",{},\"1-0\"]"), Seen::Other);
        assert_eq!(s.connect_packet(), b"40");
        assert_eq!(
            s.observe(b"40{\"sid\":\"a\",\"pid\":\"P\"}"),
            Seen::Connected { recovered: false }
        );
        assert_eq!(s.connect_packet(), b"40{\"pid\":\"P\"}");
        assert_eq!(
            s.observe(b"42[\"welcome\",{\"instanceId\":\"sio-1\"},\"17-3\"]"),
            Seen::Welcome
        );
        assert_eq!(s.observe(b"42[\"message\",{\"id\":\"x\"}]"), Seen::Other); // last arg not a string
        assert_eq!(s.connect_packet(), b"40{\"pid\":\"P\",\"offset\":\"17-3\"}");
        // As the client: the last element, even the event name alone.
        assert_eq!(s.observe(b"42[\"ping\"]"), Seen::Other);
        assert_eq!(s.connect_packet(), b"40{\"pid\":\"P\",\"offset\":\"ping\"}");
        assert_eq!(s.observe(b"42[\"m\",\"17-3\"]"), Seen::Other);
        assert_eq!(
            s.observe(b"40{\"sid\":\"b\",\"pid\":\"P\"}"),
            Seen::Connected { recovered: true }
        );
        assert_eq!(
            s.observe(b"40{\"sid\":\"c\",\"pid\":\"Q\"}"),
            Seen::Connected { recovered: false }
        );
        assert_eq!(
            s.observe(b"430[{\"ok\":true,\"roomId\":\"r\"}]"),
            Seen::Ack { ok: true }
        );
        assert_eq!(s.observe(b"430[{\"ok\":false}]"), Seen::Ack { ok: false });
        assert_eq!(
            s.observe(b"44{\"message\":\"no\"}"),
            Seen::Refused("{\"message\":\"no\"}".into())
        );
        assert_eq!(s.observe(b"2"), Seen::Ping);
        assert_eq!(s.observe(b"6"), Seen::Other);
    }
}
