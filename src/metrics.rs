//! Process-wide counters, rendered as Prometheus text at `/metrics`. Plain atomics: recording
//! costs one relaxed increment on the hot path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of this process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Engine.IO sessions opened.
    pub handshakes: AtomicU64,
    /// HTTP requests refused by the Engine.IO endpoint (codes 0–5).
    pub engine_errors: AtomicU64,
    /// Engine.IO messages received.
    pub messages_in: AtomicU64,
    /// Socket.IO packets received, by packet type (0–6).
    pub packets_in: [AtomicU64; 7],
    /// Socket.IO packets queued for clients (one per target socket).
    pub packets_out: AtomicU64,
    /// Broadcasts sent (each encoded once).
    pub broadcasts: AtomicU64,
    /// Deliveries of broadcasts to local sockets.
    pub deliveries: AtomicU64,
    /// Volatile packets dropped because a client was not ready.
    pub dropped_volatile: AtomicU64,
    /// Connections closed for protocol violations.
    pub violations: AtomicU64,
    /// Adapter publishes that failed (Redis unreachable, …).
    pub publish_failures: AtomicU64,
    /// Redis publishes dropped (oldest first) because the publish queue was over its byte limit.
    pub redis_publish_dropped: AtomicU64,
    /// Messages from Redis dropped (oldest first) because the incoming queue was over its byte limit.
    pub redis_incoming_dropped: AtomicU64,
    /// Chat messages rejected by validation.
    pub invalid_messages: AtomicU64,
    /// Redis commands sent.
    pub redis_commands: AtomicU64,
    /// Redis commands that failed or timed out.
    pub redis_command_errors: AtomicU64,
    /// Redis commands slower than 100 ms.
    pub redis_slow_commands: AtomicU64,
    /// Total time spent in Redis commands, µs.
    pub redis_command_micros: AtomicU64,
    /// Times Redis became reachable again after failing.
    pub redis_reconnects: AtomicU64,
    /// Health probes that found Redis unable to serve (see `adapter::redis::probe`).
    pub redis_probe_failures: AtomicU64,
    /// Drops of a subscriber connection (to any node), after which every subscription is re-issued.
    pub redis_subscriber_resets: AtomicU64,
    /// Subscriptions re-issued after a drop, or after Redis ended them (a slot moved).
    pub redis_resubscribes: AtomicU64,
    /// Cluster MOVED redirects received (and followed) by the Redis client.
    pub redis_redirects_moved: AtomicU64,
    /// Cluster ASK redirects received (and followed) by the Redis client.
    pub redis_redirects_ask: AtomicU64,
    /// Connections opened to Cluster nodes (initial ones, topology changes, reconnects).
    pub redis_node_connects: AtomicU64,
    /// Connections to Cluster nodes that failed to open.
    pub redis_node_connect_failures: AtomicU64,
    /// Messages received from other servers through the adapter.
    pub adapter_messages_in: AtomicU64,
    /// Broadcasts from other servers that reached a local socket.
    pub adapter_broadcasts_delivered: AtomicU64,
    /// Broadcasts from other servers that reached no local socket (traffic a room-aware adapter saves).
    pub adapter_broadcasts_unused: AtomicU64,
    /// This server's own broadcasts that Redis delivered back to it (ignored).
    pub adapter_broadcasts_echoed: AtomicU64,
    /// Handshakes refused because the instance is at `MAX_CONNECTIONS`.
    pub limit_connections: AtomicU64,
    /// Handshakes refused by the per-address rate limit.
    pub limit_handshake_rate: AtomicU64,
    /// Handshakes refused by `MAX_CONNECTIONS_PER_IP` (one address holding too many sessions).
    pub limit_connections_per_ip: AtomicU64,
    /// Handshakes refused by `MAX_HALF_OPEN_PER_IP` (one address holding too many silent sessions).
    pub limit_half_open_per_ip: AtomicU64,
    /// Joins refused by `MAX_ROOMS_PER_SOCKET`.
    pub limit_rooms: AtomicU64,
    /// Events dropped by `MAX_EVENT_NAME_LENGTH`.
    pub limit_event_name: AtomicU64,
    /// Emits refused by `MAX_PENDING_ACKS`.
    pub limit_acks: AtomicU64,
    /// Chat messages refused by `CHAT_RATE_MESSAGES` / `CHAT_RATE_BYTES`.
    pub limit_chat_rate: AtomicU64,
    /// Connections closed because their outbound queue stayed full (a client that does not read).
    pub slow_client_disconnects: AtomicU64,
    /// Connections reset because the peer read nothing within the write timeout.
    pub write_timeouts: AtomicU64,
    /// Closed connections reset because their close did not finish within the close deadline.
    pub close_deadline_resets: AtomicU64,
    /// TCP connections closed at accept because too many were open (`ServeOptions::max_connections`).
    pub limit_tcp_connections: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    handshakes: AtomicU64::new(0),
    engine_errors: AtomicU64::new(0),
    messages_in: AtomicU64::new(0),
    packets_in: [const { AtomicU64::new(0) }; 7],
    packets_out: AtomicU64::new(0),
    broadcasts: AtomicU64::new(0),
    deliveries: AtomicU64::new(0),
    dropped_volatile: AtomicU64::new(0),
    violations: AtomicU64::new(0),
    publish_failures: AtomicU64::new(0),
    redis_publish_dropped: AtomicU64::new(0),
    redis_incoming_dropped: AtomicU64::new(0),
    invalid_messages: AtomicU64::new(0),
    redis_commands: AtomicU64::new(0),
    redis_command_errors: AtomicU64::new(0),
    redis_slow_commands: AtomicU64::new(0),
    redis_command_micros: AtomicU64::new(0),
    redis_reconnects: AtomicU64::new(0),
    redis_probe_failures: AtomicU64::new(0),
    redis_subscriber_resets: AtomicU64::new(0),
    redis_resubscribes: AtomicU64::new(0),
    redis_redirects_moved: AtomicU64::new(0),
    redis_redirects_ask: AtomicU64::new(0),
    redis_node_connects: AtomicU64::new(0),
    redis_node_connect_failures: AtomicU64::new(0),
    adapter_messages_in: AtomicU64::new(0),
    adapter_broadcasts_delivered: AtomicU64::new(0),
    adapter_broadcasts_unused: AtomicU64::new(0),
    adapter_broadcasts_echoed: AtomicU64::new(0),
    limit_connections: AtomicU64::new(0),
    limit_handshake_rate: AtomicU64::new(0),
    limit_connections_per_ip: AtomicU64::new(0),
    limit_half_open_per_ip: AtomicU64::new(0),
    limit_rooms: AtomicU64::new(0),
    limit_event_name: AtomicU64::new(0),
    limit_acks: AtomicU64::new(0),
    limit_chat_rate: AtomicU64::new(0),
    slow_client_disconnects: AtomicU64::new(0),
    write_timeouts: AtomicU64::new(0),
    close_deadline_resets: AtomicU64::new(0),
    limit_tcp_connections: AtomicU64::new(0),
};

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

