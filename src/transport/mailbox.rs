//! A driver's command mailbox: an unbounded queue that allocates nothing until it is used.
//! (tokio's unbounded channel allocates a 32-slot block per channel up front, ~1.5 KiB for every
//! connection, though most WebSocket connections never receive a command.)

use futures_util::task::AtomicWaker;
use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

struct Shared<T> {
    /// The queue, and whether the receiver is gone (checked under the same lock, so nothing is
    /// queued after the receiver drained it).
    state: Mutex<(VecDeque<T>, bool)>,
    waker: AtomicWaker,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<T>, bool)> {
        self.state.lock()
    }
}

/// The sending side; cloned freely.
pub(crate) struct MailSender<T>(Arc<Shared<T>>);

impl<T> Clone for MailSender<T> {
    fn clone(&self) -> Self {
        MailSender(self.0.clone())
    }
}

/// The receiving side, owned by the driver.
pub(crate) struct MailReceiver<T>(Arc<Shared<T>>);

/// A new, empty mailbox.
pub(crate) fn mailbox<T>() -> (MailSender<T>, MailReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new((VecDeque::new(), false)),
        waker: AtomicWaker::new(),
    });
    (MailSender(shared.clone()), MailReceiver(shared))
}

impl<T> MailSender<T> {
    /// Queues `value`; gives it back when the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        {
            let mut state = self.0.lock();
            if state.1 {
                return Err(value);
            }
            state.0.push_back(value);
        }
        self.0.waker.wake();
        Ok(())
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().1
    }
}

impl<T> MailReceiver<T> {
    /// The next queued value, or `Pending` (waking this task on the next send).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(v) = self.0.lock().0.pop_front() {
            return Poll::Ready(v);
        }
        self.0.waker.register(cx.waker());
        match self.0.lock().0.pop_front() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

impl<T> Drop for MailReceiver<T> {
    fn drop(&mut self) {
        // Dropping what is queued (e.g. reply senders) tells the waiting handlers at once.
        let queued = {
            let mut state = self.0.lock();
            state.1 = true;
            std::mem::take(&mut state.0)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn queues_in_order_and_refuses_after_the_receiver_is_gone() {
        let (tx, mut rx) = mailbox();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.send(1).unwrap();
        tx.clone().send(2).unwrap();
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(1));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(2));
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(3), Err(3));
    }
}
