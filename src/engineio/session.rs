//! The Engine.IO session state machine: handshake, heartbeat, polling flush semantics, the
//! polling→WebSocket upgrade and closing, fed inputs and the current time (sans-IO).
//!
//! The I/O layer calls `handle_*` with what happened and `now`, then drains [`Session::poll_transmit`]
//! (bytes to write), [`Session::poll_event`] (what the layer above should know) and arms one timer at
//! [`Session::poll_timeout`]. Every input first enforces deadlines that have passed, so an expired
//! pong deadline is honoured when the next request arrives even if the timer has not fired yet.

use super::config::{EngineConfig, TransportKind};
use super::packet::{Data, Frame, Packet};
use super::payload;
use super::str::Str;
use super::timer::{Timer, TimerTable};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;
use thiserror::Error;

/// During a probed upgrade, how often a parked polling GET is released with a noop so the client
/// can finish pausing polling (Node's 100 ms check interval). The GET parked when the probe is
/// answered is released at once (as socketioxide does; Node waits for its first check): the
/// client pauses polling on `3probe` and upgrades as soon as that GET returns, so the 100 ms
/// wait was most of the time to upgrade. A client that polls again before it saw `3probe` gets
/// its noop at the next check, as with Node.
const UPGRADE_NOOP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a session closed. Node's reason strings are written once, in
/// [`crate::socketio::DisconnectReason`], which every close reason maps into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the transport (WebSocket closed, or a `1` packet over polling).
    TransportClose,
    /// The transport failed: overlapping or aborted requests, a ping from the client, oversize frames.
    TransportError,
    /// No pong within `pingTimeout` of a ping.
    PingTimeout,
    /// The client sent bytes that are not an Engine.IO packet.
    ParseError,
    /// The server closed the session.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
}

/// A request the session refuses; the HTTP layer answers it as Node does.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The session is closed (answer as an unknown sid: 400 `{"code":1,…}`).
    #[error("session closed")]
    Closed,
    /// A second GET while one is pending (answer 400 with an empty body; the session is closed).
    #[error("overlap from client")]
    PollOverlap,
    /// A second POST while one is being read (answer 400 with an empty body; the session is closed).
    #[error("data request overlap from client")]
    PostOverlap,
    /// The POST body is larger than `maxHttpBufferSize` (answer 413; the session stays open).
    #[error("payload too large")]
    PayloadTooLarge,
    /// The POST body did not decode (answer 400; the session is closed with "parse error").
    #[error("parse error")]
    Parse,
    /// The request does not fit the session's state (answer 400 `{"code":3,…}`).
    #[error("bad request")]
    BadRequest,
}

/// What the session tells the layer above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The client sent a message.
    Message(Data),
    /// The session moved from polling to WebSocket.
    Upgraded,
    /// The session is closed; no more input is accepted. Always the last event.
    Closed(CloseReason),
}

/// Bytes the I/O layer must write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Answer the pending polling GET with this payload (status 200, `text/plain; charset=UTF-8`).
    /// A payload of one text packet shares that packet's bytes (a broadcast is not copied).
    Poll(Bytes),
    /// Write this frame on the session's WebSocket.
    WebSocket(Frame),
    /// Close the session's WebSocket.
    CloseWebSocket,
    /// Write this frame on the WebSocket that is probing for an upgrade.
    Probe(Frame),
    /// Close the probing WebSocket; the session stays on polling.
    CloseProbe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// `close()` was called; waiting for the write buffer to drain.
    Closing,
    /// Polling only: waiting for the GET that carries the close packet.
    AwaitingCloseGet,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upgrade {
    None,
    /// A WebSocket is attached and may probe.
    Attached,
    /// The probe was answered; polling requests are released with noops.
    Probed,
    Done,
}

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    sid: String,
    transport: TransportKind,
    config: EngineConfig,
    state: State,
    upgrade: Upgrade,
    write_buf: VecDeque<Frame>,
    get_pending: bool,
    post_pending: bool,
    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    closing_reason: Option<CloseReason>,
    /// The latest `now` seen, for deadlines armed outside an input call.
    last_now: Instant,
}

