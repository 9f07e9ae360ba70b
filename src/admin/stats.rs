//! `server_stats`: what each instance reports every 2 s (serverId, hostname, pid, uptime,
//! clientsCount, pollingClientsCount, aggregatedEvents, namespaces), and the atomic counters
//! behind `aggregatedEvents` (no lock on the delivery path).

use super::observer::AdminObserver;
use crate::engineio::CloseReason;
use crate::server::{Namespace, Server};
use crate::transport::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const CLOSE_REASONS: [CloseReason; 6] = [
    CloseReason::TransportClose,
    CloseReason::TransportError,
    CloseReason::PingTimeout,
    CloseReason::ParseError,
    CloseReason::ForcedClose,
    CloseReason::ServerShuttingDown,
];

/// Counts since the last `server_stats`, in relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    raw_connection: AtomicU64,
    raw_disconnection: [AtomicU64; 6],
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    /// An Engine.IO connection opened.
    pub fn raw_connection(&self) {
        add(&self.raw_connection, 1);
    }

    /// An Engine.IO connection closed.
    pub fn raw_disconnection(&self, reason: CloseReason) {
        let i = CLOSE_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        add(&self.raw_disconnection[i], 1);
    }

    /// A message arrived.
    pub fn packet_in(&self, bytes: usize) {
        add(&self.packets_in, 1);
        add(&self.bytes_in, bytes);
    }

    /// Packets were queued for clients.
    pub fn packets_out(&self, count: usize, bytes: usize) {
        add(&self.packets_out, count);
        add(&self.bytes_out, bytes);
    }

    /// The counts since the last call, as the UI's `aggregatedEvents` (zero counts left out),
    /// stamped with `timestamp` (ms, whole second).
    pub fn drain(&self, timestamp: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut push = |ty: &str, sub: Option<&str>, c: &AtomicU64| {
            let n = c.swap(0, Ordering::Relaxed);
            if n > 0 {
                let mut e = json!({"timestamp": timestamp, "type": ty, "count": n});
                if let Some(s) = sub {
                    e["subType"] = Value::from(s);
                }
                out.push(e);
            }
        };
        push("rawConnection", None, &self.raw_connection);
        for (r, c) in CLOSE_REASONS.iter().zip(&self.raw_disconnection) {
            push(
                "rawDisconnection",
                Some(crate::socketio::DisconnectReason::from(*r).as_str()),
                c,
            );
        }
        push("packetsIn", None, &self.packets_in);
        push("packetsOut", None, &self.packets_out);
        push("bytesIn", None, &self.bytes_in);
        push("bytesOut", None, &self.bytes_out);
        out
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One `server_stats` payload.
pub fn server_stats(io: &Server, engine: &Engine, counters: &Counters, server_id: &str, started: Instant) -> Value {
    let now = crate::time::now_ms();
    let mut namespaces: Vec<Namespace> = io.namespaces();
    namespaces.sort_by(|a, b| a.name().cmp(b.name()));
    json!({
        "serverId": server_id,
        "hostname": hostname(),
        "pid": std::process::id(),
        "uptime": started.elapsed().as_secs_f64(),
        "clientsCount": engine.session_count(),
        "pollingClientsCount": engine.polling_count(),
        "aggregatedEvents": counters.drain(now - now % 1000),
        "namespaces": namespaces
            .iter()
            .map(|n| json!({"name": n.name(), "socketsCount": n.local_len()}))
            .collect::<Vec<_>>(),
    })
}

/// Emits `server_stats` to the cluster's admin UIs now and every [`super::STATS_INTERVAL`].
pub(super) fn spawn(
    io: Server,
    engine: Engine,
    admin: Namespace,
    observer: Arc<AdminObserver>,
    server_id: String,
    started: Instant,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(super::STATS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let stats = server_stats(&io, &engine, &observer.counters, &server_id, started);
            if let Err(e) = admin.emit("server_stats", stats) {
                tracing::debug!(error = %e, "server_stats not sent");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_reports_and_resets() {
        let c = Counters::default();
        c.raw_connection();
        c.raw_disconnection(CloseReason::PingTimeout);
        c.packet_in(10);
        c.packets_out(3, 30);
        let v = c.drain(5000);
        assert_eq!(
            v,
            vec![
                json!({"timestamp": 5000, "type": "rawConnection", "count": 1}),
                json!({"timestamp": 5000, "type": "rawDisconnection", "count": 1, "subType": "ping timeout"}),
                json!({"timestamp": 5000, "type": "packetsIn", "count": 1}),
                json!({"timestamp": 5000, "type": "packetsOut", "count": 3}),
                json!({"timestamp": 5000, "type": "bytesIn", "count": 10}),
                json!({"timestamp": 5000, "type": "bytesOut", "count": 30}),
            ]
        );
        assert!(c.drain(6000).is_empty());
    }
}
