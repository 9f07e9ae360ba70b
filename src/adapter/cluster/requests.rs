//! This server's requests waiting for other servers' answers (broadcast acks and fetches), with
//! ONE expiry timer per table instead of a sleeping task per request; and the relay that sends
//! the acks of this server's clients back to a requesting server.
//!
//! A broadcast-with-ack entry forwards counts and acks to its [`RemoteAck`] stream until it
//! expires (its sender dropped, so the stream ends). A fetch entry collects sockets until every
//! expected server answered or it expires; then its waiter gets what arrived (a warning is
//! logged on expiry, as Node does).

use crate::adapter::{RemoteAck, SocketInfo};
use crate::server::Socket;
use parking_lot::Mutex;
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

struct Fetch {
    remaining: usize,
    sockets: Vec<SocketInfo>,
    done: oneshot::Sender<Vec<SocketInfo>>,
}

enum Entry {
    Acks(mpsc::UnboundedSender<RemoteAck>),
    Fetch(Fetch),
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Entry>,
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Table {
    /// Drops the entries due at `now`; returns the next deadline.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                return Some(*at);
            }
            let Some(Reverse((_, id))) = self.deadlines.pop() else {
                break;
            };
            match self.entries.remove(&id) {
                Some(Entry::Fetch(f)) => {
                    tracing::warn!(request_id = %id, missing = f.remaining, "timeout reached while waiting for fetchSockets responses");
                    let _ = f.done.send(f.sockets);
                }
                Some(Entry::Acks(_)) | None => {}
            }
        }
        None
    }
}

struct Shared {
    table: Mutex<Table>,
    wake: Arc<Notify>,
    /// Whether the expiry task runs (started by the first request, so a table can be built
    /// outside a runtime).
    started: std::sync::Once,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// The request table of one adapter (cheap to clone).
#[derive(Clone)]
pub struct Requests {
    shared: Arc<Shared>,
}

impl Default for Requests {
    fn default() -> Self {
        Requests::new()
    }
}

impl Requests {
    /// An empty table. Its expiry task starts with the first request (inside a Tokio runtime)
    /// and ends when the last clone is dropped.
    pub fn new() -> Requests {
        let shared = Arc::new(Shared {
            table: Mutex::default(),
            wake: Arc::new(Notify::new()),
            started: std::sync::Once::new(),
        });
        Requests { shared }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Table> {
        self.shared.table.lock()
    }

    fn insert(&self, id: &str, entry: Entry, timeout: Duration) {
        self.shared.started.call_once(|| {
            tokio::spawn(expire_loop(Arc::downgrade(&self.shared), self.shared.wake.clone()));
        });
        let at = Instant::now() + timeout;
        let mut t = self.lock();
        let earliest = t.deadlines.peek().is_none_or(|Reverse((first, _))| at < *first);
        t.entries.insert(id.to_owned(), entry);
        t.deadlines.push(Reverse((at, id.to_owned())));
        drop(t);
        if earliest {
            self.shared.wake.notify_one();
        }
    }

    /// Starts a broadcast-with-ack request: its counts and acks arrive on the stream until
    /// `timeout`.
    pub fn start_acks(&self, id: &str, timeout: Duration) -> mpsc::UnboundedReceiver<RemoteAck> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.insert(id, Entry::Acks(tx), timeout);
        rx
    }

    /// Starts a fetch expecting `servers` answers; the receiver gets every socket once they all
    /// answered, or what arrived by `timeout`.
    pub fn start_fetch(&self, id: &str, servers: usize, timeout: Duration) -> oneshot::Receiver<Vec<SocketInfo>> {
        let (done, rx) = oneshot::channel();
        let fetch = Fetch {
            remaining: servers,
            sockets: Vec::new(),
            done,
        };
        self.insert(id, Entry::Fetch(fetch), timeout);
        rx
    }

    /// Whether `id` is a pending request of this server.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().entries.contains_key(id)
    }

    /// Whether `id` is a pending broadcast-with-ack of this server.
    pub fn is_ack_request(&self, id: &str) -> bool {
        matches!(self.lock().entries.get(id), Some(Entry::Acks(_)))
    }

