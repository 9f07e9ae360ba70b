//! A session's WebSocket as the driver sees it: the socket, the frames waiting to be written on
//! it, and its closing state (close frame after the backlog, reset at the close deadline).

use super::deflate_ws::DeflateWs;
use crate::engineio::{Frame, Str};
use crate::serve::ConnAbort;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The WebSocket type the transports use.
pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// How long a closing WebSocket may take to write its last frames and its close frame. A peer that
/// does not read them by then is reset, so a closed connection never outlives this.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// A WebSocket as the pipe drives it: tungstenite's, or ours when permessage-deflate was
/// negotiated (tungstenite has no extensions). Both exchange tungstenite `Message`s.
pub(crate) enum WsIo {
    /// No extension: tungstenite.
    Plain(Box<Ws>),
    /// permessage-deflate: our frame codec.
    Deflate(Box<DeflateWs>),
}

impl WsIo {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        match self {
            WsIo::Plain(ws) => Pin::new(&mut **ws).poll_ready(cx).map_err(|_| ()),
            WsIo::Deflate(ws) => ws.poll_ready(cx),
        }
    }

    fn start_send(&mut self, msg: Message) -> Result<(), ()> {
        match self {
            WsIo::Plain(ws) => Pin::new(&mut **ws).start_send(msg).map_err(|_| ()),
            WsIo::Deflate(ws) => ws.start_send(msg),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        match self {
            WsIo::Plain(ws) => Pin::new(&mut **ws).poll_flush(cx).map_err(|_| ()),
            WsIo::Deflate(ws) => ws.poll_flush(cx),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ()>>> {
        match self {
            WsIo::Plain(ws) => Pin::new(&mut **ws).poll_next(cx).map(|m| m.map(|r| r.map_err(|_| ()))),
            WsIo::Deflate(ws) => ws.poll_next(cx),
        }
    }
}

/// An upgraded WebSocket and the means to reset its TCP connection.
pub(crate) struct WsConn {
    /// The WebSocket.
    pub(crate) ws: WsIo,
    /// Resets the connection when dropped (absent when not served by [`crate::serve::serve`]).
    pub(crate) abort: Option<ConnAbort>,
}

/// A WebSocket plus the frames waiting to be written on it.
pub(super) struct WsPipe {
    ws: WsIo,
    abort: Option<ConnAbort>,
    pub(super) out: VecDeque<Message>,
    /// Bytes in `out`.
    pub(super) out_bytes: usize,
    /// Set once closing: send a close frame once `out` is written, then stop; a pipe that has
    /// not finished by then is reset.
    close_deadline: Option<Instant>,
    /// The close frame has been queued.
    close_sent: bool,
    /// Nothing waits in the WebSocket's own buffer (the last flush completed, nothing was sent or
    /// read since): a write step with an empty queue then has nothing to do.
    flushed: bool,
    pub(super) done: bool,
}

impl WsPipe {
    pub(super) fn new(conn: WsConn) -> WsPipe {
        WsPipe {
            ws: conn.ws,
            abort: conn.abort,
            out: VecDeque::new(),
            out_bytes: 0,
            close_deadline: None,
            close_sent: false,
            flushed: false,
            done: false,
        }
    }

    pub(super) fn push(&mut self, msg: Message) {
        self.out_bytes += msg.len();
        self.out.push_back(msg);
    }

    /// Closes after what is queued, within [`CLOSE_DEADLINE`] of `now`.
    pub(super) fn start_closing(&mut self, now: Instant) {
        self.close_deadline.get_or_insert(now + CLOSE_DEADLINE);
    }

    /// Drops what is queued: the peer is being disconnected for not reading it.
    pub(super) fn discard_backlog(&mut self) {
        self.out.clear();
        self.out_bytes = 0;
    }

    /// The close deadline, while the pipe still has something to finish.
    pub(super) fn pending_deadline(&self) -> Option<Instant> {
        if self.done { None } else { self.close_deadline }
    }

    /// Resets the connection if its close deadline passed; returns whether it did.
    pub(super) fn reset_if_overdue(&mut self, now: Instant) -> bool {
        if self.pending_deadline().is_none_or(|at| now < at) {
            return false;
        }
        if let Some(abort) = &self.abort {
            abort.abort();
        }
        self.discard_backlog();
        self.done = true;
        crate::metrics::inc(&crate::metrics::METRICS.close_deadline_resets);
        true
    }

    /// Writes what it can; returns Err on a write failure.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        if self.done {
            return Ok(false);
        }
        let mut progress = false;
        if self.close_deadline.is_some() && !self.close_sent && self.out.is_empty() {
            self.push(Message::Close(None));
            self.close_sent = true;
        }
        if self.out.is_empty() && self.flushed {
            return Ok(false);
        }
        let ws = &mut self.ws;
        while !self.out.is_empty() {
            match ws.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => return Ok(progress),
            }
            let msg = self.out.pop_front().expect("not empty");
            self.out_bytes -= msg.len();
            self.flushed = false;
            if ws.start_send(msg).is_err() {
                return Err(());
            }
            progress = true;
        }
        match ws.poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.flushed = true;
                if self.close_sent {
                    self.done = true;
                }
            }
            Poll::Ready(Err(_)) => {
                if self.close_sent {
                    self.done = true;
                    return Ok(progress);
                }
                return Err(());
            }
            Poll::Pending => {}
        }
        Ok(progress)
    }

    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ()>>> {
        if self.done || self.close_sent {
            return Poll::Pending;
        }
        let read = self.ws.poll_next(cx);
        if read.is_ready() {
            // Reading may queue a reply in the WebSocket (a pong, a close echo): flush again.
            self.flushed = false;
        }
        read
    }
}

/// What a WebSocket read produced, for the session.
pub(super) enum Read {
    Frame(Frame),
    Closed,
    Error,
    Nothing,
}

pub(super) fn classify(msg: Option<Result<Message, ()>>) -> Read {
    match msg {
        Some(Ok(Message::Text(t))) => {
            let bytes = Bytes::from(t);
            match Str::from_utf8(bytes) {
                Ok(s) => Read::Frame(Frame::Text(s)),
                Err(_) => Read::Error,
            }
        }
        Some(Ok(Message::Binary(b))) => Read::Frame(Frame::Binary(b)),
        Some(Ok(Message::Close(_))) | None => Read::Closed,
        Some(Ok(_)) => Read::Nothing,
        Some(Err(())) => Read::Error,
    }
}

pub(super) fn to_message(frame: Frame) -> Message {
    match frame {
        // SAFETY: `Str` only ever holds valid UTF-8.
        Frame::Text(s) => Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(s.into_bytes()) }),
        Frame::Binary(b) => Message::Binary(b),
    }
}
