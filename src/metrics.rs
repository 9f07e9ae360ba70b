//! Process-wide metrics, rendered as Prometheus text at `/metrics`. Counters are plain atomics in
//! one static: recording costs one relaxed increment on the hot path, no lock.
//!
//! Every metric is declared once, in the `metrics!` table at the bottom of this file: the table
//! makes the [`Metrics`] field (or the [`Gauges`] field), its initial value and its lines in
//! [`render`], in the table's order. To add a counter, add one entry:
//!
//! ```text
//! /// What it counts (the field's doc).
//! my_events: AtomicU64 => "sio_my_events_total", "HELP text.";
//! ```
//!
//! and count with `metrics::inc(&METRICS.my_events)`. A labeled family is a run of adjacent
//! entries with the same name, each with its label (`{limit = "chat_rate"}`); the first of the
//! run carries the HELP text, the others none. A family indexed by number is one array entry
//! (`packets_in: [AtomicU64; 7] => "…" {type = PACKET_TYPES}, "…"`); a time counted in µs and
//! shown in seconds is a [`Micros`]. A gauge (a value read when `/metrics` is asked for) is an
//! entry of `gauges { … }`: a [`Gauges`] field that `http.rs` fills. `well_formed` (a test) fails
//! when a family is split or a HELP line is missing or repeated.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A time counted in microseconds and rendered in seconds. Derefs to its counter, so
/// `metrics::add(&METRICS.x, micros)` works.
#[derive(Debug, Default)]
pub struct Micros(pub AtomicU64);

