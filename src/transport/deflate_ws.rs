//! A WebSocket that negotiated permessage-deflate, run on our own frame codec
//! ([`super::wsframe`]) because tungstenite has no extension support. It offers the driver the same
//! calls as tungstenite's stream (ready, send, flush, next), exchanging tungstenite `Message`s, so
//! the session code does not know which one it drives.
//!
//! Reads: bytes go into a buffer that the decoder takes whole messages from; pings are answered
//! and a close is echoed. Writes: frames are encoded into a buffer written out on flush (or
//! before it passes the write batch). Data messages of at least 1 KiB are compressed; a broadcast's
//! frame is compressed once for all its receivers.

use super::wsframe::deflate::{self, Params};
use super::wsframe::frame::{self, Decoder, Incoming, Opcode};
use bytes::{Buf, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Capacity of an empty write buffer kept between flushes; a larger one is freed.
const KEPT_WRITE_BUFFER: usize = 4096;

/// A server WebSocket with permessage-deflate.
pub(crate) struct DeflateWs {
    io: TokioIo<Upgraded>,
    decoder: Decoder,
    params: Params,
    rbuf: BytesMut,
    read_size: usize,
    wbuf: BytesMut,
    batch: usize,
    /// The pong for the latest ping that arrived while the write buffer was full: a peer that
    /// pings but does not read gets one pong in the end, not one per ping (RFC 6455 section 5.5.3
    /// allows answering only the most recent ping), so its pings cannot grow the buffer.
    pending_pong: Option<Bytes>,
    close_sent: bool,
    eof: bool,
}

impl DeflateWs {
    /// Runs `io` (already answered 101 with `params`), with messages of at most `max_message`
    /// bytes, reading `read_size` bytes at a time and writing once `batch` bytes are buffered.
    pub(crate) fn new(
        io: TokioIo<Upgraded>,
        params: Params,
        max_message: usize,
        read_size: usize,
        batch: usize,
    ) -> DeflateWs {
        DeflateWs {
            io,
            decoder: Decoder::new(max_message, true),
            params,
            rbuf: BytesMut::new(),
            read_size: read_size.max(64),
            wbuf: BytesMut::new(),
            batch,
            pending_pong: None,
            close_sent: false,
            eof: false,
        }
    }

    /// Ready for another message once the write buffer is under the batch size.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if self.wbuf.len() >= self.batch {
            ready!(self.poll_write_buf(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Encodes `msg` into the write buffer; nothing is sent after a close frame.
    pub(crate) fn start_send(&mut self, msg: Message) -> Result<(), ()> {
        if self.close_sent {
            return Ok(());
        }
        match msg {
            Message::Text(t) => self.send_data(Opcode::Text, Bytes::from(t)),
            Message::Binary(b) => self.send_data(Opcode::Binary, b),
            Message::Ping(p) => frame::encode(&mut self.wbuf, Opcode::Ping, false, &p),
            Message::Pong(p) => frame::encode(&mut self.wbuf, Opcode::Pong, false, &p),
            Message::Close(c) => {
                match c {
                    Some(c) => frame::encode_close(&mut self.wbuf, Some(u16::from(c.code)), &c.reason),
                    None => frame::encode_close(&mut self.wbuf, None, ""),
                }
                self.close_sent = true;
            }
            Message::Frame(_) => {}
        }
        Ok(())
    }

    fn send_data(&mut self, opcode: Opcode, data: Bytes) {
        if self.params.compresses(data.len()) {
            let z = deflate::compress_shared(&data);
            frame::encode(&mut self.wbuf, opcode, true, &z);
        } else {
            frame::encode(&mut self.wbuf, opcode, false, &data);
        }
    }

    /// Writes the buffer out and flushes the socket.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        ready!(self.poll_write_buf(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(|_| ())?;
        if self.wbuf.capacity() > KEPT_WRITE_BUFFER {
            // A burst's buffer is not kept by a connection that goes quiet.
            self.wbuf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        loop {
            while !self.wbuf.is_empty() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf)) {
                    Ok(0) | Err(_) => return Poll::Ready(Err(())),
                    Ok(n) => self.wbuf.advance(n),
                }
            }
            match self.pending_pong.take() {
                // Nothing follows a close frame.
                Some(p) if !self.close_sent => frame::encode(&mut self.wbuf, Opcode::Pong, false, &p),
                _ => return Poll::Ready(Ok(())),
            }
        }
    }

    /// The next message (pings and pongs included, already answered); `None` at the end of the
    /// stream, `Err` on a read error or a protocol violation (whose close frame is then queued).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ()>>> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Err(v) => {
                    tracing::debug!(code = v.code, reason = v.reason, "websocket protocol violation");
                    crate::metrics::inc(&crate::metrics::METRICS.violations);
                    if !self.close_sent {
                        frame::encode_close(&mut self.wbuf, Some(v.code), v.reason);
                        self.close_sent = true;
                    }
                    return Poll::Ready(Some(Err(())));
                }
                Ok(Some(incoming)) => return Poll::Ready(Some(Ok(self.on_incoming(incoming)))),
                Ok(None) => {}
            }
            if self.eof {
                return Poll::Ready(None);
            }
            if ready!(self.poll_fill(cx)).is_err() {
                return Poll::Ready(Some(Err(())));
            }
        }
    }

    fn on_incoming(&mut self, incoming: Incoming) -> Message {
        match incoming {
            // SAFETY: the decoder checked that text messages are UTF-8.
            Incoming::Text(t) => Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(t) }),
            Incoming::Binary(b) => Message::Binary(b),
            Incoming::Ping(p) => {
                if !self.close_sent {
                    if self.wbuf.len() < self.batch {
                        frame::encode(&mut self.wbuf, Opcode::Pong, false, &p);
                    } else {
                        // The peer is not reading: only the latest pong waits for the buffer to drain.
                        self.pending_pong = Some(p.clone());
                    }
                }
                Message::Ping(p)
            }
            Incoming::Pong(p) => Message::Pong(p),
            Incoming::Close(code) => {
                if !self.close_sent {
                    // Echo the peer's code (RFC 6455 section 5.5.1).
                    frame::encode_close(&mut self.wbuf, code.map(|(c, _)| c), "");
                    self.close_sent = true;
                }
                Message::Close(None)
            }
        }
    }

    /// Reads more bytes into the read buffer (a closed stream sets `eof`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let start = self.rbuf.len();
        if self.rbuf.capacity() - start < self.read_size {
            self.rbuf.reserve(self.read_size);
        }
        // Straight into the spare capacity (the room a large frame's header reserved included),
        // never zeroed first: zeroing it touched up to 64 KiB per read, so a peer that announced
        // a big frame and sent a few bytes of it made the server hold 64 KiB of RSS, and one that
        // trickled bytes cost a 64 KiB memset each. Only what arrives is touched now.
        let mut buf = ReadBuf::uninit(self.rbuf.spare_capacity_mut());
        let at = buf.filled().as_ptr();
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut buf);
        assert_eq!(at, buf.filled().as_ptr(), "the reader kept our buffer");
        let filled = buf.filled().len();
        // SAFETY: a reader initializes the bytes it reports as filled, and `filled` is within the
        // spare capacity `buf` was made from, right after the buffer's `start` bytes.
        unsafe { self.rbuf.set_len(start + filled) };
        match polled {
            Poll::Pending => {
                if self.rbuf.is_empty() {
                    // An idle connection holds no read buffer.
                    self.rbuf = BytesMut::new();
                }
                Poll::Pending
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(())),
            Poll::Ready(Ok(())) => {
                if filled == 0 {
                    self.eof = true;
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}
