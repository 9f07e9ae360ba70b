//! `connect`: N clients opened at a given rate, then held idle. The parent process spreads the
//! clients over worker processes (each under the open-files limit, each from its own source
//! addresses), measures the server's RSS before and while they are held, and merges the workers'
//! handshake latencies and disconnect counts into one result line.

use crate::proto::{self, Proto};
use crate::stats::{self, Opts};
use crate::ws::Op;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Holds one connection open, answering pings, until the process exits.
async fn hold(mut ws: crate::ws::Ws, disconnects: Arc<AtomicU64>) {
    loop {
        if !matches!(ws.fill().await, Ok(true)) {
            break;
        }
        let mut pong = false;
        loop {
            match ws.next_frame() {
                Ok(Some((Op::Text, from, to))) if ws.payload(from, to) == b"2" => pong = true,
                Ok(Some((Op::Close, _, _))) | Err(_) => {
                    disconnects.fetch_add(1, Relaxed);
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        if pong && ws.send_text(b"3").await.is_err() {
            break;
        }
    }
    disconnects.fetch_add(1, Relaxed);
}

/// A worker: opens its share of clients, reports, waits for the go line, holds, reports.
pub async fn worker(opts: Opts) -> Result<(), String> {
    let servers = opts.servers()?;
    let sources = opts.source_ips()?;
    let proto = Proto::parse(opts.get("proto").unwrap_or("sio"))?;
    let clients: usize = opts.num("clients", 1000)?;
    let offset: usize = opts.num("offset", 0)?;
    let rate: f64 = opts.num("rate", 1000.0)?;
    let hold_for = Duration::from_secs_f64(opts.num("hold", 10.0)?);
    let disconnects = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let start = tokio::time::Instant::now();
    for i in offset..offset + clients {
        tokio::time::sleep_until(start + Duration::from_secs_f64((i - offset) as f64 / rate)).await;
        let addr = servers[i % servers.len()];
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        let (done, disconnects) = (done_tx.clone(), disconnects.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let open = tokio::time::timeout(Duration::from_secs(30), proto::open(addr, source, proto));
            match open
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 30 s")))
            {
                Ok(ws) => {
                    let _ = done.send(Ok(t.elapsed().as_micros() as u64));
                    hold(ws, disconnects).await;
                }
                Err(e) => {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        });
    }
    let (mut hist, mut errors, mut first_error) = (stats::histogram(), 0u64, None);
    for _ in 0..clients {
        match done_rx.recv().await {
            Some(Ok(us)) => {
                let _ = hist.record(us.max(1));
            }
            Some(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            None => break,
        }
    }
    let connected = hist.len();
    let before_hold = disconnects.load(Relaxed);
    println!(
        "{}",
        json!({"ready": true, "connected": connected, "errors": errors, "first_error": first_error})
    );
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(hold_for).await;
    let values: Vec<[u64; 2]> = hist
        .iter_recorded()
        .map(|v| [v.value_iterated_to(), u64::from(v.count_at_value())])
        .collect();
    let during = disconnects.load(Relaxed) - before_hold;
    println!(
        "{}",
        json!({"disconnects": during, "disconnects_before_hold": before_hold, "hist": values})
    );
    std::process::exit(0);
}

/// The parent: spawns the workers and prints the merged result line.
pub fn run(opts: Opts, args: &[String]) -> Result<(), String> {
    let clients: usize = opts.num("clients", 1000)?;
    let processes: usize = opts.num("processes", clients.div_ceil(5000).max(1))?;
    let rate: f64 = opts.num("rate", 2000.0)?;
    let pids = opts.pids()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let passthrough: Vec<&String> = args
        .chunks(2)
        .filter(|kv| !matches!(kv[0].as_str(), "--clients" | "--processes" | "--rate" | "--offset"))
        .flatten()
        .collect();
    let (rss_before, _) = stats::sample(&pids);
    eprintln!("connect: {clients} clients at {rate}/s from {processes} processes");
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for p in 0..processes {
        let share = clients / processes + usize::from(p < clients % processes);
        let offset: usize = (0..p)
            .map(|q| clients / processes + usize::from(q < clients % processes))
            .sum();
        let child = Command::new(&exe)
            .arg("connect-worker")
            .args(&passthrough)
            .args(["--clients", &share.to_string(), "--offset", &offset.to_string()])
            .args(["--rate", &(rate / processes as f64).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning a worker: {e}"))?;
        workers.push(child);
    }
    let mut readers: Vec<_> = workers
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("piped stdout")))
        .collect();
    let read_json = |r: &mut BufReader<std::process::ChildStdout>| -> Result<Value, String> {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        serde_json::from_str(&line).map_err(|_| format!("a worker failed (printed {line:?})"))
    };
    let (mut connected, mut errors, mut first_error) = (0u64, 0u64, Value::Null);
    for r in readers.iter_mut() {
        let v = read_json(r)?;
        connected += v["connected"].as_u64().unwrap_or(0);
        errors += v["errors"].as_u64().unwrap_or(0);
        if first_error.is_null() {
            first_error = v["first_error"].clone();
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    eprintln!("connect: {connected} connected, {errors} errors in {connect_secs:.1}s; settling");
    std::thread::sleep(Duration::from_secs(2));
    let (rss_held, _) = stats::sample(&pids);
    for w in workers.iter_mut() {
        let _ = w.stdin.as_mut().expect("piped stdin").write_all(b"go\n");
    }
    let hold: f64 = opts.num("hold", 10.0)?;
    eprintln!("connect: holding for {hold}s");
    std::thread::sleep(Duration::from_secs_f64(hold * 0.9));
    let (rss_end, _) = stats::sample(&pids);
    let (mut hist, mut disconnects, mut before_hold) = (stats::histogram(), 0u64, 0u64);
    for r in readers.iter_mut() {
        let v = read_json(r)?;
        disconnects += v["disconnects"].as_u64().unwrap_or(0);
        before_hold += v["disconnects_before_hold"].as_u64().unwrap_or(0);
        for pair in v["hist"].as_array().into_iter().flatten() {
            let count = u32::try_from(pair[1].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
            let _ = hist.record_n(pair[0].as_u64().unwrap_or(1), count);
        }
    }
    for mut w in workers {
        let _ = w.wait();
    }
    let mut out = opts.header("connect");
    out.insert("proto".into(), json!(opts.get("proto").unwrap_or("sio")));
    out.insert("clients".into(), json!(clients));
    out.insert("processes".into(), json!(processes));
    out.insert("connected".into(), json!(connected));
    out.insert("errors".into(), json!(errors));
    out.insert("first_error".into(), first_error);
    out.insert("connect_per_s".into(), json!((connected as f64 / connect_secs).round()));
    stats::percentiles(&mut out, "handshake", &hist);
    out.insert("hold_s".into(), json!(hold));
    out.insert("disconnects_before_hold".into(), json!(before_hold));
    out.insert("disconnects_during_hold".into(), json!(disconnects));
    if !pids.is_empty() {
        let per =
            |rss: u64| ((rss.saturating_sub(rss_before)) as f64 / connected.max(1) as f64 * 100.0).round() / 100.0;
        out.insert("server_rss_before_kib".into(), json!(rss_before));
        out.insert("server_rss_held_kib".into(), json!(rss_held));
        out.insert("server_rss_end_kib".into(), json!(rss_end));
        // Right after connecting, and at the end of the hold (idle steady state: each connection
        // has been through a heartbeat when the hold is longer than the ping interval).
        out.insert("rss_per_conn_connected_kib".into(), json!(per(rss_held)));
        out.insert("rss_per_conn_kib".into(), json!(per(rss_end)));
    }
    println!("{}", Value::Object(out));
    Ok(())
}
