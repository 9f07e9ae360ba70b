//! `fanout`: R receivers in one room, S senders emitting `message` into it. Closed loop (a fixed
//! number of messages in flight, the next sent as deliveries complete) or open loop (a fixed
//! offered rate of deliveries/s). Reports deliveries/s, end-to-end latency from the sender's
//! timestamp, and messages lost (expected deliveries that never arrived).
//!
//! `--transport polling` puts the receivers on HTTP long-polling only (the stock client with
//! `transports: ["polling"]`, see [`crate::polling`]); senders stay on WebSocket.

use crate::polling;
use crate::proto::{self, Incoming, Proto, now_us};
use crate::stats::{self, Opts};
use crate::ws::{Op, Ws};
use hdrhistogram::Histogram;
use serde_json::json;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};

const ROOM: &str = "bench";
/// How long one client's connect (and join) may take before the run fails.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters shared by every task of a run.
#[derive(Default)]
struct Shared {
    /// Messages emitted by senders.
    sent: AtomicU64,
    /// Deliveries seen by receivers.
    received: AtomicU64,
    /// Whether receivers record latencies now (the measurement window).
    recording: AtomicBool,
    /// Connections the server closed during the run.
    disconnects: AtomicU64,
    /// Polling GETs answered (polling receivers only).
    polls: AtomicU64,
    /// Woken when deliveries arrive (closed-loop senders wait on it).
    progress: Notify,
}

impl Shared {
    /// Counts `n` deliveries read in one go (waking the closed-loop senders), and a close seen
    /// with them; returns whether the receiver's connection is over.
    fn tally(&self, n: u64, closed: bool) -> bool {
        if n > 0 {
            self.received.fetch_add(n, Relaxed);
            self.progress.notify_waiters();
        }
        if closed {
            self.disconnects.fetch_add(1, Relaxed);
        }
        closed
    }
}

/// Connects `count` clients spread over `servers`, `conc` handshakes at a time.
async fn connect_all(opts: &Opts, count: usize, offset: usize, join: bool) -> Result<Vec<Ws>, String> {
    let servers = opts.servers()?;
    let sources = opts.source_ips()?;
    let proto = Proto::parse(opts.get("proto").unwrap_or("sio"))?;
    let gate = Arc::new(Semaphore::new(opts.num("connect-concurrency", 100)?));
    let tasks: Vec<_> = (offset..offset + count)
        .map(|i| {
            let (addr, gate) = (servers[i % servers.len()], gate.clone());
            let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
            tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let late = |what: &str| io::Error::other(format!("no {what} from {addr} within {HANDSHAKE_TIMEOUT:?}"));
                let mut ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, proto::open(addr, source, proto))
                    .await
                    .map_err(|_| late("handshake answer"))??;
                if join {
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, proto::join(&mut ws, proto, ROOM))
                        .await
                        .map_err(|_| late("join ack"))??;
                }
                Ok::<Ws, io::Error>(ws)
            })
        })
        .collect();
    collect(tasks, "connect").await
}

/// Reads deliveries until told to stop; returns the latencies recorded in the window.
async fn receive(mut ws: Ws, proto: Proto, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Histogram<u32> {
    let mut hist = stats::histogram();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = ws.fill() => {
                if !matches!(r, Ok(true)) {
                    shared.disconnects.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
        let now = now_us();
        let recording = shared.recording.load(Relaxed);
        let (mut n, mut pong, mut closed) = (0u64, false, false);
        loop {
            match ws.next_frame() {
                Ok(Some((Op::Text | Op::Binary, from, to))) => match proto::classify(proto, ws.payload(from, to)) {
                    Incoming::Delivery(ts) => {
                        n += 1;
                        if let (true, Some(ts)) = (recording, ts) {
                            let _ = hist.record(now.saturating_sub(ts).max(1));
                        }
                    }
                    Incoming::Ping => pong = true,
                    Incoming::Other => {}
                },
                Ok(Some((Op::Close, _, _))) | Err(_) => closed = true,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
            if closed {
                break;
            }
        }
        if shared.tally(n, closed) {
            break;
        }
        if pong && ws.send_text(b"3").await.is_err() {
            shared.disconnects.fetch_add(1, Relaxed);
            break;
        }
    }
    hist
}

/// Connects `count` polling-only receivers and joins them to the room, `conc` at a time.
async fn connect_polling(opts: &Opts, count: usize) -> Result<Vec<polling::Client>, String> {
    let servers = opts.servers()?;
    let sources = opts.source_ips()?;
    let gate = Arc::new(Semaphore::new(opts.num("connect-concurrency", 100)?));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (addr, gate) = (servers[i % servers.len()], gate.clone());
            let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
            tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let joined = async {
                    let mut c = polling::Client::open(addr, source).await?;
                    c.join(ROOM).await?;
                    Ok::<_, io::Error>(c)
                };
                tokio::time::timeout(HANDSHAKE_TIMEOUT, joined).await.map_err(|_| {
                    io::Error::other(format!(
                        "polling client of {addr} not joined within {HANDSHAKE_TIMEOUT:?}"
                    ))
                })?
            })
        })
        .collect();
    collect(tasks, "connect (polling)").await
}

