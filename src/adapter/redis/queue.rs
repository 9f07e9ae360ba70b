//! A FIFO bounded in bytes between producers that must never block (publishes from emitting
//! tasks, messages pushed by the Redis connection) and one consumer task. Past its byte limit it
//! drops the oldest messages, counts them in a metric and logs (at most every 10 s) how many went.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Default byte limit of each Redis queue (`REDIS_QUEUE_BYTES`).
pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;
/// Bytes counted for a message on top of its channel and payload (allocation, bookkeeping).
pub const MESSAGE_OVERHEAD: usize = 64;
/// At most one "dropped" log line per queue this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Something with a size in bytes, as the queue accounts it.
pub trait Weighed {
    /// Bytes this item holds.
    fn weight(&self) -> usize;
}

struct State<T> {
    items: VecDeque<T>,
    bytes: usize,
    closed: bool,
    dropped_since_log: u64,
    last_log: Option<Instant>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Notify,
    limit: usize,
    name: &'static str,
    dropped: &'static AtomicU64,
    senders: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> parking_lot::MutexGuard<'_, State<T>> {
        self.state.lock()
    }
}

/// The producing side; cloneable. The queue closes when the last sender is dropped.
pub struct QueueSender<T> {
    shared: Arc<Shared<T>>,
}

/// The consuming side (one task).
pub struct QueueReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue named `name` (for logs) holding at most `limit` bytes; drops are added to `dropped`.
pub fn byte_queue<T: Weighed>(
    name: &'static str,
    limit: usize,
    dropped: &'static AtomicU64,
) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            closed: false,
            dropped_since_log: 0,
            last_log: None,
        }),
        wake: Notify::new(),
        limit: limit.max(1),
        name,
        dropped,
        senders: AtomicUsize::new(1),
    });
    (QueueSender { shared: shared.clone() }, QueueReceiver { shared })
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        QueueSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.lock().closed = true;
            self.shared.wake.notify_one();
        }
    }
}

impl<T: Weighed> QueueSender<T> {
    /// Appends `item`, dropping the oldest items while the queue holds more than its limit
    /// (`item` itself when it alone is over the limit). Returns how many items were dropped.
    pub fn push(&self, item: T) -> u64 {
        let s = &self.shared;
        let mut dropped = 0u64;
        let mut log = None;
        {
            let mut st = s.lock();
            let weight = item.weight();
            if weight > s.limit {
                // Over the limit on its own: dropping older messages would not make it fit.
                dropped = 1;
            } else {
                st.bytes = st.bytes.saturating_add(weight);
                st.items.push_back(item);
            }
            while st.bytes > s.limit {
                let Some(old) = st.items.pop_front() else { break };
                st.bytes = st.bytes.saturating_sub(old.weight());
                dropped += 1;
            }
            if dropped > 0 {
                st.dropped_since_log = st.dropped_since_log.saturating_add(dropped);
                if st.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    st.last_log = Some(Instant::now());
                    log = Some(std::mem::take(&mut st.dropped_since_log));
                }
            }
        }
        if dropped > 0 {
            crate::metrics::add(s.dropped, dropped);
        }
        if let Some(n) = log {
            tracing::warn!(
                queue = s.name,
                limit_bytes = s.limit,
                dropped = n,
                "redis queue full: dropped the oldest messages (REDIS_QUEUE_BYTES)"
            );
        }
        s.wake.notify_one();
        dropped
    }

    /// Bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }
}

impl<T: Weighed> QueueReceiver<T> {
    /// Waits for items, then moves up to `max_items` of them (and no more than `max_bytes`, but
    /// always at least one) into `out`. Returns 0 once the queue is closed and empty.
    pub async fn recv_many(&mut self, out: &mut Vec<T>, max_items: usize, max_bytes: usize) -> usize {
        loop {
            {
                let mut st = self.shared.lock();
                if !st.items.is_empty() {
                    let mut bytes = 0usize;
                    let mut n = 0;
                    while n < max_items.max(1) {
                        let Some(w) = st.items.front().map(Weighed::weight) else {
                            break;
                        };
                        if n > 0 && bytes.saturating_add(w) > max_bytes {
                            break;
                        }
                        let Some(item) = st.items.pop_front() else { break };
                        bytes = bytes.saturating_add(w);
                        st.bytes = st.bytes.saturating_sub(w);
                        out.push(item);
                        n += 1;
                    }
                    return n;
                }
                if st.closed {
                    return 0;
                }
            }
            self.shared.wake.notified().await;
        }
    }

    /// Waits for one item; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<T> {
        let mut one = Vec::with_capacity(1);
        self.recv_many(&mut one, 1, usize::MAX).await;
        one.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(usize);
    impl Weighed for Item {
        fn weight(&self) -> usize {
            self.0
        }
    }

    static DROPS: AtomicU64 = AtomicU64::new(0);

    #[tokio::test]
    async fn drops_the_oldest_past_the_byte_limit() {
        let (tx, mut rx) = byte_queue::<Item>("test", 100, &DROPS);
        for (i, drops) in [0, 0, 0, 1, 2].into_iter().enumerate() {
            assert_eq!(tx.push(Item(31 + i)), drops, "push {}", 31 + i);
        }
        // 34 + 35 fit; 31, 32 and 33 went.
        assert_eq!(tx.queued_bytes(), 34 + 35);
        assert!(DROPS.load(Ordering::Relaxed) >= 3);
        // An item over the limit on its own is dropped alone.
        assert_eq!(tx.push(Item(500)), 1);
        assert_eq!(tx.queued_bytes(), 34 + 35);
        let mut out = Vec::new();
        assert_eq!(rx.recv_many(&mut out, 10, usize::MAX).await, 2);
        out.clear();
        tx.push(Item(10));
        tx.push(Item(20));
        tx.push(Item(30));
        assert_eq!(rx.recv_many(&mut out, 10, 35).await, 2);
        assert_eq!(out.iter().map(|i| i.0).collect::<Vec<_>>(), [10, 20]);
        out.clear();
        assert_eq!(
            rx.recv_many(&mut out, 10, 1).await,
            1,
            "at least one item, whatever its size"
        );
        drop(tx);
        assert!(rx.recv().await.is_none(), "closed once every sender is gone");
    }

    #[tokio::test]
    async fn wakes_the_consumer() {
        static D: AtomicU64 = AtomicU64::new(0);
        let (tx, mut rx) = byte_queue::<Item>("test", 1000, &D);
        let task = tokio::spawn(async move { rx.recv().await.map(|i| i.0) });
        tokio::task::yield_now().await;
        tx.clone().push(Item(7));
        let got = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(7));
    }
}
