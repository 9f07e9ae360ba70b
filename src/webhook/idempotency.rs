//! `Idempotency-Key`: a retried request with the same key within 10 minutes gets the first
//! request's answer and is not delivered again (a retry that arrives while the first is still in
//! flight waits for it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long answers are remembered.
pub const TTL: Duration = Duration::from_secs(600);
/// At most this many keys are remembered (oldest answers are evicted first).
const MAX_KEYS: usize = 100_000;

/// A remembered answer: status and JSON body.
pub type Reply = (u16, String);

enum Entry {
    InFlight(watch::Receiver<Option<Reply>>),
    Done(Reply, Instant),
}

/// What to do with a request carrying a key.
pub enum Begin {
    /// First time: handle it, then [`Slot::finish`].
    New(Slot),
    /// Seen before: answer this.
    Replay(Reply),
}

/// The right to answer a key first.
pub struct Slot {
    key: String,
    tx: watch::Sender<Option<Reply>>,
    cache: IdempotencyCache,
}

impl Slot {
    /// Records the answer (only answers that are final are kept: 5xx ones are forgotten so a retry
    /// can succeed).
    pub fn finish(self, reply: Reply) {
        let mut map = self.cache.lock();
        if reply.0 >= 500 {
            map.remove(&self.key);
        } else {
            map.insert(self.key.clone(), Entry::Done(reply.clone(), Instant::now()));
        }
        drop(map);
        let _ = self.tx.send(Some(reply));
    }
}

/// Remembered answers by key.
#[derive(Clone, Default)]
pub struct IdempotencyCache(Arc<Mutex<HashMap<String, Entry>>>);

impl IdempotencyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts handling `key`, or returns the answer it already has (waiting for one in flight).
    pub async fn begin(&self, key: &str) -> Begin {
        let mut rx = {
            let mut map = self.lock();
            let now = Instant::now();
            if map.len() >= MAX_KEYS {
                map.retain(|_, e| matches!(e, Entry::InFlight(_)) || matches!(e, Entry::Done(_, t) if now - *t < TTL));
            }
            match map.get(key) {
                Some(Entry::Done(reply, at)) if now - *at < TTL => return Begin::Replay(reply.clone()),
                Some(Entry::InFlight(rx)) => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key.to_owned(), Entry::InFlight(rx));
                    return Begin::New(Slot {
                        key: key.to_owned(),
                        tx,
                        cache: self.clone(),
                    });
                }
            }
        };
        loop {
            if let Some(reply) = rx.borrow().clone() {
                return Begin::Replay(reply);
            }
            if rx.changed().await.is_err() {
                // The first request was dropped without an answer: handle this one afresh.
                return Box::pin(self.begin(key)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_and_waits() {
        let cache = IdempotencyCache::default();
        let Begin::New(slot) = cache.begin("k").await else {
            panic!("first is new")
        };
        let waiter = {
            let c = cache.clone();
            tokio::spawn(async move { c.begin("k").await })
        };
        tokio::task::yield_now().await;
        slot.finish((200, "{\"ok\":true}".into()));
        let Begin::Replay(r) = waiter.await.unwrap() else {
            panic!("second replays")
        };
        assert_eq!(r.0, 200);
        let Begin::Replay(r) = cache.begin("k").await else {
            panic!("later replays")
        };
        assert_eq!(r.1, "{\"ok\":true}");
        let Begin::New(slot) = cache.begin("failing").await else {
            panic!()
        };
        slot.finish((503, "{}".into()));
        assert!(
            matches!(cache.begin("failing").await, Begin::New(_)),
            "5xx answers are not kept"
        );
    }
}