impl Session {
    /// Opens a session: queues the open packet and schedules the first ping one `pingInterval` later.
    pub fn new(sid: String, transport: TransportKind, config: EngineConfig, now: Instant) -> Session {
        let mut s = Session {
            sid,
            transport,
            state: State::Open,
            upgrade: Upgrade::None,
            write_buf: VecDeque::new(),
            get_pending: false,
            post_pending: false,
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closing_reason: None,
            last_now: now,
            config,
        };
        let open = s.open_frame();
        s.write_buf.push_back(open);
        s.timers.set(Timer::Ping, now + s.config.ping_interval);
        if transport == TransportKind::Polling {
            // The handshake GET itself is the first poll.
            s.get_pending = true;
        }
        s.flush();
        s
    }

    /// The handshake JSON, fields in Node's order.
    /// The open packet `0{"sid":…}`, written once into its frame (no intermediate JSON string).
    fn open_frame(&self) -> Frame {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(112 + self.sid.len());
        out.push('0');
        let _ = write!(out, r#"{{"sid":"{}","upgrades":["#, self.sid);
        for (i, u) in self.config.upgrades_for(self.transport).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{u}\"");
        }
        let _ = write!(
            out,
            r#"],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.config.ping_interval.as_millis(),
            self.config.ping_timeout.as_millis(),
            self.config.max_payload
        );
        Frame::Text(Str::from(out))
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The transport currently carrying the session.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Whether the session is closed (it then only has output left to drain).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the session is closing or closed (no longer accepting packets to send).
    pub fn is_closing(&self) -> bool {
        self.state != State::Open
    }

    /// The transport failed outside a specific request, e.g. a GET answer could not be written
    /// ("transport error").
    pub fn handle_transport_error(&mut self, now: Instant) {
        self.handle_timeout(now);
        self.close_now(CloseReason::TransportError);
    }

    /// Whether a polling GET is waiting for data.
    pub fn is_poll_pending(&self) -> bool {
        self.get_pending
    }

    /// Bytes queued but not yet handed to a transport.
    pub fn buffered_bytes(&self) -> usize {
        self.write_buf.iter().map(Frame::len).sum()
    }

    // ---- outbound ----

    /// Queues an encoded packet (usually a message frame, possibly shared with other sessions).
    pub fn send(&mut self, frame: Frame) {
        if self.state != State::Open {
            return;
        }
        self.write_buf.push_back(frame);
        self.flush();
    }

    /// Queues several encoded packets, then hands them to the transport at once (one polling
    /// response carries them all).
    pub fn send_many(&mut self, frames: impl IntoIterator<Item = Frame>) {
        if self.state != State::Open {
            return;
        }
        self.write_buf.extend(frames);
        self.flush();
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) {
        self.send(Frame::message_text(text));
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, bytes: Bytes) {
        self.send(Frame::Binary(bytes));
    }

    /// Closes the session from the server side (Node's `socket.close()`): buffered packets are
    /// flushed first, then the transport is closed; the reason is "forced close".
    pub fn close(&mut self, now: Instant) {
        self.close_gracefully(CloseReason::ForcedClose, now);
    }

    /// Like [`Session::close`] with an explicit reason (e.g. [`CloseReason::ServerShuttingDown`]).
    pub fn close_gracefully(&mut self, reason: CloseReason, now: Instant) {
        self.handle_timeout(now);
        if self.state != State::Open {
            return;
        }
        self.closing_reason = Some(reason);
        self.state = State::Closing;
        self.maybe_close_transport();
    }

    // ---- polling ----

    /// A polling GET arrived. Its answer comes out of [`Session::poll_transmit`] as
    /// [`Transmit::Poll`], now or when there is something to send.
    pub fn handle_poll(&mut self, now: Instant) -> Result<(), SessionError> {
        self.handle_timeout(now);
        self.check_polling()?;
        if self.get_pending {
            self.close_now(CloseReason::TransportError);
            return Err(SessionError::PollOverlap);
        }
        self.get_pending = true;
        if self.state == State::AwaitingCloseGet {
            self.write_poll_response(Vec::new(), true);
            self.finish_close();
            return Ok(());
        }
        // During a probed upgrade a GET sent after the probe was answered stays parked until the
        // next noop check (see `UPGRADE_NOOP_INTERVAL`), unless there is data for it.
        self.flush();
        Ok(())
    }

