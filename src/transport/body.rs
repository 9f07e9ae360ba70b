//! The body of a polling GET answer: reports back when it was dropped before being sent, so a
//! payload taken from the session is never lost silently (the session is closed instead).

use super::driver::Cmd;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A one-chunk body that tells the session's driver if it is dropped unsent.
pub(crate) struct PollBody {
    data: Option<Bytes>,
    driver: Option<super::mailbox::MailSender<Cmd>>,
}

impl PollBody {
    pub(crate) fn new(data: Bytes, driver: super::mailbox::MailSender<Cmd>) -> PollBody {
        PollBody {
            data: Some(data),
            driver: Some(driver),
        }
    }
}

impl Body for PollBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.data.take() {
            Some(d) => {
                self.driver = None;
                Poll::Ready(Some(Ok(Frame::data(d))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

impl Drop for PollBody {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = driver.send(Cmd::PollUndelivered);
        }
    }
}
