//! Whether a new session may open: the instance-wide `MAX_CONNECTIONS`, the per-address
//! `HANDSHAKE_RATE_PER_IP`, and the per-address slot policy that keeps one address from taking
//! every slot (`MAX_CONNECTIONS_PER_IP`, `MAX_HALF_OPEN_PER_IP`). An admitted handshake holds an
//! [`AddressSlot`] until its session closes.

use super::conn::ConnHandler;
use crate::engineio::{CloseReason, Data};
use crate::metrics::{METRICS, inc};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most addresses the handshake-rate table keeps; past it, windows older than a second are
/// dropped, and if that is not enough new addresses are refused until a window ends (bounded
/// memory under a spread flood, and no reset of anyone's window).
const RATE_TABLE_MAX: usize = 100_000;

/// Refusals of one kind are logged at most this often (with the number left unlogged).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The admission settings (from `EngineOptions`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Policy {
    /// `MAX_CONNECTIONS`; 0 = no limit.
    pub(crate) max_connections: usize,
    /// `HANDSHAKE_RATE_PER_IP` per second; 0 = off.
    pub(crate) handshake_rate_per_ip: u32,
    /// `MAX_CONNECTIONS_PER_IP`; 0 = off. Applies once half of `max_connections` is in use
    /// (always when `max_connections` is 0).
    pub(crate) max_connections_per_ip: usize,
    /// `MAX_HALF_OPEN_PER_IP`: sessions from one address that have not sent a message yet; 0 = off.
    pub(crate) max_half_open_per_ip: usize,
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `MAX_CONNECTIONS` sessions are open.
    Full,
    /// The address is over `HANDSHAKE_RATE_PER_IP`.
    Rate,
    /// The address holds `MAX_CONNECTIONS_PER_IP` sessions and the instance is at least half full.
    PerAddress,
    /// The address holds `MAX_HALF_OPEN_PER_IP` sessions that have not sent anything yet.
    HalfOpen,
}

impl Refusal {
    /// The message of the 503 body `{"code":4,"message":…}`.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Full => "Server is full",
            Refusal::Rate => "Too many handshakes",
            Refusal::PerAddress => "Too many connections from this address",
            Refusal::HalfOpen => "Too many pending connections from this address",
        }
    }

    fn counter(self) -> &'static AtomicU64 {
        match self {
            Refusal::Full => &METRICS.limit_connections,
            Refusal::Rate => &METRICS.limit_handshake_rate,
            Refusal::PerAddress => &METRICS.limit_connections_per_ip,
            Refusal::HalfOpen => &METRICS.limit_half_open_per_ip,
        }
    }
}

/// Sessions one address holds.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    open: usize,
    half_open: usize,
}

type Book = Mutex<HashMap<IpAddr, Held>>;

/// Decides on handshakes and counts what each address holds.
pub(crate) struct Admission {
    policy: Policy,
    book: Arc<Book>,
    rate: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    logs: [LogGate; 4],
}

impl Admission {
    /// Admission under `policy`.
    pub(crate) fn new(policy: Policy) -> Admission {
        Admission {
            policy,
            book: Default::default(),
            rate: Default::default(),
            logs: Default::default(),
        }
    }

    /// Admits a handshake from `client` while `open` sessions are open, or says why not (the
    /// refusal is counted and logged, rate-limited).
    pub(crate) fn admit(&self, client: IpAddr, open: usize, now: Instant) -> Result<AddressSlot, Refusal> {
        let key = address_key(client);
        let result = self.decide(key, open, now);
        if let Err(refusal) = result {
            inc(refusal.counter());
            if let Some(unlogged) = self.logs[refusal as usize].pass(now) {
                let p = &self.policy;
                let held = self.held(key);
                tracing::warn!(
                    %client,
                    open,
                    held_by_address = held.open,
                    half_open_by_address = held.half_open,
                    max_connections = p.max_connections,
                    max_connections_per_ip = p.max_connections_per_ip,
                    max_half_open_per_ip = p.max_half_open_per_ip,
                    handshake_rate_per_ip = p.handshake_rate_per_ip,
                    refused_since_last_line = unlogged,
                    "handshake refused: {}",
                    refusal.message()
                );
            }
        }
        result
    }