/// A polling receiver: one GET outstanding at a time, pongs POSTed alongside the next GET.
async fn receive_polling(
    mut c: polling::Client,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u32> {
    let mut hist = stats::histogram();
    let mut pong = false;
    loop {
        let polled = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = c.poll(pong) => r,
        };
        if polled.is_err() {
            shared.disconnects.fetch_add(1, Relaxed);
            break;
        }
        shared.polls.fetch_add(1, Relaxed);
        let now = now_us();
        let recording = shared.recording.load(Relaxed);
        let (mut n, mut closed) = (0u64, false);
        pong = false;
        for p in polling::packets(c.payload()) {
            match proto::classify(Proto::Sio, p) {
                Incoming::Delivery(ts) => {
                    n += 1;
                    if let (true, Some(ts)) = (recording, ts) {
                        let _ = hist.record(now.saturating_sub(ts).max(1));
                    }
                }
                Incoming::Ping => pong = true,
                Incoming::Other => closed |= p == b"1",
            }
        }
        if shared.tally(n, closed) {
            break;
        }
    }
    hist
}

/// Answers pings and drops anything else a sender receives, without waiting.
fn drain_sender(ws: &mut Ws) -> io::Result<bool> {
    ws.try_fill()?;
    let mut pong = false;
    while let Some((op, from, to)) = ws.next_frame()? {
        if op == Op::Text && ws.payload(from, to) == b"2" {
            pong = true;
        }
    }
    Ok(pong)
}

struct SendPlan {
    proto: Proto,
    receivers: u64,
    /// Closed loop: messages in flight across all senders. Open loop: unused.
    window: u64,
    /// Open loop: interval between this sender's messages.
    interval: Option<Duration>,
}

