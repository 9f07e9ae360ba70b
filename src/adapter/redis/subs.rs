//! The room-channel subscriptions of the sharded adapter: a reference count per channel, changed
//! synchronously by room creation/deletion, and one task that brings Redis to the counted state
//! in order (`SSUBSCRIBE` when a count leaves 0, `SUNSUBSCRIBE` when it returns to 0). A burst of
//! joins and leaves of one room coalesces into at most one command; a failed command is retried
//! with backoff until it succeeds or is no longer wanted.

use super::service::{Redacted, RedisService};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// First wait before retrying failed (un)subscriptions; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    /// Channels wanted, with how many rooms want each (always > 0).
    counts: HashMap<String, usize>,
    /// Channels whose wanted state changed since the task last looked, in order of change.
    dirty: Vec<String>,
    dirty_set: HashSet<String>,
    closed: bool,
}

impl State {
    fn mark(&mut self, channel: &str) {
        if self.dirty_set.insert(channel.to_owned()) {
            self.dirty.push(channel.to_owned());
        }
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reference-counted channel subscriptions applied by one task.
pub struct RoomSubscriptions {
    shared: Arc<Shared>,
}

impl RoomSubscriptions {
    /// Starts the task that applies changes through `service`.
    pub fn spawn(service: RedisService) -> RoomSubscriptions {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Notify::new(),
        });
        tokio::spawn(apply(service, shared.clone()));
        RoomSubscriptions { shared }
    }

    /// One more room wants `channel`.
    pub fn acquire(&self, channel: String) {
        let mut st = self.shared.lock();
        let n = st.counts.entry(channel.clone()).or_insert(0);
        *n = n.saturating_add(1);
        if *n == 1 {
            st.mark(&channel);
            drop(st);
            self.shared.wake.notify_one();
        }
    }

    /// One room less wants `channel`; a release without an acquire (a socket's own room, never
    /// subscribed) does nothing.
    pub fn release(&self, channel: &str) {
        let mut st = self.shared.lock();
        let Some(n) = st.counts.get_mut(channel) else { return };
        *n -= 1;
        if *n == 0 {
            st.counts.remove(channel);
            st.mark(channel);
            drop(st);
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for RoomSubscriptions {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// The task: waits for changes, then for each changed channel sends the one command (if any)
/// that makes Redis match the wanted state. Commands run one at a time, in order of change.
async fn apply(service: RedisService, shared: Arc<Shared>) {
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut retry = RETRY_MIN;
    loop {
        let changed: Vec<String> = {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            st.dirty_set.clear();
            std::mem::take(&mut st.dirty)
        };
        if changed.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let mut failed = Vec::new();
        let mut first_error = None;
        for channel in changed {
            let wanted = shared.lock().counts.contains_key(&channel);
            let have = subscribed.contains(&channel);
            let one = std::slice::from_ref(&channel);
            let result = match (wanted, have) {
                (true, false) => service.ssubscribe(one).await.map(|()| {
                    subscribed.insert(channel.clone());
                }),
                (false, true) => service.sunsubscribe(one).await.map(|()| {
                    subscribed.remove(&channel);
                }),
                _ => Ok(()),
            };
            if let Err(e) = result {
                first_error.get_or_insert_with(|| (channel.clone(), e));
                failed.push(channel);
            }
        }
        let Some((channel, e)) = first_error else {
            retry = RETRY_MIN;
            continue;
        };
        // One line per outage at warn level (the retries after it at debug).
        if retry == RETRY_MIN {
            tracing::warn!(%channel, failed = failed.len(), error = %Redacted(&e), "cannot (un)subscribe room channels; retrying");
        } else {
            tracing::debug!(%channel, failed = failed.len(), error = %Redacted(&e), "room channel (un)subscriptions still failing");
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
        let mut st = shared.lock();
        for channel in &failed {
            st.mark(channel);
        }
    }
}
