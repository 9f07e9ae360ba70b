//! One task per Engine.IO session: the driver owns the sans-IO [`Session`], the connection's
//! handler, its WebSocket(s) and one timer, and moves bytes between them (quinn's
//! `ConnectionDriver` model). HTTP handlers talk to it through commands.

use super::conn::{ConnHandler, transport_to_u8};
use super::mailbox::MailReceiver;
use super::outbox::{OVER_LIMIT_GRACE, Outbox};
pub use super::pipe::Ws;
pub(crate) use super::pipe::WsConn;
use super::pipe::{Read, WsPipe, classify, to_message};
use super::registry::Registry;
use crate::engineio::{Data, Event, Frame, Session, SessionError, Transmit, TransportKind};
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;

/// What HTTP handlers ask of a session's driver.
pub(crate) enum Cmd {
    /// A polling GET; answered with the payload once there is one.
    Poll(oneshot::Sender<Result<Bytes, SessionError>>),
    /// The pending GET's client went away.
    PollAborted,
    /// A GET answer could not be written to the client.
    PollUndelivered,
    /// A polling POST started (an overlapping one closes the session; its `Post` then says so).
    PostStart,
    /// A polling POST's body.
    Post(Bytes, oneshot::Sender<Result<(), SessionError>>),
    /// A POST ended before its body was read.
    PostAborted,
    /// A WebSocket for this session (an upgrade probe).
    Probe(WsConn),
    /// The server is shutting down.
    Shutdown,
}

/// Most loop turns one poll may take before yielding to other tasks.
const TURN_BUDGET: usize = 64;
/// Most bytes waiting for the WebSocket at once (counted against the outbound limit); the rest
/// wait in the outbox.
const WS_BACKLOG_BYTES: usize = 64 * 1024;
/// Drives one session until it is closed and its last bytes are written.
pub(crate) struct Driver {
    session: Session,
    handler: Box<dyn ConnHandler>,
    outbox: Arc<Outbox>,
    transport: Arc<AtomicU8>,
    cmds: MailReceiver<Cmd>,
    ws: Option<WsPipe>,
    probe: Option<WsPipe>,
    /// Probes refused or dropped, still being closed.
    closing_probes: Vec<WsPipe>,
    pending_get: Option<oneshot::Sender<Result<Bytes, SessionError>>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<Instant>,
    registry: Arc<Registry>,
    closed: bool,
    frames: Vec<Frame>,
    /// The handshake was answered or a heartbeat passed: free empty queue buffers once the
    /// connection is quiet.
    shrink_when_idle: bool,
    /// Whether a message (the Socket.IO CONNECT, normally) has arrived.
    had_message: bool,
    /// In this poll, the command mailbox answered `Pending` (its waker is registered): later turns
    /// skip it.
    cmds_idle: bool,
    /// In this poll, the WebSocket's read answered `Pending` (its waker is registered): later
    /// turns skip it, until the WebSocket is replaced.
    reads_idle: bool,
}

impl Driver {
    pub(crate) fn new(
        session: Session,
        handler: Box<dyn ConnHandler>,
        outbox: Arc<Outbox>,
        transport: Arc<AtomicU8>,
        cmds: MailReceiver<Cmd>,
        ws: Option<WsConn>,
        registry: Arc<Registry>,
    ) -> Driver {
        Driver {
            session,
            handler,
            outbox,
            transport,
            cmds,
            ws: ws.map(WsPipe::new),
            probe: None,
            closing_probes: Vec::new(),
            pending_get: None,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_at: None,
            registry,
            closed: false,
            frames: Vec::new(),
            shrink_when_idle: false,
            had_message: false,
            cmds_idle: false,
            reads_idle: false,
        }
    }

    /// How many queued bytes the transport can take now: frames stay in the outbox (where the
    /// limits see them) until the WebSocket has written what it holds, or a polling GET waits.
    fn room_for_bytes(&self) -> usize {
        if self.session.is_closing() {
            return usize::MAX;
        }
        match self.session.transport() {
            TransportKind::WebSocket => match &self.ws {
                Some(ws) => WS_BACKLOG_BYTES.saturating_sub(ws.out_bytes),
                None => 0,
            },
            TransportKind::Polling if self.session.is_poll_pending() => usize::MAX,
            TransportKind::Polling => 0,
        }
    }