    /// Forwards a count or an ack to request `id`; false when `id` is not a pending
    /// broadcast-with-ack.
    pub fn ack(&self, id: &str, ack: RemoteAck) -> bool {
        match self.lock().entries.get(id) {
            Some(Entry::Acks(tx)) => {
                let _ = tx.send(ack);
                true
            }
            _ => false,
        }
    }

    /// One server's answer to fetch `id` (ignored when `id` is not a pending fetch).
    pub fn answer_fetch(&self, id: &str, sockets: Vec<SocketInfo>) {
        let mut t = self.lock();
        let Some(Entry::Fetch(f)) = t.entries.get_mut(id) else {
            return;
        };
        f.sockets.extend(sockets);
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining == 0
            && let Some(Entry::Fetch(f)) = t.entries.remove(id)
        {
            let _ = f.done.send(f.sockets);
        }
    }

    /// How many requests are pending.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no request is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one timer of a table: sleeps until the earliest deadline (or an earlier one is added),
/// expires what is due, and ends once the table is gone. Deadlines of answered requests stay in
/// the heap until due, where they find nothing.
async fn expire_loop(table: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let Some(shared) = table.upgrade() else { return };
        let next = shared.table.lock().expire(Instant::now());
        // Not kept while sleeping, so the table can go.
        drop(shared);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// Relays the acks of this server's `targets` (clients that got a broadcast-with-ack with ack id
/// `ack_id`) to the requesting server through `send`, until each answered or `timeout`; then the
/// clients' pending acks are forgotten.
pub fn relay_acks(
    mut acks: mpsc::UnboundedReceiver<Value>,
    targets: Vec<Socket>,
    ack_id: u64,
    timeout: Duration,
    send: impl Fn(Value) + Send + 'static,
) {
    tokio::spawn(async move {
        let deadline = Instant::now() + timeout;
        for _ in 0..targets.len() {
            let Ok(Some(arg)) = tokio::time::timeout_at(deadline, acks.recv()).await else {
                break;
            };
            send(arg);
        }
        for s in targets {
            s.forget_ack(ack_id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_expire_on_one_timer() {
        let r = Requests::new();
        let mut acks = r.start_acks("a", Duration::from_secs(5));
        let fetch = r.start_fetch("f", 2, Duration::from_secs(1));
        assert!(r.ack("a", RemoteAck::ClientCount(2)));
        assert!(!r.ack("f", RemoteAck::ClientCount(2)), "a fetch takes no acks");
        assert!(!r.ack("zz", RemoteAck::ClientCount(2)));
        r.answer_fetch("f", vec![info("s1")]);
        assert_eq!(r.len(), 2);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The fetch expired with the one answer that came.
        assert_eq!(fetch.await.unwrap(), vec![info("s1")]);
        assert!(r.is_ack_request("a"));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(r.is_empty());
        assert!(matches!(acks.recv().await, Some(RemoteAck::ClientCount(2))));
        assert!(acks.recv().await.is_none(), "the stream ends on expiry");
    }

    #[tokio::test(start_paused = true)]
    async fn fetch_resolves_once_every_server_answered() {
        let r = Requests::new();
        let rx = r.start_fetch("f", 2, Duration::from_secs(60));
        r.answer_fetch("f", vec![info("a")]);
        r.answer_fetch("other", vec![info("x")]);
        r.answer_fetch("f", vec![info("b")]);
        assert_eq!(rx.await.unwrap(), vec![info("a"), info("b")]);
        assert!(!r.contains("f"));
        // A later, earlier deadline wakes the timer.
        let late = r.start_fetch("late", 1, Duration::from_secs(60));
        let soon = r.start_fetch("soon", 1, Duration::from_millis(10));
        assert_eq!(soon.await.unwrap(), vec![]);
        assert!(r.contains("late"));
        drop(late);
    }

    #[test]
    fn a_table_can_be_built_outside_a_runtime() {
        let r = Requests::new();
        assert!(r.is_empty() && !r.contains("x") && !r.ack("x", RemoteAck::ClientCount(1)));
    }

    fn info(id: &str) -> SocketInfo {
        SocketInfo {
            id: id.into(),
            handshake: Value::Null,
            rooms: vec![],
            data: Value::Null,
        }
    }
}