    fn decide(&self, key: IpAddr, open: usize, now: Instant) -> Result<AddressSlot, Refusal> {
        let p = &self.policy;
        if p.max_connections > 0 && open >= p.max_connections {
            return Err(Refusal::Full);
        }
        if p.handshake_rate_per_ip > 0 && !self.within_rate(key, now) {
            return Err(Refusal::Rate);
        }
        if p.max_connections_per_ip == 0 && p.max_half_open_per_ip == 0 {
            return Ok(AddressSlot::untracked());
        }
        let contended = p.max_connections == 0 || open.saturating_mul(2) >= p.max_connections;
        let mut book = self.book.lock();
        let held = book.entry(key).or_default();
        if contended && p.max_connections_per_ip > 0 && held.open >= p.max_connections_per_ip {
            drop_if_empty(&mut book, key);
            return Err(Refusal::PerAddress);
        }
        if p.max_half_open_per_ip > 0 && held.half_open >= p.max_half_open_per_ip {
            drop_if_empty(&mut book, key);
            return Err(Refusal::HalfOpen);
        }
        held.open += 1;
        held.half_open += 1;
        Ok(AddressSlot {
            book: Some(self.book.clone()),
            key,
            state: SlotState::HalfOpen,
        })
    }

    fn within_rate(&self, key: IpAddr, now: Instant) -> bool {
        let mut map = self.rate.lock();
        if map.len() >= RATE_TABLE_MAX {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
            if map.len() >= RATE_TABLE_MAX && !map.contains_key(&key) {
                // More distinct addresses within one second than the table holds: refuse new
                // ones until a window ends, instead of forgetting (and so resetting) everyone's.
                return false;
            }
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.policy.handshake_rate_per_ip
    }

    fn held(&self, key: IpAddr) -> Held {
        let book = self.book.lock();
        book.get(&key).copied().unwrap_or_default()
    }

    /// Addresses holding at least one session.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.book.lock().len()
    }
}

fn drop_if_empty(book: &mut HashMap<IpAddr, Held>, key: IpAddr) {
    if book.get(&key).is_some_and(|h| h.open == 0) {
        book.remove(&key);
    }
}

/// The key one address is counted under: IPv4 as is, IPv6 by its /64 (one subscriber's prefix,
/// which an attacker can fill with addresses at will).
fn address_key(ip: IpAddr) -> IpAddr {
    match super::proxy::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        v4 => v4,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    HalfOpen,
    Active,
    Released,
}

/// One session's place in its address's count; given back when dropped.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    book: Option<Arc<Book>>,
    key: IpAddr,
    state: SlotState,
}

impl AddressSlot {
    fn untracked() -> AddressSlot {
        AddressSlot {
            book: None,
            key: IpAddr::from([0, 0, 0, 0]),
            state: SlotState::Released,
        }
    }

    /// The session sent its first message (the Socket.IO CONNECT): it is no longer half-open.
    fn activate(&mut self) {
        if self.state != SlotState::HalfOpen {
            return;
        }
        self.state = SlotState::Active;
        if let Some(book) = &self.book
            && let Some(h) = book.lock().get_mut(&self.key)
        {
            h.half_open = h.half_open.saturating_sub(1);
        }
    }