impl std::ops::Deref for Micros {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// A metric's storage at process start.
trait Zero {
    /// Every count at zero.
    const ZERO: Self;
}

impl Zero for AtomicU64 {
    const ZERO: Self = AtomicU64::new(0);
}

impl<const N: usize> Zero for [AtomicU64; N] {
    const ZERO: Self = [const { AtomicU64::new(0) }; N];
}

impl Zero for Micros {
    const ZERO: Self = Micros(AtomicU64::new(0));
}

/// How a metric's storage writes its sample lines, given its labels: `()` for none, `(key,
/// value)` for one series of a family, `(key, [values])` for an array.
trait Series<L> {
    /// Writes `name{labels} value` lines.
    fn write(&self, out: &mut String, name: &str, labels: L);
}

impl Series<()> for AtomicU64 {
    fn write(&self, out: &mut String, name: &str, _: ()) {
        let _ = writeln!(out, "{name} {}", self.load(Ordering::Relaxed));
    }
}

impl Series<(&str, &str)> for AtomicU64 {
    fn write(&self, out: &mut String, name: &str, (key, value): (&str, &str)) {
        let _ = writeln!(out, "{name}{{{key}=\"{value}\"}} {}", self.load(Ordering::Relaxed));
    }
}

impl<const N: usize> Series<(&str, [&str; N])> for [AtomicU64; N] {
    fn write(&self, out: &mut String, name: &str, (key, values): (&str, [&str; N])) {
        for (counter, value) in self.iter().zip(values) {
            counter.write(out, name, (key, value));
        }
    }
}

impl Series<()> for Micros {
    fn write(&self, out: &mut String, name: &str, _: ()) {
        let secs = self.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name} {secs}");
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The labels argument of [`Series::write`] for one table entry.
macro_rules! labels {
    () => {
        ()
    };
    ($key:ident = $value:expr) => {
        (stringify!($key), $value)
    };
}

/// Declares every metric once; see the module doc.
macro_rules! metrics {
    (
        gauges {
            $( $(#[$gmeta:meta])* $gauge:ident => $gname:literal, $ghelp:literal; )*
        }
        counters {
            $(
                $(#[$meta:meta])*
                $field:ident: $ty:ty => $name:literal $({ $key:ident = $value:expr })? $(, $help:literal)?;
            )*
        }
    ) => {
        /// Current values the metrics do not count themselves.
        #[derive(Clone, Copy, Debug, Default)]
        pub struct Gauges {
            $( $(#[$gmeta])* pub $gauge: usize, )*
        }

        /// Counters of this process.
        #[derive(Debug)]
        pub struct Metrics {
            $( $(#[$meta])* pub $field: $ty, )*
        }

        impl Metrics {
            /// Every counter at zero.
            pub const fn new() -> Metrics {
                Metrics {
                    $( $field: <$ty as Zero>::ZERO, )*
                }
            }
        }

        /// Renders `m` and `g` in the Prometheus text format, in the table's order.
        fn render_from(m: &Metrics, g: Gauges) -> String {
            let mut out = String::with_capacity(8192);
            $(
                header(&mut out, $gname, $ghelp, "gauge");
                let _ = writeln!(out, "{} {}", $gname, g.$gauge);
            )*
            $(
                $( header(&mut out, $name, $help, "counter"); )?
                m.$field.write(&mut out, $name, labels!($($key = $value)?));
            )*
            out
        }
    };
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

/// Renders every metric in the Prometheus text format.
pub fn render(g: Gauges) -> String {
    render_from(&METRICS, g)
}

/// Socket.IO packet types by wire id, the labels of `sio_packets_in_total`.
const PACKET_TYPES: [&str; 7] = [
    "connect",
    "disconnect",
    "event",
    "ack",
    "connect_error",
    "binary_event",
    "binary_ack",
];

metrics! {
    gauges {
        /// Open Engine.IO sessions.
        connections => "sio_connections", "Open Engine.IO sessions.";
        /// Connected sockets, all namespaces.
        sockets => "sio_sockets", "Connected Socket.IO sockets.";
        /// Bytes waiting in outbound queues.
        queued_bytes => "sio_outbound_queued_bytes", "Bytes waiting in outbound queues.";
    }
    counters {
        /// Engine.IO sessions opened.
        handshakes: AtomicU64 => "sio_handshakes_total", "Engine.IO sessions opened.";
        /// HTTP requests refused by the Engine.IO endpoint (codes 0–5).
        engine_errors: AtomicU64 => "sio_engine_request_errors_total", "Requests refused by the Engine.IO endpoint.";
        /// Engine.IO messages received.
        messages_in: AtomicU64 => "sio_messages_in_total", "Engine.IO messages received.";
        /// Socket.IO packets received, by packet type (0–6).
        packets_in: [AtomicU64; 7] => "sio_packets_in_total" {type = PACKET_TYPES},
            "Socket.IO packets received, by type.";
        /// Socket.IO packets queued for clients (one per target socket).
        packets_out: AtomicU64 => "sio_packets_out_total", "Socket.IO packets queued for clients.";
        /// Broadcasts sent (each encoded once).
        broadcasts: AtomicU64 => "sio_broadcasts_total", "Broadcasts sent, each encoded once.";
        /// Deliveries of broadcasts to local sockets.
        deliveries: AtomicU64 => "sio_deliveries_total", "Broadcast deliveries to local sockets.";
        /// Volatile packets dropped because a client was not ready.
        dropped_volatile: AtomicU64 => "sio_dropped_volatile_total",
            "Volatile packets dropped (outbound queue not ready).";
        /// Connections closed for protocol violations.
        violations: AtomicU64 => "sio_protocol_violations_total", "Connections closed for protocol violations.";
        /// Adapter publishes that failed (Redis unreachable, …).
        publish_failures: AtomicU64 => "sio_adapter_publish_failures_total", "Adapter publishes that failed.";
        /// Redis publishes dropped (oldest first) because the publish queue was over its byte limit.
        redis_publish_dropped: AtomicU64 => "sio_redis_queue_dropped_total" {queue = "publish"},
            "Redis messages dropped, oldest first, by a full queue (REDIS_QUEUE_BYTES).";
        /// Messages from Redis dropped (oldest first) because the incoming queue was over its byte limit.
        redis_incoming_dropped: AtomicU64 => "sio_redis_queue_dropped_total" {queue = "incoming"};
        /// Chat messages rejected by validation.
        invalid_messages: AtomicU64 => "sio_invalid_messages_total", "Chat messages rejected by validation.";
        /// Redis commands sent.
        redis_commands: AtomicU64 => "sio_redis_commands_total", "Redis commands sent.";
        /// Redis commands that failed or timed out.
        redis_command_errors: AtomicU64 => "sio_redis_command_errors_total", "Redis commands that failed or timed out.";
        /// Stream entries (`XADD`) that could not be written (streams adapter).
        streams_xadd_errors: AtomicU64 => "sio_streams_xadd_errors_total", "Stream entries the streams adapter could not write.";
        /// Stream entries read by the streams adapter's reader.
        streams_entries_read: AtomicU64 => "sio_streams_entries_read_total", "Stream entries read by the streams adapter.";
        /// Sessions restored by the streams adapter (another server's included).
        streams_restores: AtomicU64 => "sio_streams_restores_total", "Sessions the streams adapter restored.";
        /// Restores refused by the streams adapter (unknown pid, bad or trimmed offset, too much to replay).
        streams_restores_refused: AtomicU64 => "sio_streams_restores_refused_total", "Restores the streams adapter refused.";
        /// Redis commands slower than 100 ms.
        redis_slow_commands: AtomicU64 => "sio_redis_slow_commands_total", "Redis commands slower than 100 ms.";
        /// Total time spent in Redis commands, µs (shown in seconds).
        redis_command_micros: Micros => "sio_redis_command_seconds_total", "Time spent in Redis commands.";
        /// Times Redis became reachable again after failing.
        redis_reconnects: AtomicU64 => "sio_redis_reconnects_total", "Times Redis became reachable again.";
        /// Health probes that found Redis unable to serve (see `adapter::redis::probe`).
        redis_probe_failures: AtomicU64 => "sio_redis_probe_failures_total",
            "Health probes (every 500 ms) that found Redis unable to serve.";
        /// Drops of a subscriber connection (to any node), after which every subscription is re-issued.
        redis_subscriber_resets: AtomicU64 => "sio_redis_subscriber_resets_total",
            "Drops of a Redis subscriber connection.";
        /// Subscriptions re-issued after a drop, or after Redis ended them (a slot moved).
        redis_resubscribes: AtomicU64 => "sio_redis_resubscribes_total",
            "Redis subscriptions re-issued after a drop or a moved slot.";
        /// Cluster MOVED redirects received (and followed) by the Redis client.
        redis_redirects_moved: AtomicU64 => "sio_redis_redirects_total" {kind = "moved"},
            "Redis Cluster redirects received and followed.";
        /// Cluster ASK redirects received (and followed) by the Redis client.
        redis_redirects_ask: AtomicU64 => "sio_redis_redirects_total" {kind = "ask"};
        /// Connections opened to Cluster nodes (initial ones, topology changes, reconnects).
        redis_node_connects: AtomicU64 => "sio_redis_node_connections_total" {result = "ok"},
            "Connections opened to Redis Cluster nodes, by result.";
        /// Connections to Cluster nodes that failed to open.
        redis_node_connect_failures: AtomicU64 => "sio_redis_node_connections_total" {result = "failed"};
        /// Messages received from other servers through the adapter.
        adapter_messages_in: AtomicU64 => "sio_adapter_messages_in_total", "Messages received from other servers.";
        /// Broadcasts from other servers that reached a local socket.
        adapter_broadcasts_delivered: AtomicU64 => "sio_adapter_broadcasts_in_total" {outcome = "delivered"},
            "Broadcasts Redis delivered to this server, by outcome: delivered (reached a local socket), unused (reached none), echo (this server's own).";
        /// Broadcasts from other servers that reached no local socket (traffic a room-aware adapter saves).
        adapter_broadcasts_unused: AtomicU64 => "sio_adapter_broadcasts_in_total" {outcome = "unused"};
        /// This server's own broadcasts that Redis delivered back to it (ignored).
        adapter_broadcasts_echoed: AtomicU64 => "sio_adapter_broadcasts_in_total" {outcome = "echo"};
        /// Handshakes refused because the instance is at `MAX_CONNECTIONS`.
        limit_connections: AtomicU64 => "sio_limit_hits_total" {limit = "max_connections"},
            "Requests refused or dropped by a configured limit.";
        /// Handshakes refused by the per-address rate limit.
        limit_handshake_rate: AtomicU64 => "sio_limit_hits_total" {limit = "handshake_rate"};
        /// Handshakes refused by `MAX_CONNECTIONS_PER_IP` (one address holding too many sessions).
        limit_connections_per_ip: AtomicU64 => "sio_limit_hits_total" {limit = "max_connections_per_ip"};
        /// Handshakes refused by `MAX_HALF_OPEN_PER_IP` (one address holding too many silent sessions).
        limit_half_open_per_ip: AtomicU64 => "sio_limit_hits_total" {limit = "max_half_open_per_ip"};
        /// Joins refused by `MAX_ROOMS_PER_SOCKET`.
        limit_rooms: AtomicU64 => "sio_limit_hits_total" {limit = "max_rooms_per_socket"};
        /// Events dropped by `MAX_EVENT_NAME_LENGTH`.
        limit_event_name: AtomicU64 => "sio_limit_hits_total" {limit = "max_event_name_length"};
        /// Emits refused by `MAX_PENDING_ACKS`.
        limit_acks: AtomicU64 => "sio_limit_hits_total" {limit = "max_pending_acks"};
        /// TCP connections closed at accept because too many were open (`ServeOptions::max_connections`).
        limit_tcp_connections: AtomicU64 => "sio_limit_hits_total" {limit = "max_tcp_connections"};
        /// Chat messages refused by `CHAT_RATE_MESSAGES` / `CHAT_RATE_BYTES`.
        limit_chat_rate: AtomicU64 => "sio_limit_hits_total" {limit = "chat_rate"};
        /// Connections closed because their outbound queue stayed full (a client that does not read).
        slow_client_disconnects: AtomicU64 => "sio_slow_client_disconnects_total",
            "Connections closed because their outbound queue stayed full.";
        /// Connections reset because the peer read nothing within the write timeout.
        write_timeouts: AtomicU64 => "sio_write_timeouts_total",
            "Connections reset because the peer read nothing within the write timeout.";
        /// Closed connections reset because their close did not finish within the close deadline.
        close_deadline_resets: AtomicU64 => "sio_close_deadline_resets_total",
            "Closed connections reset because the peer did not take the close within the deadline.";
    }
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

    /// The text of a fresh process: names, labels, HELP/TYPE lines and their order are what
    /// dashboards and the JS tests read (captured from the hand-written renderer this replaced).
    #[test]
    fn renders_the_same_text_as_before() {
        let text = render_from(&Metrics::new(), Gauges::default());
        assert_eq!(text, include_str!("../tests/fixtures/metrics-zero.prom"));
    }

    /// Every metric has one HELP and one TYPE line, right before its samples, which are adjacent.
    #[test]
    fn well_formed() {
        let text = render_from(&Metrics::new(), Gauges::default());
        let mut seen = std::collections::HashSet::new();
        let mut current: Option<&str> = None;
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.is_empty(), "{line}");
                assert!(seen.insert(name.to_owned()), "second HELP for {name}");
                let ty = lines.next().unwrap();
                assert!(
                    ty == format!("# TYPE {name} counter") || ty == format!("# TYPE {name} gauge"),
                    "{ty}"
                );
                current = Some(name);
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(Some(name), current, "{line} is not under its own HELP line");
        }
        assert!(seen.len() > 30, "{}", seen.len());
    }

    #[test]
    fn micros_render_as_seconds() {
        let m = Metrics::new();
        add(&m.redis_command_micros, 1_500_000);
        let text = render_from(&m, Gauges::default());
        assert!(text.contains("\nsio_redis_command_seconds_total 1.5\n"), "{text}");
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
