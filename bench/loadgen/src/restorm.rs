//! `reconnect-storm`: N clients on the stock client's default path through nginx onto three
//! instances, each joined to a room, then `kill -9` of one instance. Each moved client does what
//! socket.io-client 4.8 does: it notices the close, waits the Manager's backoff (1000 ms doubling,
//! ±50 % jitter, at most 5000 ms; reset after a successful reconnect), opens a new session on the
//! default path, sends CONNECT with `{pid, offset}` when the server offered a pid, and rejoins its
//! room unless the CONNECT reply says the session was recovered (same pid). Reports, from the kill:
//! when the moved clients noticed and when they were back (p50/p99/max), whether all came back
//! within the deadline, failed attempts, recovered and rejoined counts.

use crate::sioclient::{Backoff, Seen, Session};
use crate::stats::{self, Opts};
use crate::storm::{Http, open_session};
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
    let mut http = Http::connect(addr, source).await?;
    let (sid, poll_url) = open_session(&mut http, &session.connect_packet()).await?;
    let instance = sid.split_once('.').map_or("", |(i, _)| i).to_owned();
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
    // The instances behind the load balancer, not the addresses the clients were given.
    out.insert("instances".into(), json!(spread.len()));
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