    /// The pending GET's connection went away before it was answered ("transport error").
    pub fn handle_poll_aborted(&mut self, now: Instant) {
        self.handle_timeout(now);
        if self.get_pending && self.state != State::Closed {
            self.get_pending = false;
            self.close_now(CloseReason::TransportError);
        }
    }

    /// A polling POST started; call [`Session::handle_post`] with its whole body once read.
    pub fn handle_post_start(&mut self, now: Instant) -> Result<(), SessionError> {
        self.handle_timeout(now);
        self.check_polling()?;
        if self.post_pending {
            self.close_now(CloseReason::TransportError);
            return Err(SessionError::PostOverlap);
        }
        self.post_pending = true;
        Ok(())
    }

    /// The POST started by [`Session::handle_post_start`] ended before its body was read.
    pub fn handle_post_aborted(&mut self, now: Instant) {
        self.handle_timeout(now);
        self.post_pending = false;
    }

    /// The body of a polling POST. `Ok` means answer `200 ok`.
    pub fn handle_post(&mut self, body: Bytes, now: Instant) -> Result<(), SessionError> {
        self.post_pending = false;
        self.handle_timeout(now);
        self.check_polling()?;
        if body.len() > self.config.max_payload {
            return Err(SessionError::PayloadTooLarge);
        }
        let (packets, error) = payload::decode(body);
        for packet in packets {
            if self.state == State::Closed {
                break;
            }
            if packet == Packet::Close {
                // The client closes the polling transport: release a pending GET with a noop.
                if self.get_pending {
                    self.write_poll_response(vec![Packet::Noop.encode()], false);
                }
                self.close_now(CloseReason::TransportClose);
                break;
            }
            self.on_packet(packet, now);
        }
        match error {
            Some(_) if self.state != State::Closed => {
                self.close_now(CloseReason::ParseError);
                Err(SessionError::Parse)
            }
            _ => Ok(()),
        }
    }