    /// Gives the slot back (once).
    fn release(&mut self) {
        let was = std::mem::replace(&mut self.state, SlotState::Released);
        if was == SlotState::Released {
            return;
        }
        let Some(book) = &self.book else { return };
        let mut book = book.lock();
        if let Some(h) = book.get_mut(&self.key) {
            h.open = h.open.saturating_sub(1);
            if was == SlotState::HalfOpen {
                h.half_open = h.half_open.saturating_sub(1);
            }
            if h.open == 0 {
                book.remove(&self.key);
            }
        }
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// A session's handler that also keeps its [`AddressSlot`] up to date.
pub(crate) struct Admitted {
    inner: Box<dyn ConnHandler>,
    slot: AddressSlot,
}

impl Admitted {
    /// Wraps `inner`; `slot` is given back when the session closes.
    pub(crate) fn wrap(inner: Box<dyn ConnHandler>, slot: AddressSlot) -> Box<dyn ConnHandler> {
        if slot.book.is_none() {
            return inner;
        }
        Box::new(Admitted { inner, slot })
    }
}

impl ConnHandler for Admitted {
    fn on_message(&mut self, data: Data, now: Instant) {
        self.slot.activate();
        self.inner.on_message(data, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn on_upgrade(&mut self) {
        self.inner.on_upgrade();
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.slot.release();
        self.inner.on_close(reason);
    }
}

/// Lets one log line through per [`LOG_EVERY`], counting the ones held back.
#[derive(Default)]
struct LogGate {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl LogGate {
    /// `Some(lines held back since the last one)` when a line may be written now.
    fn pass(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock();
        if last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(max: usize, per_ip: usize, half_open: usize) -> Policy {
        Policy {
            max_connections: max,
            handshake_rate_per_ip: 0,
            max_connections_per_ip: per_ip,
            max_half_open_per_ip: half_open,
        }
    }

    #[test]
    fn one_address_cannot_take_every_slot_once_half_full() {
        let a = Admission::new(policy(300, 30, 0));
        let now = Instant::now();
        let mut slots = Vec::new();
        // Below half full nobody is limited per address.
        for open in 0..150 {
            slots.push(a.admit(ip("127.0.0.1"), open, now).unwrap());
        }
        assert_eq!(a.admit(ip("127.0.0.1"), 150, now).unwrap_err(), Refusal::PerAddress);
        // Another address still gets in, up to its own share.
        let mut others = Vec::new();
        for i in 0..30 {
            others.push(a.admit(ip("127.0.0.2"), 150 + i, now).unwrap());
        }
        assert_eq!(a.admit(ip("127.0.0.2"), 180, now).unwrap_err(), Refusal::PerAddress);
        assert_eq!(a.admit(ip("127.0.0.3"), 300, now).unwrap_err(), Refusal::Full);
        // Closing sessions gives slots back; an address holding none is forgotten.
        others.clear();
        assert_eq!(a.addresses(), 1);
        slots.truncate(29);
        assert!(a.admit(ip("127.0.0.1"), 150, now).is_ok());
    }

    #[test]
    fn half_open_sessions_are_capped_until_they_speak() {
        let a = Admission::new(policy(20_000, 0, 3));
        let now = Instant::now();
        let mut slots: Vec<_> = (0..3).map(|_| a.admit(ip("10.0.0.1"), 0, now).unwrap()).collect();
        assert_eq!(a.admit(ip("10.0.0.1"), 3, now).unwrap_err(), Refusal::HalfOpen);
        assert!(
            a.admit(ip("10.0.0.2"), 3, now).is_ok(),
            "other addresses are not affected"
        );
        slots[0].activate();
        slots[0].activate();
        let fourth = a.admit(ip("10.0.0.1"), 3, now).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1"), 4, now).unwrap_err(), Refusal::HalfOpen);
        // A half-open session that closes frees its place too.
        slots[1].release();
        slots[1].release();
        assert!(a.admit(ip("10.0.0.1"), 4, now).is_ok());
        drop(fourth);
        assert_eq!(a.held(ip("10.0.0.1")).open, 2, "slots 0 and 2 are still held");
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        let a = Admission::new(policy(0, 2, 0));
        let now = Instant::now();
        let _s1 = a.admit(ip("2001:db8:1:2::1"), 0, now).unwrap();
        let _s2 = a.admit(ip("2001:db8:1:2::ffff"), 0, now).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:abcd::1"), 0, now).unwrap_err(),
            Refusal::PerAddress,
            "one /64; with no MAX_CONNECTIONS the per-address cap always applies"
        );
        assert!(a.admit(ip("2001:db8:1:3::1"), 0, now).is_ok());
        let _s3 = a.admit(ip("::ffff:192.0.2.1"), 0, now).unwrap();
        let _s4 = a.admit(ip("192.0.2.1"), 0, now).unwrap();
        assert_eq!(a.admit(ip("192.0.2.1"), 0, now).unwrap_err(), Refusal::PerAddress);
    }

    #[test]
    fn handshake_rate_window_resets_each_second() {
        let a = Admission::new(Policy {
            handshake_rate_per_ip: 2,
            ..Policy::default()
        });
        let t0 = Instant::now();
        assert!(a.admit(ip("10.0.0.1"), 0, t0).is_ok());
        assert!(a.admit(ip("10.0.0.1"), 0, t0).is_ok());
        assert_eq!(a.admit(ip("10.0.0.1"), 0, t0).unwrap_err(), Refusal::Rate);
        assert!(a.admit(ip("10.0.0.2"), 0, t0).is_ok());
        assert!(a.admit(ip("10.0.0.1"), 0, t0 + Duration::from_millis(1000)).is_ok());
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second() {
        let g = LogGate::default();
        let t0 = Instant::now();
        assert_eq!(g.pass(t0), Some(0));
        assert_eq!(g.pass(t0 + Duration::from_millis(10)), None);
        assert_eq!(g.pass(t0 + Duration::from_millis(20)), None);
        assert_eq!(g.pass(t0 + Duration::from_millis(1010)), Some(2));
    }
}