    /// Step 2: moves packets and a close request queued by the application into the session. Everything
    /// queued before a close goes out before it.
    fn apply_outbox(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let closing = self.outbox.close_requested();
        let room = if closing { usize::MAX } else { self.room_for_bytes() };
        // Polling with no GET parked: producers queue without waking this task per packet; the
        // next GET (a command) wakes it and takes the whole batch, as Node answers it.
        let parked = room == 0 && self.session.transport() == TransportKind::Polling;
        self.outbox.set_parked(parked);
        self.outbox.drain(cx, &mut self.frames, room);
        let mut progress = !self.frames.is_empty();
        self.session.send_many(self.frames.drain(..));
        if self.outbox.close_requested() && !self.session.is_closing() {
            if self.outbox.overflowed() {
                tracing::warn!(sid = %self.session.sid(), "outbound queue over its hard limit; disconnecting a client that does not read");
                crate::metrics::inc(&crate::metrics::METRICS.slow_client_disconnects);
                self.discard_ws_backlog();
            }
            self.session.close(now);
            progress = true;
        }
        if let Some(since) = self.outbox.over_limit_since()
            && now.duration_since(since) >= OVER_LIMIT_GRACE
            && !self.session.is_closing()
        {
            tracing::warn!(sid = %self.session.sid(), queued = self.outbox.queued_bytes(), "outbound queue full for 10 s; disconnecting a client that does not keep up");
            crate::metrics::inc(&crate::metrics::METRICS.slow_client_disconnects);
            self.discard_ws_backlog();
            self.session.close(now);
            progress = true;
        }
        progress
    }

    /// Drops the frames a client that does not read will never get, so its close frame is next.
    fn discard_ws_backlog(&mut self) {
        if let Some(ws) = &mut self.ws {
            ws.discard_backlog();
        }
        self.outbox.set_in_transport(0);
    }

