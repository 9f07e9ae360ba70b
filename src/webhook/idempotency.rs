//! `Idempotency-Key`: a retried request with the same key within 10 minutes gets the first
//! request's answer and is not delivered again; a retry that arrives while the first is still in
//! flight waits for it (up to a deadline). Each key is tied to a fingerprint of its route and body:
//! the same key with another body is refused. The store is an LRU bounded in keys and in bytes.
//!
//! A [`Slot`] is the right to answer a key first. Dropping it unfinished (the request was cancelled)
//! removes the key and wakes the waiters, one of which then handles the request afresh.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long answers are remembered.
pub const TTL: Duration = Duration::from_secs(600);
/// Most keys remembered (least recently used answers are evicted first).
pub const MAX_KEYS: usize = 100_000;
/// Most bytes remembered (keys and answers, with a per-entry overhead).
pub const MAX_BYTES: usize = 64 << 20;
/// Most keys in flight at once; past it new keys are refused (`Begin::Full`).
pub const MAX_IN_FLIGHT: usize = 10_000;
/// Bytes counted for an entry beyond its key and answer (map slots, LRU node, fingerprint).
const ENTRY_OVERHEAD: usize = 160;

/// A remembered answer: status and JSON body.
pub type Reply = (u16, String);

/// SHA-256 of the route and the raw body a key was first used with.
pub type Fingerprint = [u8; 32];

/// The fingerprint of a request to `route` with `body`.
pub fn fingerprint(route: &str, body: &[u8]) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

enum State {
    InFlight(watch::Receiver<Option<Reply>>),
    Done { reply: Reply, at: Instant, tick: u64 },
}

struct Entry {
    fingerprint: Fingerprint,
    generation: u64,
    state: State,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        matches!(self.state, State::Done { at, .. } if now.saturating_duration_since(at) >= TTL)
    }
}

fn cost(key: &str, reply: Option<&Reply>) -> usize {
    key.len() + reply.map_or(0, |r| r.1.len()) + ENTRY_OVERHEAD
}

/// Bounds of the store.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most keys.
    pub max_keys: usize,
    /// Most bytes.
    pub max_bytes: usize,
    /// Most keys in flight.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys: MAX_KEYS,
            max_bytes: MAX_BYTES,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    /// Finished entries by last use (oldest first): the eviction order.
    lru: BTreeMap<u64, String>,
    ticks: u64,
    bytes: usize,
    in_flight: usize,
    evicted: u64,
}

impl Store {
    fn tick(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            match e.state {
                State::InFlight(_) => {
                    self.in_flight -= 1;
                    self.bytes -= cost(key, None);
                }
                State::Done { reply, tick, .. } => {
                    self.lru.remove(&tick);
                    self.bytes -= cost(key, Some(&reply));
                }
            }
        }
    }

    /// Drops expired answers from the old end, then least recently used ones until within limits.
    fn trim(&mut self, limits: &Limits, now: Instant) {
        while let Some((_, key)) = self.lru.first_key_value() {
            let expired = self.map.get(key).is_some_and(|e| e.expired(now));
            let over = self.map.len() > limits.max_keys || self.bytes > limits.max_bytes;
            if !expired && !over {
                break;
            }
            let key = key.clone();
            if over && !expired {
                self.evicted += 1;
            }
            self.remove(&key);
        }
    }
}

/// What to do with a request carrying a key.
pub enum Begin {
    /// First time: handle it, then [`Slot::finish`].
    New(Slot),
    /// Seen before: answer this.
    Replay(Reply),
    /// The key was first used with another route or body.
    Mismatch,
    /// Still in flight when the wait's deadline passed.
    InProgress,
    /// The key is unknown and the caller may not start it (`allow_new` was false).
    Unknown,
    /// Too many keys in flight.
    Full,
}

/// The right to answer a key first.
pub struct Slot {
    key: String,
    generation: u64,
    fingerprint: Fingerprint,
    tx: watch::Sender<Option<Reply>>,
    cache: IdempotencyCache,
    finished: bool,
}

