//! The per-connection outbound queue: encoded frames waiting for the connection's driver.
//!
//! Producers (emits, broadcasts, the adapter) push shared frames from any thread without awaiting;
//! the driver drains them into the Engine.IO session. Pushing wakes the driver.

use crate::engineio::Frame;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Context;

/// What happened to a pushed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for sending.
    Queued,
    /// A volatile packet dropped because the connection was not ready to write it.
    DroppedVolatile,
    /// The connection is closed; nothing was queued.
    Closed,
}

/// A connection's outbound queue.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: Mutex<VecDeque<Frame>>,
    bytes: AtomicUsize,
    waker: AtomicWaker,
    close_requested: AtomicBool,
    closed: AtomicBool,
}

impl Outbox {
    /// Queues the frames of one packet (the text frame, then its attachments) together.
    pub fn push(&self, frames: &[Frame], volatile: bool) -> Pushed {
        if self.closed.load(Ordering::Acquire) || self.close_requested.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        let size: usize = frames.iter().map(Frame::len).sum();
        {
            let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
            if volatile && !q.is_empty() {
                return Pushed::DroppedVolatile;
            }
            q.extend(frames.iter().cloned());
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.waker.wake();
        Pushed::Queued
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
        let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Registers the driver's waker, then takes every queued frame.
    pub(crate) fn drain(&self, cx: &mut Context<'_>, out: &mut Vec<Frame>) {
        self.waker.register(cx.waker());
        let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_empty() {
            return;
        }
        let size: usize = q.iter().map(Frame::len).sum();
        out.extend(q.drain(..));
        drop(q);
        self.bytes.fetch_sub(size, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::Str;
    use futures_util::task::noop_waker_ref;

    #[test]
    fn volatile_is_dropped_behind_a_backlog_and_closed_refuses() {
        let o = Outbox::default();
        let f = Frame::Text(Str::from("4x"));
        assert_eq!(o.push(std::slice::from_ref(&f), true), Pushed::Queued);
        assert_eq!(o.push(std::slice::from_ref(&f), true), Pushed::DroppedVolatile);
        assert_eq!(o.push(std::slice::from_ref(&f), false), Pushed::Queued);
        assert_eq!(o.queued_bytes(), 4);
        let mut out = Vec::new();
        o.drain(&mut Context::from_waker(noop_waker_ref()), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(o.queued_bytes(), 0);
        o.mark_closed();
        assert_eq!(o.push(&[f], false), Pushed::Closed);
    }
}
