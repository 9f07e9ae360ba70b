//! `echo`: C clients, each with one `echo` ack in flight at a time; ack round trips per second
//! and their latency.

use crate::proto::{self, Proto, now_us};
use crate::stats::{self, Opts};
use crate::ws::Op;
use hdrhistogram::Histogram;
use serde_json::json;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// One client's loop: emit, wait for the matching ack, record, repeat until `stop`.
async fn client(mut ws: crate::ws::Ws, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> io::Result<Histogram<u32>> {
    let mut hist = stats::histogram();
    let mut id = 0u64;
    while !stop.load(Relaxed) {
        id += 1;
        let sent = now_us();
        ws.send_text(format!("42{id}[\"echo\",{{\"ts\":{sent},\"text\":\"ping from the bench\"}}]").as_bytes())
            .await?;
        let prefix = format!("43{id}[");
        'wait: loop {
            while let Some((op, from, to)) = ws.next_frame()? {
                let p = ws.payload(from, to);
                match op {
                    Op::Text if p.starts_with(prefix.as_bytes()) => break 'wait,
                    Op::Text if p == b"2" => ws.send_text(b"3").await?,
                    Op::Close => return Err(io::Error::other("closed by server")),
                    _ => {}
                }
            }
            if !ws.fill().await? {
                return Err(io::Error::other("connection closed"));
            }
        }
        let _ = hist.record(now_us().saturating_sub(sent).max(1));
        done.fetch_add(1, Relaxed);
    }
    Ok(hist)
}

/// Runs the scenario and prints one JSON result line.
pub async fn run(opts: Opts) -> Result<(), String> {
    let proto = Proto::parse(opts.get("proto").unwrap_or("sio"))?;
    if proto != Proto::Sio {
        return Err("echo needs --proto sio (acks are a Socket.IO feature)".into());
    }
    let clients: usize = opts.num("clients", 50)?;
    let duration = Duration::from_secs_f64(opts.num("duration", 5.0)?);
    let servers = opts.servers()?;
    let pids = opts.pids()?;
    let mut conns = Vec::new();
    for i in 0..clients {
        conns.push(
            proto::open(servers[i % servers.len()], None, proto)
                .await
                .map_err(|e| format!("connect: {e}"))?,
        );
    }
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (_, cpu0) = stats::sample(&pids);
    let t0 = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::spawn(client(ws, stop.clone(), done.clone())))
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Relaxed);
    let (elapsed, acks) = (t0.elapsed().as_secs_f64(), done.load(Relaxed));
    let (rss, cpu1) = stats::sample(&pids);
    let (mut hist, mut errors) = (stats::histogram(), 0u64);
    for t in tasks {
        match t.await {
            Ok(Ok(h)) => stats::merge(&mut hist, &h),
            _ => errors += 1,
        }
    }
    let mut out = opts.header("echo");
    out.insert("clients".into(), json!(clients));
    out.insert("seconds".into(), json!((elapsed * 100.0).round() / 100.0));
    out.insert("acks_per_s".into(), json!((acks as f64 / elapsed).round()));
    stats::percentiles(&mut out, "rtt", &hist);
    out.insert("errors".into(), json!(errors));
    if !pids.is_empty() {
        out.insert(
            "server_cpu_pct".into(),
            json!(((cpu1 - cpu0) / elapsed * 1000.0).round() / 10.0),
        );
        out.insert("server_rss_kib".into(), json!(rss));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