impl Slot {
    /// Records the answer and hands it to the waiters. `remember` false forgets the key instead
    /// (a "not delivered" answer: a retry may deliver).
    pub fn finish(mut self, reply: Reply, remember: bool) {
        self.finished = true;
        {
            let cache = &self.cache;
            let mut store = cache.lock();
            let ours = store
                .map
                .get(&self.key)
                .is_some_and(|e| e.generation == self.generation);
            if ours {
                store.remove(&self.key);
                if remember {
                    let now = Instant::now();
                    let tick = store.tick();
                    store.bytes += cost(&self.key, Some(&reply));
                    store.lru.insert(tick, self.key.clone());
                    store.map.insert(
                        self.key.clone(),
                        Entry {
                            fingerprint: self.fingerprint,
                            generation: self.generation,
                            state: State::Done {
                                reply: reply.clone(),
                                at: now,
                                tick,
                            },
                        },
                    );
                    store.trim(&cache.limits, now);
                }
            }
        }
        let _ = self.tx.send(Some(reply));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled before an answer: forget the key; dropping `tx` then wakes the waiters.
        let mut store = self.cache.lock();
        if store
            .map
            .get(&self.key)
            .is_some_and(|e| e.generation == self.generation)
        {
            store.remove(&self.key);
        }
    }
}

/// Remembered answers by key.
#[derive(Clone)]
pub struct IdempotencyCache {
    store: Arc<Mutex<Store>>,
    limits: Limits,
}

impl Default for IdempotencyCache {
    fn default() -> Self {
        IdempotencyCache::new(Limits::default())
    }
}