    fn check_polling(&self) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        if self.transport != TransportKind::Polling {
            return Err(SessionError::BadRequest);
        }
        Ok(())
    }

    // ---- websocket ----

    /// A frame arrived on the session's WebSocket.
    pub fn handle_ws_frame(&mut self, frame: Frame, now: Instant) {
        self.handle_timeout(now);
        if self.state == State::Closed || self.transport != TransportKind::WebSocket {
            return;
        }
        if frame.len() > self.config.max_payload {
            self.close_now(CloseReason::TransportError);
            return;
        }
        match frame.decode() {
            Ok(Packet::Close) => self.close_now(CloseReason::TransportClose),
            Ok(packet) => self.on_packet(packet, now),
            Err(_) => self.close_now(CloseReason::ParseError),
        }
    }

    /// The session's WebSocket was closed by the peer ("transport close").
    pub fn handle_ws_closed(&mut self, now: Instant) {
        self.handle_timeout(now);
        if self.transport == TransportKind::WebSocket && self.state != State::Closed {
            self.close_now(CloseReason::TransportClose);
        }
    }

    /// The session's WebSocket failed: I/O error, protocol error or oversize frame ("transport error").
    pub fn handle_ws_error(&mut self, now: Instant) {
        self.handle_timeout(now);
        if self.transport == TransportKind::WebSocket && self.state != State::Closed {
            self.close_now(CloseReason::TransportError);
        }
    }

    // ---- upgrade ----

    /// A WebSocket arrived for this polling session. `Err` means close that WebSocket at once.
    pub fn handle_probe_attached(&mut self, now: Instant) -> Result<(), SessionError> {
        self.handle_timeout(now);
        if self.state != State::Open {
            return Err(SessionError::Closed);
        }
        if self.transport != TransportKind::Polling || self.upgrade != Upgrade::None || !self.config.allow_upgrades {
            return Err(SessionError::BadRequest);
        }
        self.upgrade = Upgrade::Attached;
        self.timers.set(Timer::Upgrade, now + self.config.upgrade_timeout);
        Ok(())
    }

    /// A frame arrived on the probing WebSocket.
    pub fn handle_probe_frame(&mut self, frame: Frame, now: Instant) {
        self.handle_timeout(now);
        if !matches!(self.upgrade, Upgrade::Attached | Upgrade::Probed) {
            return;
        }
        match frame.decode() {
            Ok(Packet::Ping(data)) if data == "probe" => {
                self.transmits.push_back(Transmit::Probe(Packet::Pong(data).encode()));
                self.upgrade = Upgrade::Probed;
                self.release_parked_get();
                self.timers.set(Timer::UpgradeNoop, now + UPGRADE_NOOP_INTERVAL);
            }
            Ok(Packet::Upgrade) if self.state != State::Closed => self.complete_upgrade(),
            _ => self.abort_upgrade(),
        }
    }

    /// The probing WebSocket closed or failed before the upgrade completed.
    pub fn handle_probe_closed(&mut self, now: Instant) {
        self.handle_timeout(now);
        if matches!(self.upgrade, Upgrade::Attached | Upgrade::Probed) {
            self.upgrade = Upgrade::None;
            self.timers.stop(Timer::Upgrade);
            self.timers.stop(Timer::UpgradeNoop);
        }
    }

    /// During a probed upgrade: answers a parked GET with what is buffered, or else a noop, so
    /// the client can finish pausing polling.
    fn release_parked_get(&mut self) {
        if self.get_pending {
            self.flush();
        }
        if self.get_pending {
            self.write_poll_response(vec![Packet::Noop.encode()], false);
        }
    }

    fn abort_upgrade(&mut self) {
        self.upgrade = Upgrade::None;
        self.timers.stop(Timer::Upgrade);
        self.timers.stop(Timer::UpgradeNoop);
        self.transmits.push_back(Transmit::CloseProbe);
    }

    fn complete_upgrade(&mut self) {
        self.timers.stop(Timer::Upgrade);
        self.timers.stop(Timer::UpgradeNoop);
        if self.get_pending {
            // The discarded polling transport is closed: a GET still parked gets a close packet.
            self.write_poll_response(vec![Packet::Close.encode()], false);
        }
        self.upgrade = Upgrade::Done;
        self.transport = TransportKind::WebSocket;
        self.events.push_back(Event::Upgraded);
        self.flush();
        if self.state == State::Closing || self.state == State::AwaitingCloseGet {
            self.state = State::Closing;
            self.maybe_close_transport();
        }
    }

    // ---- time ----

    /// The next instant at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            None
        } else {
            self.timers.next()
        }
    }

    /// Fires every timer that has expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        while self.state != State::Closed {
            let Some((timer, due)) = self.timers.pop_expired(now) else {
                break;
            };
            match timer {
                Timer::Ping => {
                    if self.state == State::Open {
                        self.write_buf.push_back(Packet::Ping(Str::default()).encode());
                        // The deadline runs from when the ping was due, so a late timer or a request
                        // arriving after both deadlines still sees the session time out.
                        self.timers.set(Timer::PongDeadline, due + self.config.ping_timeout);
                        self.flush();
                    }
                }
                Timer::PongDeadline => self.close_now(CloseReason::PingTimeout),
                Timer::Upgrade => {
                    if matches!(self.upgrade, Upgrade::Attached | Upgrade::Probed) {
                        self.abort_upgrade();
                    }
                }
                Timer::Close => self.finish_close(),
                Timer::UpgradeNoop => {
                    if self.upgrade == Upgrade::Probed {
                        self.release_parked_get();
                        self.timers.set(Timer::UpgradeNoop, due + UPGRADE_NOOP_INTERVAL);
                    }
                }
            }
        }
    }

    /// Frees the queues' buffers when they are empty (an idle connection then holds none; the
    /// driver calls this after a heartbeat, so a busy connection keeps its buffers between them).
    pub fn shrink_idle(&mut self) {
        if self.write_buf.is_empty() && self.transmits.is_empty() && self.events.is_empty() {
            self.write_buf = VecDeque::new();
            self.transmits = VecDeque::new();
            self.events = VecDeque::new();
        }
    }

    // ---- output ----

    /// The next bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the layer above, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn on_packet(&mut self, packet: Packet, now: Instant) {
        if self.state != State::Open {
            return;
        }
        match packet {
            Packet::Pong(_) => {
                self.timers.stop(Timer::PongDeadline);
                self.timers.set(Timer::Ping, now + self.config.ping_interval);
            }
            // A v4 client never pings: "invalid heartbeat direction".
            Packet::Ping(_) => self.close_now(CloseReason::TransportError),
            Packet::Message(data) => self.events.push_back(Event::Message(data)),
            Packet::Open(_) | Packet::Close | Packet::Upgrade | Packet::Noop => {}
        }
    }

    /// Node's `flush`: hands the whole write buffer to the transport when it can write.
    fn flush(&mut self) {
        if self.write_buf.is_empty() || self.state == State::Closed {
            return;
        }
        match self.transport {
            TransportKind::Polling if self.get_pending => {
                // Everything buffered goes in this one answer, as in Node (encoded straight from
                // the buffer: no intermediate list).
                self.get_pending = false;
                let body = payload::encode_bytes(&self.write_buf);
                self.write_buf.clear();
                self.transmits.push_back(Transmit::Poll(body));
            }
            TransportKind::Polling => {}
            TransportKind::WebSocket => {
                self.transmits.extend(self.write_buf.drain(..).map(Transmit::WebSocket));
            }
        }
        if self.state == State::Closing && self.write_buf.is_empty() {
            // Drained: the pending close can proceed (mirrors Node's "drain" listener).
            self.close_transport();
        }
    }

    fn write_poll_response(&mut self, mut frames: Vec<Frame>, append_close: bool) {
        if append_close {
            if frames.is_empty() {
                frames.push(Packet::Noop.encode());
            }
            frames.push(Packet::Close.encode());
        }
        self.get_pending = false;
        self.transmits.push_back(Transmit::Poll(payload::encode_bytes(&frames)));
    }

    fn maybe_close_transport(&mut self) {
        if self.write_buf.is_empty() {
            self.close_transport();
        } else {
            self.flush();
        }
    }

    /// Node's `closeTransport` → `transport.close()` for a graceful close.
    fn close_transport(&mut self) {
        if self.state != State::Closing {
            return;
        }
        match self.transport {
            TransportKind::WebSocket => {
                self.transmits.push_back(Transmit::CloseWebSocket);
                self.finish_close();
            }
            TransportKind::Polling if self.get_pending => {
                self.write_poll_response(vec![Packet::Close.encode()], false);
                self.finish_close();
            }
            // A server shutting down does not wait for the next GET (Node discards the transport).
            TransportKind::Polling if self.closing_reason == Some(CloseReason::ServerShuttingDown) => {
                self.finish_close()
            }
            TransportKind::Polling => {
                self.state = State::AwaitingCloseGet;
                self.timers.stop_all();
                self.timers.set(Timer::Close, self.last_now + self.config.close_timeout);
            }
        }
    }

    fn finish_close(&mut self) {
        let reason = self.closing_reason.unwrap_or(CloseReason::ForcedClose);
        self.close_now(reason);
    }

    /// Node's `onClose`: the session is gone at once; the transport is closed.
    fn close_now(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.timers.stop_all();
        self.write_buf.clear();
        if matches!(self.upgrade, Upgrade::Attached | Upgrade::Probed) {
            self.transmits.push_back(Transmit::CloseProbe);
        }
        match self.transport {
            TransportKind::Polling if self.get_pending => {
                self.write_poll_response(vec![Packet::Close.encode()], false);
            }
            TransportKind::Polling => {}
            TransportKind::WebSocket => {
                if !self.transmits.iter().any(|t| *t == Transmit::CloseWebSocket) {
                    self.transmits.push_back(Transmit::CloseWebSocket);
                }
            }
        }
        self.events.push_back(Event::Closed(reason));
    }
}
