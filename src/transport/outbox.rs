//! The per-connection outbound queue: encoded frames waiting for the connection's driver.
//!
//! Producers (emits, broadcasts, the adapter) push shared frames from any thread without awaiting;
//! the driver drains them into the Engine.IO session only as fast as the transport writes, so the
//! queue holds the connection's whole backlog and its size is what the limits apply to:
//! - past the soft limit, volatile packets are dropped and a clock starts; a connection that stays
//!   past it for [`OVER_LIMIT_GRACE`] is disconnected by its driver;
//! - a packet that would take it past the hard limit closes the connection at once.
//!
//! A connected client therefore never silently misses a non-volatile packet: it either gets it or
//! is disconnected (and resyncs on reconnect).

use crate::engineio::Frame;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::task::Context;
use std::time::{Duration, Instant};

/// How long a connection may stay over its soft limit before it is disconnected.
pub const OVER_LIMIT_GRACE: Duration = Duration::from_secs(10);

/// Byte limits of one outbound queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Past this, volatile packets are dropped and the grace clock runs (8 MiB).
    pub soft: usize,
    /// A packet that would go past this closes the connection (3 × soft).
    pub hard: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits::from_soft(8 << 20)
    }
}

impl OutboxLimits {
    /// Limits with the given soft limit and a hard limit three times larger.
    pub fn from_soft(soft: usize) -> OutboxLimits {
        OutboxLimits {
            soft,
            hard: soft.saturating_mul(3),
        }
    }
}

/// What happened to a pushed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for sending.
    Queued,
    /// A volatile packet dropped because the connection was not ready to write it.
    DroppedVolatile,
    /// The connection is closed; nothing was queued.
    Closed,
    /// The queue would go past its hard limit: nothing was queued and the connection is closing.
    Overflow,
}

/// A connection's outbound queue.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: Mutex<VecDeque<Frame>>,
    bytes: AtomicUsize,
    /// Bytes the driver took from the queue that its transport has not written yet.
    in_transport: AtomicUsize,
    waker: AtomicWaker,
    /// The driver is inside its poll and looks at the queue again before it returns, so a push
    /// need not wake it (a wake then only makes the runtime poll it once more for nothing).
    driving: AtomicBool,
    close_requested: AtomicBool,
    closed: AtomicBool,
    limits: OutboxLimits,
    over_since: Mutex<Option<Instant>>,
    /// Whether `over_since` is set (read without its lock by every drain).
    over: AtomicBool,
    overflowed: AtomicBool,
    /// The driver cannot take frames now (a polling session with no GET parked): a push then
    /// queues without waking it; the GET that arrives wakes it and takes the whole batch.
    parked: AtomicBool,
}

impl Outbox {
    /// An empty queue with these limits.
    pub fn with_limits(limits: OutboxLimits) -> Outbox {
        Outbox {
            limits,
            ..Outbox::default()
        }
    }