impl IdempotencyCache {
    /// An empty store with these bounds.
    pub fn new(limits: Limits) -> Self {
        IdempotencyCache {
            store: Arc::default(),
            limits,
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Store> {
        self.store.lock()
    }

    /// Keys, bytes and keys in flight held now, and answers evicted so far (for tests and logs).
    pub fn usage(&self) -> (usize, usize, usize, u64) {
        let s = self.lock();
        (s.map.len(), s.bytes, s.in_flight, s.evicted)
    }

    /// Starts handling `key` for a request with `fingerprint`, or returns the answer it already
    /// has, waiting until `wait_until` for one in flight. With `allow_new` false an unknown key
    /// gives [`Begin::Unknown`] instead of a new slot.
    pub async fn begin(&self, key: &str, fingerprint: Fingerprint, allow_new: bool, wait_until: Instant) -> Begin {
        loop {
            let mut rx = {
                let mut store = self.lock();
                let now = Instant::now();
                store.trim(&self.limits, now);
                if store.map.get(key).is_some_and(|e| e.expired(now)) {
                    store.remove(key);
                }
                match store.map.get(key) {
                    Some(e) if e.fingerprint != fingerprint => return Begin::Mismatch,
                    Some(Entry {
                        state: State::Done { reply, tick, .. },
                        ..
                    }) => {
                        let (reply, old) = (reply.clone(), *tick);
                        let new = store.tick();
                        if let Some(k) = store.lru.remove(&old) {
                            store.lru.insert(new, k);
                        }
                        if let Some(Entry {
                            state: State::Done { tick, .. },
                            ..
                        }) = store.map.get_mut(key)
                        {
                            *tick = new;
                        }
                        return Begin::Replay(reply);
                    }
                    Some(Entry {
                        state: State::InFlight(rx),
                        ..
                    }) => rx.clone(),
                    None => match self.start(&mut store, key, fingerprint, allow_new, now) {
                        Ok(slot) => return Begin::New(slot),
                        Err(b) => return b,
                    },
                }
            };
            match tokio::time::timeout_at(wait_until.into(), rx.wait_for(Option::is_some)).await {
                Ok(Ok(reply)) => {
                    if let Some(reply) = reply.clone() {
                        return Begin::Replay(reply);
                    }
                }
                // The first request was cancelled without an answer (its slot removed the key):
                // look again; this one may handle it.
                Ok(Err(_)) => {}
                Err(_) => return Begin::InProgress,
            }
        }
    }

    fn start(
        &self,
        store: &mut Store,
        key: &str,
        fingerprint: Fingerprint,
        allow_new: bool,
        now: Instant,
    ) -> Result<Slot, Begin> {
        if !allow_new {
            return Err(Begin::Unknown);
        }
        if store.in_flight >= self.limits.max_in_flight {
            return Err(Begin::Full);
        }
        let generation = store.tick();
        let (tx, rx) = watch::channel(None);
        store.in_flight += 1;
        store.bytes += cost(key, None);
        store.map.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                generation,
                state: State::InFlight(rx),
            },
        );
        store.trim(&self.limits, now);
        Ok(Slot {
            key: key.to_owned(),
            generation,
            fingerprint,
            tx,
            cache: self.clone(),
            finished: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    const FP: Fingerprint = [1; 32];

    #[tokio::test]
    async fn replays_and_waits() {
        let cache = IdempotencyCache::default();
        let Begin::New(slot) = cache.begin("k", FP, true, soon()).await else {
            panic!("first is new")
        };
        let waiter = {
            let c = cache.clone();
            tokio::spawn(async move { c.begin("k", FP, true, soon()).await })
        };
        tokio::task::yield_now().await;
        slot.finish((200, "{\"ok\":true}".into()), true);
        let Begin::Replay(r) = waiter.await.unwrap() else {
            panic!("second replays")
        };
        assert_eq!(r.0, 200);
        let Begin::Replay(r) = cache.begin("k", FP, false, soon()).await else {
            panic!("later replays")
        };
        assert_eq!(r.1, "{\"ok\":true}");
        assert!(matches!(cache.begin("k", [2; 32], true, soon()).await, Begin::Mismatch));
        let Begin::New(slot) = cache.begin("failing", FP, true, soon()).await else {
            panic!()
        };
        slot.finish((503, "{}".into()), false);
        assert!(
            matches!(cache.begin("failing", FP, true, soon()).await, Begin::New(_)),
            "forgotten answers are not kept"
        );
        assert!(matches!(cache.begin("never", FP, false, soon()).await, Begin::Unknown));
    }

    #[tokio::test]
    async fn a_dropped_slot_wakes_a_waiter_that_takes_over() {
        let cache = IdempotencyCache::default();
        let Begin::New(slot) = cache.begin("k", FP, true, soon()).await else {
            panic!()
        };
        let waiter = {
            let c = cache.clone();
            tokio::spawn(async move { c.begin("k", FP, true, soon()).await })
        };
        tokio::task::yield_now().await;
        drop(slot);
        let Begin::New(slot) = waiter.await.unwrap() else {
            panic!("the waiter handles the request afresh")
        };
        assert_eq!(cache.usage().2, 1, "one key in flight");
        drop(slot);
        assert_eq!(cache.usage().0, 0, "a dropped slot leaves nothing behind");
        assert_eq!(cache.usage().1, 0);
    }

    #[tokio::test]
    async fn a_wait_has_a_deadline() {
        let cache = IdempotencyCache::default();
        let Begin::New(_slot) = cache.begin("k", FP, true, soon()).await else {
            panic!()
        };
        let at = Instant::now() + Duration::from_millis(20);
        assert!(matches!(cache.begin("k", FP, true, at).await, Begin::InProgress));
    }

    #[tokio::test]
    async fn bounded_in_keys_bytes_and_in_flight() {
        let limits = Limits {
            max_keys: 10,
            max_bytes: 10 * (ENTRY_OVERHEAD + 100),
            max_in_flight: 3,
        };
        let cache = IdempotencyCache::new(limits);
        for i in 0..100 {
            let Begin::New(slot) = cache.begin(&format!("key-{i}"), FP, true, soon()).await else {
                panic!()
            };
            slot.finish((200, "x".repeat(i % 50)), true);
            let (keys, bytes, _, _) = cache.usage();
            assert!(keys <= 10 && bytes <= limits.max_bytes, "{keys} keys, {bytes} bytes");
        }
        assert!(matches!(
            cache.begin("key-99", FP, false, soon()).await,
            Begin::Replay(_)
        ));
        assert!(
            matches!(cache.begin("key-0", FP, false, soon()).await, Begin::Unknown),
            "evicted"
        );
        let big = "y".repeat(5 * (ENTRY_OVERHEAD + 100));
        let Begin::New(slot) = cache.begin("big", FP, true, soon()).await else {
            panic!()
        };
        slot.finish((200, big), true);
        assert!(cache.usage().1 <= limits.max_bytes);
        let mut held = Vec::new();
        for i in 0..3 {
            let Begin::New(slot) = cache.begin(&format!("f-{i}"), FP, true, soon()).await else {
                panic!()
            };
            held.push(slot);
        }
        assert!(matches!(cache.begin("f-3", FP, true, soon()).await, Begin::Full));
        drop(held);
        assert_eq!(cache.usage().2, 0);
    }
}