/// Counts a broadcast Redis delivered to an adapter: this server's own (echoed back), or another
/// server's that reached `reached` local sockets (0: unused).
pub fn adapter_broadcast_in(own: bool, reached: usize) {
    let m = &METRICS;
    inc(match (own, reached) {
        (true, _) => &m.adapter_broadcasts_echoed,
        (false, 0) => &m.adapter_broadcasts_unused,
        (false, _) => &m.adapter_broadcasts_delivered,
    });
}

const PACKET_TYPES: [&str; 7] = [
    "connect",
    "disconnect",
    "event",
    "ack",
    "connect_error",
    "binary_event",
    "binary_ack",
];

fn counter(out: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        v.load(Ordering::Relaxed)
    );
}

/// Current values the metrics do not count themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Open Engine.IO sessions.
    pub connections: usize,
    /// Connected sockets, all namespaces.
    pub sockets: usize,
    /// Bytes waiting in outbound queues.
    pub queued_bytes: usize,
}

/// Renders every metric in the Prometheus text format.
pub fn render(g: Gauges) -> String {
    let m = &METRICS;
    let mut out = String::with_capacity(2048);
    let _ = writeln!(
        out,
        "# HELP sio_connections Open Engine.IO sessions.\n# TYPE sio_connections gauge\nsio_connections {}",
        g.connections
    );
    let _ = writeln!(
        out,
        "# HELP sio_sockets Connected Socket.IO sockets.\n# TYPE sio_sockets gauge\nsio_sockets {}",
        g.sockets
    );
    let _ = writeln!(
        out,
        "# HELP sio_outbound_queued_bytes Bytes waiting in outbound queues.\n# TYPE sio_outbound_queued_bytes gauge\nsio_outbound_queued_bytes {}",
        g.queued_bytes
    );
    counter(
        &mut out,
        "sio_handshakes_total",
        "Engine.IO sessions opened.",
        &m.handshakes,
    );
    counter(
        &mut out,
        "sio_engine_request_errors_total",
        "Requests refused by the Engine.IO endpoint.",
        &m.engine_errors,
    );
    counter(
        &mut out,
        "sio_messages_in_total",
        "Engine.IO messages received.",
        &m.messages_in,
    );
    let _ = writeln!(
        out,
        "# HELP sio_packets_in_total Socket.IO packets received, by type.\n# TYPE sio_packets_in_total counter"
    );
    for (i, name) in PACKET_TYPES.iter().enumerate() {
        let _ = writeln!(
            out,
            "sio_packets_in_total{{type=\"{name}\"}} {}",
            m.packets_in[i].load(Ordering::Relaxed)
        );
    }
    counter(
        &mut out,
        "sio_packets_out_total",
        "Socket.IO packets queued for clients.",
        &m.packets_out,
    );
    counter(
        &mut out,
        "sio_broadcasts_total",
        "Broadcasts sent, each encoded once.",
        &m.broadcasts,
    );
    counter(
        &mut out,
        "sio_deliveries_total",
        "Broadcast deliveries to local sockets.",
        &m.deliveries,
    );
    counter(
        &mut out,
        "sio_dropped_volatile_total",
        "Volatile packets dropped (outbound queue not ready).",
        &m.dropped_volatile,
    );
    counter(
        &mut out,
        "sio_protocol_violations_total",
        "Connections closed for protocol violations.",
        &m.violations,
    );
    counter(
        &mut out,
        "sio_adapter_publish_failures_total",
        "Adapter publishes that failed.",
        &m.publish_failures,
    );
    let _ = writeln!(
        out,
        "# HELP sio_redis_queue_dropped_total Redis messages dropped, oldest first, by a full queue (REDIS_QUEUE_BYTES).\n# TYPE sio_redis_queue_dropped_total counter"
    );
    for (queue, v) in [
        ("publish", &m.redis_publish_dropped),
        ("incoming", &m.redis_incoming_dropped),
    ] {
        let _ = writeln!(
            out,
            "sio_redis_queue_dropped_total{{queue=\"{queue}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    counter(
        &mut out,
        "sio_invalid_messages_total",
        "Chat messages rejected by validation.",
        &m.invalid_messages,
    );
    counter(
        &mut out,
        "sio_redis_commands_total",
        "Redis commands sent.",
        &m.redis_commands,
    );
    counter(
        &mut out,
        "sio_redis_command_errors_total",
        "Redis commands that failed or timed out.",
        &m.redis_command_errors,
    );
    counter(
        &mut out,
        "sio_redis_slow_commands_total",
        "Redis commands slower than 100 ms.",
        &m.redis_slow_commands,
    );
    let secs = m.redis_command_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP sio_redis_command_seconds_total Time spent in Redis commands.\n# TYPE sio_redis_command_seconds_total counter\nsio_redis_command_seconds_total {secs}"
    );
    counter(
        &mut out,
        "sio_redis_reconnects_total",
        "Times Redis became reachable again.",
        &m.redis_reconnects,
    );
    counter(
        &mut out,
        "sio_redis_probe_failures_total",
        "Health probes (every 500 ms) that found Redis unable to serve.",
        &m.redis_probe_failures,
    );
    counter(
        &mut out,
        "sio_redis_subscriber_resets_total",
        "Drops of a Redis subscriber connection.",
        &m.redis_subscriber_resets,
    );
    counter(
        &mut out,
        "sio_redis_resubscribes_total",
        "Redis subscriptions re-issued after a drop or a moved slot.",
        &m.redis_resubscribes,
    );
    let _ = writeln!(
        out,
        "# HELP sio_redis_redirects_total Redis Cluster redirects received and followed.\n# TYPE sio_redis_redirects_total counter"
    );
    for (kind, v) in [("moved", &m.redis_redirects_moved), ("ask", &m.redis_redirects_ask)] {
        let _ = writeln!(
            out,
            "sio_redis_redirects_total{{kind=\"{kind}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP sio_redis_node_connections_total Connections opened to Redis Cluster nodes, by result.\n# TYPE sio_redis_node_connections_total counter"
    );
    for (result, v) in [
        ("ok", &m.redis_node_connects),
        ("failed", &m.redis_node_connect_failures),
    ] {
        let _ = writeln!(
            out,
            "sio_redis_node_connections_total{{result=\"{result}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    counter(
        &mut out,
        "sio_adapter_messages_in_total",
        "Messages received from other servers.",
        &m.adapter_messages_in,
    );
    let _ = writeln!(
        out,
        "# HELP sio_adapter_broadcasts_in_total Broadcasts Redis delivered to this server, by outcome: delivered (reached a local socket), unused (reached none), echo (this server's own).\n# TYPE sio_adapter_broadcasts_in_total counter"
    );
    for (outcome, v) in [
        ("delivered", &m.adapter_broadcasts_delivered),
        ("unused", &m.adapter_broadcasts_unused),
        ("echo", &m.adapter_broadcasts_echoed),
    ] {
        let _ = writeln!(
            out,
            "sio_adapter_broadcasts_in_total{{outcome=\"{outcome}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP sio_limit_hits_total Requests refused or dropped by a configured limit.\n# TYPE sio_limit_hits_total counter"
    );
    for (name, v) in [
        ("max_connections", &m.limit_connections),
        ("handshake_rate", &m.limit_handshake_rate),
        ("max_connections_per_ip", &m.limit_connections_per_ip),
        ("max_half_open_per_ip", &m.limit_half_open_per_ip),
        ("max_rooms_per_socket", &m.limit_rooms),
        ("max_event_name_length", &m.limit_event_name),
        ("max_pending_acks", &m.limit_acks),
        ("max_tcp_connections", &m.limit_tcp_connections),
        ("chat_rate", &m.limit_chat_rate),
    ] {
        let _ = writeln!(
            out,
            "sio_limit_hits_total{{limit=\"{name}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    counter(
        &mut out,
        "sio_slow_client_disconnects_total",
        "Connections closed because their outbound queue stayed full.",
        &m.slow_client_disconnects,
    );
    counter(
        &mut out,
        "sio_write_timeouts_total",
        "Connections reset because the peer read nothing within the write timeout.",
        &m.write_timeouts,
    );
    counter(
        &mut out,
        "sio_close_deadline_resets_total",
        "Closed connections reset because the peer did not take the close within the deadline.",
        &m.close_deadline_resets,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_broadcasts_are_counted_by_outcome() {
        let m = &METRICS;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let before = [
            &m.adapter_broadcasts_delivered,
            &m.adapter_broadcasts_unused,
            &m.adapter_broadcasts_echoed,
        ]
        .map(load);
        adapter_broadcast_in(false, 3);
        adapter_broadcast_in(false, 0);
        adapter_broadcast_in(false, 0);
        adapter_broadcast_in(true, 5);
        let after = [
            &m.adapter_broadcasts_delivered,
            &m.adapter_broadcasts_unused,
            &m.adapter_broadcasts_echoed,
        ]
        .map(load);
        // Other tests may count too (the counters are process-wide): at least ours.
        assert!(after[0] - before[0] >= 1);
        assert!(after[1] - before[1] >= 2);
        assert!(after[2] - before[2] >= 1);
    }

    #[test]
    fn renders_prometheus_text() {
        inc(&METRICS.packets_in[2]);
        let text = render(Gauges {
            connections: 3,
            sockets: 2,
            queued_bytes: 0,
        });
        assert!(text.contains("sio_connections 3\n"));
        assert!(text.contains("# TYPE sio_handshakes_total counter\n"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("sio_packets_in_total{type=\"event\"} ") && !l.ends_with(" 0"))
        );
        assert!(text.contains("# TYPE sio_adapter_broadcasts_in_total counter\n"));
        for outcome in ["delivered", "unused", "echo"] {
            assert!(text.contains(&format!("sio_adapter_broadcasts_in_total{{outcome=\"{outcome}\"}} ")));
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