    /// Queues the frames of one packet (the text frame, then its attachments) together.
    pub fn push(&self, frames: &[Frame], volatile: bool) -> Pushed {
        if self.closed.load(Ordering::Acquire) || self.close_requested.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        let size: usize = frames.iter().map(Frame::len).sum();
        let mut crossed = false;
        {
            let mut q = self.frames.lock();
            let queued = self.bytes.load(Ordering::Relaxed) + self.in_transport.load(Ordering::Relaxed);
            if volatile && (!q.is_empty() || queued >= self.limits.soft) {
                return Pushed::DroppedVolatile;
            }
            if queued + size > self.limits.hard {
                drop(q);
                self.overflowed.store(true, Ordering::Release);
                self.request_close();
                return Pushed::Overflow;
            }
            for f in frames {
                q.push_back(f.clone());
            }
            let now_queued = queued + size;
            self.bytes.fetch_add(size, Ordering::Relaxed);
            if now_queued > self.limits.soft {
                let mut since = self.over_since.lock();
                // Crossing the soft limit wakes even a parked driver: it arms the grace timer.
                crossed = since.is_none();
                since.get_or_insert_with(Instant::now);
                self.over.store(true, Ordering::Relaxed);
            }
        }
        // Pairs with the fence in `stop_driving`: either the driver sees these bytes before it
        // returns, or this push sees it gone and wakes it. A polling driver with no GET parked
        // (`parked`) is not woken per packet: the next GET takes the batch. Crossing the soft
        // limit always wakes: it arms the grace timer.
        fence(Ordering::SeqCst);
        if crossed || (!self.driving.load(Ordering::Relaxed) && !self.parked.load(Ordering::Acquire)) {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// The driver's poll starts: pushes from now on leave the waking to it.
    pub(crate) fn start_driving(&self) {
        self.driving.store(true, Ordering::Relaxed);
    }

    /// The driver's poll is about to return: pushes wake it again. Returns whether bytes are
    /// queued (pushed while it was polling and not taken yet), which it must then look at.
    pub(crate) fn stop_driving(&self) -> bool {
        self.driving.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.bytes.load(Ordering::Relaxed) > 0
    }

    /// Since when the queue has been over its soft limit, if it is.
    pub fn over_limit_since(&self) -> Option<Instant> {
        *self.over_since.lock()
    }

    /// Whether a push found the queue at its hard limit.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Asks the driver to close the connection gracefully (after what is already queued).
    pub fn request_close(&self) {
        self.close_requested.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether a close was requested.
    pub fn close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    /// Marks the connection closed: later pushes are refused.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        let mut q = self.frames.lock();
        q.clear();
        self.bytes.store(0, Ordering::Relaxed);
        self.in_transport.store(0, Ordering::Relaxed);
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting in the queue, and taken by the transport but not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed) + self.in_transport.load(Ordering::Relaxed)
    }

    /// Whether pushes should leave the driver asleep (it cannot take frames until something else
    /// wakes it: a polling GET). Set before [`Outbox::drain`] in each turn.
    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Release);
    }

    /// Records how many bytes the transport holds unwritten (they count against the limits).
    pub(crate) fn set_in_transport(&self, bytes: usize) {
        // Stored only on a change: the driver calls this every turn, and a store takes the cache
        // line from the broadcasting thread, which reads it on every push.
        if self.in_transport.load(Ordering::Relaxed) != bytes {
            self.in_transport.store(bytes, Ordering::Relaxed);
        }
    }

    /// Frees the queue's buffer if it is empty (see `Session::shrink_idle`).
    pub(crate) fn shrink_idle(&self) {
        let mut q = self.frames.lock();
        if q.is_empty() {
            *q = VecDeque::new();
        }
    }

    /// Registers the driver's waker, then takes queued frames until `max_bytes` are taken (the
    /// last frame may go past it).
    pub(crate) fn drain(&self, cx: &mut Context<'_>, out: &mut Vec<Frame>, max_bytes: usize) {
        self.waker.register(cx.waker());
        let mut q = self.frames.lock();
        if q.is_empty() || max_bytes == 0 {
            return;
        }
        let mut size = 0usize;
        let mut n = 0;
        for f in q.iter() {
            if size >= max_bytes {
                break;
            }
            size += f.len();
            n += 1;
        }
        out.extend(q.drain(..n));
        let left = self.bytes.fetch_sub(size, Ordering::Relaxed) - size;
        // Cleared under the queue's lock (the order `push` takes them in): a push that crosses the
        // soft limit after this drain keeps its clock, so its grace timer is not lost.
        if left + self.in_transport.load(Ordering::Relaxed) <= self.limits.soft {
            // Locked only when set: a drain is per driver turn, and the lock is a write.
            if self.over.load(Ordering::Relaxed) {
                let mut since = self.over_since.lock();
                *since = None;
                self.over.store(false, Ordering::Relaxed);
            }
        }
        drop(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::Str;
    use futures_util::task::noop_waker_ref;
    use std::sync::Arc;

    #[test]
    fn volatile_is_dropped_behind_a_backlog_and_closed_refuses() {
        let o = Outbox::default();
        let f = Frame::Text(Str::from("4x"));
        assert_eq!(o.push(std::slice::from_ref(&f), true), Pushed::Queued);
        assert_eq!(o.push(std::slice::from_ref(&f), true), Pushed::DroppedVolatile);
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(o.queued_bytes(), 4);
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(noop_waker_ref()), &mut out, usize::MAX);
        assert_eq!(out.len(), 2);
        assert_eq!(o.queued_bytes(), 0);
        o.mark_closed();
        assert_eq!(o.push(&[f], false), Pushed::Closed);
    }

    /// Counts wake-ups.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &std::sync::Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_parked_driver_is_not_woken_per_packet_but_is_at_the_soft_limit() {
        let o = Outbox::with_limits(OutboxLimits { soft: 10, hard: 100 });
        let wakes = std::sync::Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = futures_util::task::waker(wakes.clone());
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(&waker), &mut out, 0);
        let f = Frame::Text(Str::from("4xx")); // 3 bytes
        o.set_parked(true);
        for _ in 0..3 {
            assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        }
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "parked: queued without a wake-up");
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            1,
            "past the soft limit: woken to arm the grace timer"
        );
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        o.set_parked(false);
        o.drain(&mut Context::from_waker(&waker), &mut out, usize::MAX);
        assert_eq!(out.len(), 5, "the whole batch at once");
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2, "unparked: every push wakes");
        o.set_parked(true);
        o.drain(&mut Context::from_waker(&waker), &mut out, 0);
        o.request_close();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 3, "a close request always wakes");
    }

    #[test]
    fn soft_and_hard_limits() {
        let o = Outbox::with_limits(OutboxLimits { soft: 10, hard: 20 });
        let f = Frame::Text(Str::from("4xxxx")); // 5 bytes
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert!(o.over_limit_since().is_none(), "at the soft limit, not past it");
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert!(o.over_limit_since().is_some());
        assert_eq!(o.push(std::slice::from_ref(&f), true), Pushed::DroppedVolatile);
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Overflow);
        assert!(o.overflowed() && o.close_requested());
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(noop_waker_ref()), &mut out, 11);
        assert_eq!(
            (out.len(), o.queued_bytes()),
            (3, 5),
            "bytes: 5 + 5 < 11, so a third frame"
        );
        assert!(o.over_limit_since().is_none(), "back under the soft limit");
    }

    #[test]
    fn a_push_while_the_driver_polls_leaves_the_waking_to_it() {
        use std::sync::atomic::AtomicUsize;
        use std::task::{Wake, Waker};
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let o = Outbox::default();
        let f = Frame::Text(Str::from("4x"));
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(&waker), &mut out, usize::MAX);
        o.start_driving();
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(count.0.load(Ordering::Relaxed), 0, "no wake while the driver polls");
        assert!(o.stop_driving(), "the driver is told bytes are queued");
        o.drain(&mut Context::from_waker(&waker), &mut out, usize::MAX);
        assert_eq!(out.len(), 1);
        assert!(!o.stop_driving(), "nothing queued");
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "woken once the driver returned");
    }

    #[test]
    fn bytes_the_transport_holds_count_against_the_limits() {
        let o = Outbox::with_limits(OutboxLimits { soft: 10, hard: 20 });
        let f = Frame::Text(Str::from("4xxxx")); // 5 bytes
        o.set_in_transport(12);
        assert_eq!(o.queued_bytes(), 12);
        assert_eq!(
            o.push(std::slice::from_ref(&f), true),
            Pushed::DroppedVolatile,
            "over the soft limit"
        );
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert!(o.over_limit_since().is_some());
        assert_eq!(
            o.push(std::slice::from_ref(&f), false),
            Pushed::Overflow,
            "12 + 5 + 5 > 20"
        );
        o.set_in_transport(0);
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(noop_waker_ref()), &mut out, usize::MAX);
        assert!(o.over_limit_since().is_none(), "back under the soft limit once written");
    }
}