    fn on_cmd(&mut self, cmd: Cmd, now: Instant, cx: &mut Context<'_>) {
        match cmd {
            Cmd::Poll(reply) => match self.session.handle_poll(now) {
                Ok(()) => self.pending_get = Some(reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::PollAborted => self.session.handle_poll_aborted(now),
            Cmd::PollUndelivered => self.session.handle_transport_error(now),
            Cmd::PostStart => {
                // An error here is answered to the POST's body (`handle_post` checks the same).
                let _ = self.session.handle_post_start(now);
            }
            Cmd::Post(body, reply) => {
                let result = self.session.handle_post(body, now);
                // Run the handlers and apply what they queued (e.g. closing the connection) before
                // answering, so the client's next request sees it, as with Node's synchronous handlers.
                self.process_output(now);
                self.apply_outbox(cx, now);
                let _ = reply.send(result);
            }
            Cmd::PostAborted => self.session.handle_post_aborted(now),
            Cmd::Probe(ws) => match self.session.handle_probe_attached(now) {
                Ok(()) => self.probe = Some(WsPipe::new(ws)),
                Err(_) => {
                    let mut pipe = WsPipe::new(ws);
                    pipe.start_closing(now);
                    self.closing_probes.push(pipe);
                }
            },
            Cmd::Shutdown => {
                // What the application queued before the shutdown is still flushed.
                self.outbox.drain(cx, &mut self.frames, usize::MAX);
                self.session.send_many(self.frames.drain(..));
                self.session
                    .close_gracefully(crate::engineio::CloseReason::ServerShuttingDown, now);
            }
        }
    }

    /// Moves the session's output to the transports and its events to the handler, until the
    /// handlers stop producing more.
    fn process_output(&mut self, now: Instant) -> bool {
        let mut progress = false;
        loop {
            let mut any = false;
            while let Some(t) = self.session.poll_transmit() {
                any = true;
                self.on_transmit(t, now);
            }
            while let Some(e) = self.session.poll_event() {
                any = true;
                self.on_event(e, now);
            }
            if !any {
                return progress;
            }
            progress = true;
        }
    }

    /// Hands one transmit to the GET, the WebSocket or the probe it is for.
    fn on_transmit(&mut self, t: Transmit, now: Instant) {
        if self.ws.is_none() && self.session.transport() == TransportKind::WebSocket {
            // The upgrade completed: frames flushed with it belong on the former probe.
            self.ws = self.probe.take();
            self.reads_idle = false;
        }
        // Kind and size only: frames carry pids (CONNECT), credentials and user data.
        let (kind, len) = transmit_summary(&t);
        tracing::trace!(sid = %self.session.sid(), kind, len, "out");
        match t {
            Transmit::Poll(body) => {
                if let Some(reply) = self.pending_get.take()
                    && reply.send(Ok(body)).is_err()
                {
                    self.session.handle_transport_error(now);
                }
            }
            Transmit::WebSocket(f) => {
                if let Some(ws) = &mut self.ws {
                    ws.push(to_message(f));
                }
            }
            Transmit::CloseWebSocket => {
                if let Some(ws) = &mut self.ws {
                    ws.start_closing(now);
                }
            }
            Transmit::Probe(f) => {
                if let Some(p) = &mut self.probe {
                    p.push(to_message(f));
                }
            }
            Transmit::CloseProbe => self.close_probe(now),
        }
    }

    /// Starts closing the probe, if there is one; it finishes among the closing probes.
    fn close_probe(&mut self, now: Instant) {
        if let Some(mut p) = self.probe.take() {
            p.start_closing(now);
            self.closing_probes.push(p);
        }
    }

    /// Hands one session event to the handler.
    fn on_event(&mut self, e: Event, now: Instant) {
        match &e {
            Event::Message(Data::Text(t)) => {
                tracing::trace!(sid = %self.session.sid(), kind = "text", len = t.len(), "in")
            }
            Event::Message(Data::Binary(b)) => {
                tracing::trace!(sid = %self.session.sid(), kind = "binary", len = b.len(), "in")
            }
            other => tracing::trace!(sid = %self.session.sid(), event = ?other, "in"),
        }
        match e {
            Event::Message(data) => {
                if !self.had_message {
                    // The handshake's buffers are freed once it is answered (and reused by the
                    // next connections' handshakes).
                    self.had_message = true;
                    self.shrink_when_idle = true;
                }
                crate::metrics::inc(&crate::metrics::METRICS.messages_in);
                self.handler.on_message(data, now)
            }
            Event::Upgraded => {
                if self.ws.is_none() {
                    self.ws = self.probe.take();
                    self.reads_idle = false;
                }
                self.transport
                    .store(transport_to_u8(TransportKind::WebSocket), Ordering::Relaxed);
                self.handler.on_upgrade();
            }
            Event::Closed(reason) => {
                self.closed = true;
                // Whatever is still open gets the close deadline from now on.
                if let Some(ws) = &mut self.ws {
                    ws.start_closing(now);
                }
                self.close_probe(now);
                self.outbox.mark_closed();
                self.registry.remove(self.session.sid());
                self.handler.on_close(reason);
                if let Some(reply) = self.pending_get.take() {
                    let _ = reply.send(Err(SessionError::Closed));
                }
            }
        }
    }

    /// Frees the buffers of empty queues, once nothing is in flight: an idle connection then
    /// holds no queue memory, and a busy one gives its buffers back once per heartbeat at most.
    fn shrink_idle(&mut self) {
        let Some(ws) = &mut self.ws else { return };
        if !ws.out.is_empty() || self.probe.is_some() || self.pending_get.is_some() {
            return;
        }
        self.shrink_when_idle = false;
        ws.out = VecDeque::new();
        self.frames = Vec::new();
        self.session.shrink_idle();
        self.outbox.shrink_idle();
    }

    /// The earliest close deadline of a pipe still closing.
    fn close_deadline(&self) -> Option<Instant> {
        self.ws
            .iter()
            .chain(&self.closing_probes)
            .filter_map(WsPipe::pending_deadline)
            .min()
    }

    /// Resets the pipes whose close deadline passed; returns whether any was.
    fn reset_overdue(&mut self, now: Instant) -> bool {
        let mut any = self.ws.as_mut().is_some_and(|ws| ws.reset_if_overdue(now));
        for p in &mut self.closing_probes {
            any |= p.reset_if_overdue(now);
        }
        if any {
            // The reset pipes count as done: the write step drops them this turn.
            tracing::debug!(sid = %self.session.sid(), "closing connection did not finish in time; reset");
        }
        any
    }

    /// Step 1: commands from HTTP handlers (a closed session answers a GET with `Closed` and
    /// ignores the rest).
    fn poll_commands(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        if self.cmds_idle {
            return false;
        }
        let mut progress = false;
        while let Poll::Ready(cmd) = self.cmds.poll_recv(cx) {
            match cmd {
                cmd if !self.closed => self.on_cmd(cmd, now, cx),
                Cmd::Poll(reply) => {
                    let _ = reply.send(Err(SessionError::Closed));
                }
                _ => {}
            }
            progress = true;
        }
        self.cmds_idle = true;
        progress
    }

    /// Step 3: frames from the WebSocket (up to a turn's budget) and from a probe.
    fn poll_reads(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        for _ in 0..TURN_BUDGET {
            if self.reads_idle {
                break;
            }
            let Some(ws) = &mut self.ws else { break };
            let Poll::Ready(msg) = ws.poll_read(cx) else {
                self.reads_idle = true;
                break;
            };
            progress = true;
            match classify(msg) {
                Read::Frame(f) => self.session.handle_ws_frame(f, now),
                Read::Closed => self.session.handle_ws_closed(now),
                Read::Error => self.session.handle_ws_error(now),
                Read::Nothing => {}
            }
            if self.session.is_closed() {
                break;
            }
            self.process_output(now);
        }
        if let Some(p) = &mut self.probe
            && let Poll::Ready(msg) = p.poll_read(cx)
        {
            progress = true;
            match classify(msg) {
                Read::Frame(f) => self.session.handle_probe_frame(f, now),
                Read::Closed | Read::Error => {
                    self.probe = None;
                    self.session.handle_probe_closed(now);
                }
                Read::Nothing => {}
            }
        }
        progress
    }

    /// Step 4: the timer fired: the session's and the handler's timeouts while open, close
    /// deadlines always.
    fn poll_timer(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(at) = self.timer_at else { return false };
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer_at = None;
        let now = now.max(at);
        if !self.closed {
            self.session.handle_timeout(now);
            self.handler.handle_timeout(now);
            self.shrink_when_idle = true;
        }
        self.reset_overdue(now);
        true
    }

    /// Step 5: writes to the WebSocket, the probe and the probes being closed. A failed write
    /// is a transport error (or a closed probe); pipes that are done are dropped.
    fn poll_writes(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        if let Some(ws) = &mut self.ws {
            match ws.poll_write(cx) {
                Ok(p) => progress |= p,
                Err(()) => {
                    ws.done = true;
                    ws.discard_backlog();
                    self.session.handle_ws_error(now);
                    progress = true;
                }
            }
            self.outbox.set_in_transport(ws.out_bytes);
        }
        if let Some(p) = &mut self.probe
            && p.poll_write(cx).is_err()
        {
            self.probe = None;
            self.session.handle_probe_closed(now);
            progress = true;
        }
        for p in &mut self.closing_probes {
            if p.poll_write(cx).is_err() {
                p.done = true;
            }
        }
        self.closing_probes.retain(|p| !p.done);
        progress
    }

    /// Step 6: arms the one timer for the earliest deadline (only close deadlines once closed);
    /// returns true if that deadline has already passed.
    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let close = self.close_deadline();
        let next = if self.closed {
            close
        } else {
            let over = self.outbox.over_limit_since().map(|t| t + OVER_LIMIT_GRACE);
            [self.session.poll_timeout(), self.handler.poll_timeout(), over, close]
                .into_iter()
                .flatten()
                .min()
        };
        if next == self.timer_at {
            return false;
        }
        self.timer_at = next;
        let Some(at) = next else { return false };
        self.timer.as_mut().reset(tokio::time::Instant::from_std(at));
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn finished(&self) -> bool {
        self.closed
            && self.ws.as_ref().is_none_or(|w| w.done)
            && self.probe.is_none()
            && self.closing_probes.iter().all(|p| p.done)
    }
}

impl Future for Driver {
    type Output = ();

    /// One turn per loop: commands, outbox, reads, timer, session output, writes, timer arming;
    /// until nothing moves (or the turn budget is spent, then it yields and wakes itself). A
    /// source that answered `Pending` in this poll has registered its waker and is skipped by the
    /// later turns; the outbox is looked at once more as the poll ends (pushes made meanwhile,
    /// by the handlers or other threads, did not wake this task).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.cmds_idle = false;
        this.reads_idle = false;
        this.outbox.start_driving();
        for _ in 0..TURN_BUDGET {
            let now = Instant::now();
            let mut progress = this.poll_commands(cx, now);
            if !this.closed {
                progress |= this.apply_outbox(cx, now);
                progress |= this.poll_reads(cx, now);
            }
            progress |= this.poll_timer(cx, now);
            progress |= this.process_output(now);
            progress |= this.poll_writes(cx, now);
            progress |= this.arm_timer(cx);
            if this.finished() {
                this.outbox.stop_driving();
                return Poll::Ready(());
            }
            if !progress {
                if this.outbox.stop_driving()
                    && !this.closed
                    && (this.room_for_bytes() > 0 || this.outbox.close_requested())
                {
                    this.outbox.start_driving();
                    continue;
                }
                if this.shrink_when_idle {
                    this.shrink_idle();
                }
                return Poll::Pending;
            }
        }
        this.outbox.stop_driving();
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What a trace line says of a transmit: its kind and size, never its contents.
fn transmit_summary(t: &Transmit) -> (&'static str, usize) {
    match t {
        Transmit::Poll(body) => ("poll", body.len()),
        Transmit::WebSocket(f) => ("websocket", f.len()),
        Transmit::CloseWebSocket => ("close-websocket", 0),
        Transmit::Probe(f) => ("probe", f.len()),
        Transmit::CloseProbe => ("close-probe", 0),
    }
}
