//! The room-channel subscriptions of the sharded adapter: a reference count per channel, changed
//! synchronously by room creation/deletion, and one task that brings Redis to the counted state
//! in order (`SSUBSCRIBE` when a count leaves 0, `SUNSUBSCRIBE` when it returns to 0). A burst of
//! joins and leaves of one room coalesces into at most one command; a failed command is retried
//! with backoff until it succeeds or is no longer wanted.
//!
//! Subscriptions follow failovers: when a subscriber connection drops (a node died) every counted
//! channel is subscribed again, and when Redis ends one subscription by itself (the `sunsubscribe`
//! push a node sends when the channel's slot moved away) that channel is, after the slot owners
//! are read again ([`super::shardsub`]), so the subscription lands on the promoted replica. The
//! same task keeps the classic adapter's fixed `SUBSCRIBE`/`PSUBSCRIBE` in place ([`SubKind`]).

use super::service::{Redacted, RedisService, SubscriberEvent};
use crate::metrics::{self, METRICS};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use parking_lot::Mutex;
use redis::PushKind;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Notify, broadcast};

/// First wait before retrying failed (un)subscriptions; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries: while a master is down its channels are retried this often, so
/// they follow the promoted replica within about this long (a message published there before
/// is lost to this instance).
const RETRY_MAX: Duration = Duration::from_millis(250);

/// Most (un)subscribe commands in flight at once.
const IN_FLIGHT: usize = 64;

/// Which kind of subscription a [`RoomSubscriptions`] manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubKind {
    /// `SUBSCRIBE` / `UNSUBSCRIBE`.
    Channel,
    /// `PSUBSCRIBE` / `PUNSUBSCRIBE`.
    Pattern,
    /// `SSUBSCRIBE` / `SUNSUBSCRIBE` (sharded pub/sub).
    Sharded,
}

impl SubKind {
    /// The push Redis sends when a subscription of this kind ends.
    fn ended_push(self) -> PushKind {
        match self {
            SubKind::Channel => PushKind::Unsubscribe,
            SubKind::Pattern => PushKind::PUnsubscribe,
            SubKind::Sharded => PushKind::SUnsubscribe,
        }
    }

    /// Subscribes `channel`; `moved`: Redis ended its subscription because its slot moved.
    async fn subscribe(self, service: &RedisService, channel: &[String], moved: bool) -> redis::RedisResult<()> {
        match self {
            SubKind::Channel => service.subscribe(channel).await,
            SubKind::Pattern => service.psubscribe(channel).await,
            SubKind::Sharded => service.ssubscribe(channel, moved).await,
        }
    }

    async fn unsubscribe(self, service: &RedisService, channel: &[String]) -> redis::RedisResult<()> {
        match self {
            SubKind::Channel => service.unsubscribe(channel).await,
            SubKind::Pattern => service.punsubscribe(channel).await,
            SubKind::Sharded => service.sunsubscribe(channel).await,
        }
    }
}

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
    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// Reference-counted channel subscriptions applied by one task.
pub struct RoomSubscriptions {
    shared: Arc<Shared>,
}

impl RoomSubscriptions {
    /// Starts the task that applies changes of subscriptions of `kind` through `service`.
    pub fn spawn_kind(service: RedisService, kind: SubKind) -> RoomSubscriptions {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Notify::new(),
        });
        let events = service.subscriber_events();
        tokio::spawn(apply(service, shared.clone(), kind, events));
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

/// What the task knows about the channels with a command in flight, and about the channels
/// Redis ended by itself.
#[derive(Default)]
struct InFlight {
    /// Channel → whether an event since its command was sent may have undone it (a reset of the
    /// subscriber connection, or Redis ending the channel): its success is then not recorded and
    /// the channel is looked at again.
    stale: HashMap<String, bool>,
    /// Channels Redis ended (their slot moved) and not subscribed since: their next subscription
    /// reads the slot owners again first ([`RedisService::ssubscribe`]).
    moved: HashSet<String>,
    /// Channels whose last subscription failed, which may still be subscribed somewhere (sent
    /// before a deadline cut it, or held on a replica while the master is down): when no longer
    /// wanted they are unsubscribed anyway.
    uncertain: HashSet<String>,
}

/// Marks for re-subscription what `event` may have ended: every subscribed channel after a drop
/// (or a lag: events were missed), or the one channel Redis ended. A command in flight when that
/// happened is marked stale.
fn on_event(
    event: Result<SubscriberEvent, RecvError>,
    kind: SubKind,
    subscribed: &mut HashSet<String>,
    in_flight: &mut InFlight,
    shared: &Shared,
) -> bool {
    let reset = matches!(event, Ok(SubscriberEvent::Reset) | Err(RecvError::Lagged(_)));
    let mut st = shared.lock();
    let lost: Vec<String> = match event {
        Ok(SubscriberEvent::Reset) | Err(RecvError::Lagged(_)) => {
            for stale in in_flight.stale.values_mut() {
                *stale = true;
            }
            subscribed.drain().collect()
        }
        Ok(SubscriberEvent::Ended(push, channel)) if push == kind.ended_push() => {
            if let Some(stale) = in_flight.stale.get_mut(&channel) {
                *stale = true;
            }
            if st.counts.contains_key(&channel) {
                in_flight.moved.insert(channel.clone());
            }
            if subscribed.remove(&channel) {
                vec![channel]
            } else {
                Vec::new()
            }
        }
        Ok(SubscriberEvent::Ended(..)) | Err(RecvError::Closed) => Vec::new(),
    };
    for channel in &lost {
        if st.counts.contains_key(channel) {
            metrics::inc(&METRICS.redis_resubscribes);
            st.mark(channel);
        }
    }
    reset
}