async fn send(mut ws: Ws, id: usize, plan: Arc<SendPlan>, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut ticker = plan.interval.map(|i| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + i.mul_f64(id as f64 / 7.0 % 1.0), i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let start = (Instant::now(), now_us());
    let mut seq = 0u64;
    while !*stop.borrow() {
        let ts = match ticker.as_mut() {
            Some(t) => {
                let at = t.tick().await;
                // The scheduled time, so a late send counts against latency (no coordinated omission).
                start.1 + at.into_std().saturating_duration_since(start.0).as_micros() as u64
            }
            None => {
                loop {
                    let notified = shared.progress.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let in_flight = shared.sent.load(Relaxed) * plan.receivers - shared.received.load(Relaxed);
                    if in_flight < plan.window * plan.receivers || *stop.borrow() {
                        break;
                    }
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                now_us()
            }
        };
        if *stop.borrow() {
            break;
        }
        seq += 1;
        shared.sent.fetch_add(1, Relaxed);
        let frame = proto::message_frame(plan.proto, ROOM, id, seq, ts);
        let pong = drain_sender(&mut ws).unwrap_or(false);
        let sent = if plan.proto == Proto::Msgpack {
            ws.send_binary(&frame).await
        } else {
            ws.send_text(&frame).await
        };
        if sent.is_err() || (pong && ws.send_text(b"3").await.is_err()) {
            shared.disconnects.fetch_add(1, Relaxed);
            break;
        }
    }
}

/// Runs the scenario and prints one JSON result line.
pub async fn run(opts: Opts) -> Result<(), String> {
    let proto = Proto::parse(opts.get("proto").unwrap_or("sio"))?;
    let receivers: usize = opts.num("receivers", 1000)?;
    let senders: usize = opts.num("senders", 4)?;
    let warmup = Duration::from_secs_f64(opts.num("warmup", 2.0)?);
    let duration = Duration::from_secs_f64(opts.num("duration", 10.0)?);
    let rate: f64 = opts.num("rate", 0.0)?;
    let window: u64 = opts.num("window", 32)?;
    let pids = opts.pids()?;
    if receivers == 0 || senders == 0 {
        return Err("--receivers and --senders must be at least 1".into());
    }
    let transport = opts.get("transport").unwrap_or("websocket");
    let polling = match transport {
        "websocket" => false,
        "polling" if proto == Proto::Sio => true,
        "polling" => return Err("--transport polling needs --proto sio".into()),
        other => return Err(format!("--transport: expected websocket or polling, got {other:?}")),
    };

    eprintln!("fanout: connecting {receivers} receivers ({transport}) and {senders} senders");
    let (rss_idle, _) = stats::sample(&pids);
    let (rx, rx_polling) = if polling {
        (Vec::new(), connect_polling(&opts, receivers).await?)
    } else {
        (connect_all(&opts, receivers, 0, true).await?, Vec::new())
    };
    let tx = connect_all(&opts, senders, receivers, false).await?;
    let (rss_connected, _) = stats::sample(&pids);

    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_send_tx, stop_send_rx) = watch::channel(false);
    let rx_tasks: Vec<_> = rx
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, proto, shared.clone(), stop_rx.clone())))
        .chain(
            rx_polling
                .into_iter()
                .map(|c| tokio::spawn(receive_polling(c, shared.clone(), stop_rx.clone()))),
        )
        .collect();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(senders as f64 * receivers as f64 / rate));
    let plan = Arc::new(SendPlan {
        proto,
        receivers: receivers as u64,
        window,
        interval,
    });
    let tx_tasks: Vec<_> = tx
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(send(ws, i, plan.clone(), shared.clone(), stop_send_rx.clone())))
        .collect();

    eprintln!("fanout: warming up for {warmup:?}");
    tokio::time::sleep(warmup).await;
    let (_, cpu0) = stats::sample(&pids);
    let (t0, got0, polls0) = (
        Instant::now(),
        shared.received.load(Relaxed),
        shared.polls.load(Relaxed),
    );
    shared.recording.store(true, Relaxed);
    eprintln!("fanout: measuring for {duration:?}");
    tokio::time::sleep(duration).await;
    shared.recording.store(false, Relaxed);
    let (elapsed, got1) = (t0.elapsed().as_secs_f64(), shared.received.load(Relaxed));
    let polls = shared.polls.load(Relaxed) - polls0;
    let (rss_loaded, cpu1) = stats::sample(&pids);

    let _ = stop_send_tx.send(true);
    for t in tx_tasks {
        let _ = t.await;
    }
    let expected = shared.sent.load(Relaxed) * receivers as u64;
    let drain_limit: f64 = opts.num("drain", 10.0)?;
    let drain_start = Instant::now();
    let mut last = (shared.received.load(Relaxed), Instant::now());
    while shared.received.load(Relaxed) < expected && drain_start.elapsed().as_secs_f64() < drain_limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.received.load(Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let mut hist = stats::histogram();
    for t in rx_tasks {
        if let Ok(h) = t.await {
            stats::merge(&mut hist, &h);
        }
    }
    let received = shared.received.load(Relaxed);

    let mut out = opts.header("fanout");
    out.insert("proto".into(), json!(opts.get("proto").unwrap_or("sio")));
    out.insert("transport".into(), json!(transport));
    out.insert("mode".into(), json!(if rate > 0.0 { "open" } else { "closed" }));
    out.insert("receivers".into(), json!(receivers));
    out.insert("senders".into(), json!(senders));
    out.insert(
        "offered_per_s".into(),
        if rate > 0.0 { json!(rate) } else { json!(null) },
    );
    out.insert("window".into(), if rate > 0.0 { json!(null) } else { json!(window) });
    out.insert("seconds".into(), json!((elapsed * 100.0).round() / 100.0));
    out.insert(
        "deliveries_per_s".into(),
        json!(((got1 - got0) as f64 / elapsed).round()),
    );
    if polling {
        // How many deliveries one GET carried on average: the server's batching.
        out.insert("polls_per_s".into(), json!((polls as f64 / elapsed).round()));
        out.insert(
            "deliveries_per_poll".into(),
            json!(((got1 - got0) as f64 / polls.max(1) as f64 * 10.0).round() / 10.0),
        );
    }
    stats::percentiles(&mut out, "latency", &hist);
    out.insert("messages_sent".into(), json!(shared.sent.load(Relaxed)));
    out.insert("deliveries_expected".into(), json!(expected));
    out.insert("deliveries_received".into(), json!(received));
    out.insert("lost".into(), json!(expected.saturating_sub(received)));
    out.insert("duplicates".into(), json!(received.saturating_sub(expected)));
    out.insert("disconnects".into(), json!(shared.disconnects.load(Relaxed)));
    if !pids.is_empty() {
        out.insert(
            "server_cpu_pct".into(),
            json!(((cpu1 - cpu0) / elapsed * 1000.0).round() / 10.0),
        );
        out.insert(
            "server_cpu_us_per_delivery".into(),
            json!(((cpu1 - cpu0) * 1e6 / (got1 - got0).max(1) as f64 * 100.0).round() / 100.0),
        );
        out.insert("server_rss_idle_kib".into(), json!(rss_idle));
        out.insert("server_rss_connected_kib".into(), json!(rss_connected));
        out.insert("server_rss_loaded_kib".into(), json!(rss_loaded));
    }
    if let Some(cpu) = stats::cpu_seconds(std::process::id()) {
        out.insert("client_cpu_s".into(), json!((cpu * 100.0).round() / 100.0));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// Awaits the connecting tasks in order; the first failure names `what` it was.
async fn collect<T>(tasks: Vec<tokio::task::JoinHandle<io::Result<T>>>, what: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            t.await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{what}: {e}"))?,
        );
    }
    Ok(out)
}
