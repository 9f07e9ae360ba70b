//! What socket.io-client 4.8 keeps and computes across reconnects, sans IO: its reconnection
//! delay (`backo2` with the client's defaults) and its Socket.IO session (`_pid`, `_lastOffset`,
//! `recovered`), read from Engine.IO packets. Used by the `reconnect-storm` scenario.

use serde_json::{Value, json};
use std::time::Duration;

/// socket.io-client's reconnection delay (the `backo2` algorithm it embeds) with the client's
/// defaults: `reconnectionDelay` 1000 ms, `randomizationFactor` 0.5, `reconnectionDelayMax` 5000 ms.
pub struct Backoff {
    attempts: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff whose jitter comes from `seed`.
    pub fn new(seed: u64) -> Backoff {
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
    pub fn duration(&mut self) -> Duration {
        let rand = self.random();
        self.duration_with(rand)
    }

    /// Back to the first delay (`Backoff.prototype.reset`).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// What the stock client keeps of its Socket.IO session across reconnects (`_pid`, `_lastOffset`).
#[derive(Default)]
pub struct Session {
    pid: Option<String>,
    offset: Option<String>,
}

/// One Engine.IO packet as the client sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
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
    pub fn connect_packet(&self) -> Vec<u8> {
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
    pub fn observe(&mut self, p: &[u8]) -> Seen {
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