/// When the channels are subscribed again after a reset, besides at once: 1, 3 and 7 s later.
fn after_reset() -> VecDeque<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    [1, 3, 7].into_iter().map(|s| now + Duration::from_secs(s)).collect()
}

/// The task: waits for changes, then for each changed channel sends the one command (if any)
/// that makes Redis match the wanted state. A channel has at most one command in flight, and its
/// commands run in order of change; different channels go concurrently and independently: each
/// result is recorded as soon as it comes, and events are handled meanwhile, so a channel whose
/// master is down (its command waiting for the timeout) holds up no other channel.
async fn apply(
    service: RedisService,
    shared: Arc<Shared>,
    kind: SubKind,
    mut events: broadcast::Receiver<SubscriberEvent>,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut in_flight = InFlight::default();
    // Channels to look at, in order of change (each once), and those among them waiting for
    // their channel's command in flight.
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut queued: HashSet<String> = HashSet::new();
    let mut blocked: HashSet<String> = HashSet::new();
    let mut running = FuturesUnordered::new();
    // Channels whose command failed, looked at again when the retry timer fires.
    let mut failed: Vec<String> = Vec::new();
    let mut retry = RETRY_MIN;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut failing = false;
    let mut events_open = true;
    // After a reset, every wanted channel is subscribed again a few times while the topology
    // settles: a subscription re-issued on a connection that a later rebuild drops without a
    // reset of its own would otherwise stay lost for good (seen in the failover test).
    let mut resweeps: VecDeque<tokio::time::Instant> = VecDeque::new();
    let service = &service;
    loop {
        loop {
            match events.try_recv() {
                Ok(e) => {
                    if on_event(Ok(e), kind, &mut subscribed, &mut in_flight, &shared) {
                        resweeps = after_reset();
                    }
                }
                Err(TryRecvError::Lagged(n)) => {
                    on_event(
                        Err(RecvError::Lagged(n)),
                        kind,
                        &mut subscribed,
                        &mut in_flight,
                        &shared,
                    );
                    resweeps = after_reset();
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            st.dirty_set.clear();
            for channel in std::mem::take(&mut st.dirty) {
                if in_flight.stale.contains_key(&channel) {
                    blocked.insert(channel);
                } else if queued.insert(channel.clone()) {
                    pending.push_back(channel);
                }
            }
        }
        while running.len() < IN_FLIGHT {
            let Some(channel) = pending.pop_front() else { break };
            queued.remove(&channel);
            let wanted = shared.lock().counts.contains_key(&channel);
            if !wanted {
                in_flight.moved.remove(&channel);
            }
            let unsure = !wanted && in_flight.uncertain.contains(&channel);
            if wanted == subscribed.contains(&channel) && !unsure {
                continue;
            }
            in_flight.stale.insert(channel.clone(), false);
            let moved = in_flight.moved.contains(&channel);
            running.push(async move {
                let one = std::slice::from_ref(&channel);
                let result = if wanted {
                    kind.subscribe(service, one, moved).await
                } else {
                    kind.unsubscribe(service, one).await
                };
                (channel, wanted, result)
            });
        }
        let resweep_sleep = async {
            match resweeps.front() {
                Some(at) => tokio::time::sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        let retry_sleep = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((channel, subscribe, result)) = running.next(), if !running.is_empty() => {
                let stale = in_flight.stale.remove(&channel).unwrap_or(true);
                let again = match result {
                    Ok(()) if subscribe => {
                        in_flight.uncertain.remove(&channel);
                        if !stale {
                            in_flight.moved.remove(&channel);
                            subscribed.insert(channel.clone());
                        }
                        stale
                    }
                    Ok(()) => {
                        in_flight.uncertain.remove(&channel);
                        subscribed.remove(&channel);
                        false
                    }
                    Err(e) => {
                        if subscribe {
                            in_flight.uncertain.insert(channel.clone());
                        }
                        // One line per outage at warn level (the retries after it at debug).
                        if failing {
                            tracing::debug!(?kind, %channel, error = %Redacted(&e), "channel (un)subscription still failing");
                        } else {
                            tracing::warn!(?kind, %channel, error = %Redacted(&e), "cannot (un)subscribe channels; retrying");
                            failing = true;
                        }
                        if retry_at.is_none() {
                            retry_at = Some(tokio::time::Instant::now() + retry);
                            retry = (retry * 2).min(RETRY_MAX);
                        }
                        failed.push(channel.clone());
                        false
                    }
                };
                if blocked.remove(&channel) || again {
                    shared.lock().mark(&channel);
                }
                if running.is_empty() && failed.is_empty() && retry_at.is_none() {
                    if failing {
                        tracing::info!(?kind, "redis subscriptions restored");
                        failing = false;
                    }
                    retry = RETRY_MIN;
                }
            }
            () = retry_sleep => {
                retry_at = None;
                let mut st = shared.lock();
                for channel in failed.drain(..) {
                    st.mark(&channel);
                }
            }
            () = shared.wake.notified() => {}
            () = resweep_sleep => {
                resweeps.pop_front();
                let mut st = shared.lock();
                let wanted: Vec<String> = st.counts.keys().cloned().collect();
                for channel in &wanted {
                    subscribed.remove(channel);
                    st.mark(channel);
                }
            }
            e = events.recv(), if events_open => {
                if matches!(e, Err(RecvError::Closed)) {
                    // The service is gone; only changes and commands wake us from now on.
                    events_open = false;
                } else if on_event(e, kind, &mut subscribed, &mut in_flight, &shared) {
                    resweeps = after_reset();
                }
            }
        }
    }
}
