//! A deterministic, socket-free harness that drives the sans-IO Engine.IO session and Socket.IO
//! connection on a virtual clock and records a readable wire transcript (`C→S` / `S→C` lines).
//!
//! The "server application" here is the conformance behaviour of the public protocol test suites:
//! Engine.IO echoes every message; Socket.IO serves `/` and `/custom`, emits `auth` on connect,
//! answers `message` with `message-back` and acks `message-with-ack`. `/private` refuses with data.

#![allow(dead_code)]

use bytes::Bytes;
use serde_json::{Value, json};
use sio_server::engineio::request::{self, Method, Query, Route};
use sio_server::engineio::{
    Data, EngineConfig, EngineError, Event, Frame, Session, SessionError, Str, Transmit, TransportKind,
};
use sio_server::socketio::{Connection, DecoderLimits, Incoming, Packet, PacketType};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Which application runs on top of Engine.IO.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Echo every Engine.IO message.
    EngineEcho,
    /// The Socket.IO conformance server.
    SocketIo,
}

struct Slot {
    session: Session,
    conn: Connection,
}

/// The harness: sessions, a virtual clock and the transcript.
pub struct Harness {
    pub config: EngineConfig,
    pub connect_timeout: Duration,
    pub allow_handshake: bool,
    app: App,
    t0: Instant,
    now: Instant,
    slots: HashMap<String, Slot>,
    redactions: Vec<(String, String)>,
    log: String,
}

/// The conformance test suites' timings: pingInterval 300 ms, pingTimeout 200 ms.
pub fn suite_config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        ..EngineConfig::default()
    }
}

fn show(s: &str) -> String {
    s.replace('\x1e', "␞")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

impl Harness {
    pub fn new(app: App) -> Harness {
        let t0 = Instant::now();
        Harness {
            config: suite_config(),
            connect_timeout: Duration::from_millis(1000),
            allow_handshake: true,
            app,
            t0,
            now: t0,
            slots: HashMap::new(),
            redactions: Vec::new(),
            log: String::new(),
        }
    }

    /// The transcript so far, with random ids replaced by `<sidN>` / `<idN>`.
    pub fn transcript(&self) -> String {
        let mut out = self.log.clone();
        for (real, shown) in &self.redactions {
            out = out.replace(real, shown);
        }
        out
    }

    fn line(&mut self, s: impl AsRef<str>) {
        self.log.push_str(s.as_ref());
        self.log.push('\n');
    }

    fn redact(&mut self, real: &str, prefix: &str) {
        let n = self
            .redactions
            .iter()
            .filter(|(_, s)| s.starts_with(&format!("<{prefix}")))
            .count()
            + 1;
        self.redactions.push((real.to_owned(), format!("<{prefix}{n}>")));
    }

    /// The real sid of the n-th session (1-based), for building follow-up requests.
    pub fn sid(&self, n: usize) -> String {
        self.redactions
            .iter()
            .filter(|(_, s)| s.starts_with("<sid"))
            .nth(n - 1)
            .map(|(r, _)| r.clone())
            .expect("no such session")
    }

    /// Advances the virtual clock, firing every deadline on the way in order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        let _ = writeln!(self.log, "     … +{ms}ms (t={}ms)", (target - self.t0).as_millis());
        let sio = self.app == App::SocketIo;
        loop {
            let next = self
                .slots
                .iter()
                .flat_map(|(sid, s)| {
                    let conn = if sio { s.conn.poll_timeout() } else { None };
                    [s.session.poll_timeout(), conn]
                        .into_iter()
                        .flatten()
                        .map(move |t| (t, sid.clone()))
                })
                .filter(|(t, _)| *t <= target)
                .min();
            let Some((at, sid)) = next else { break };
            self.now = at;
            if let Some(slot) = self.slots.get_mut(&sid) {
                slot.session.handle_timeout(at);
                if let (true, Err(v)) = (sio, slot.conn.handle_timeout(at)) {
                    let _ = writeln!(self.log, "     [server closes the connection: {}]", v.reason());
                    slot.session.close(at);
                }
            }
            self.drain(&sid);
        }
        self.now = target;
    }

    /// Moves the virtual clock without firing timers, as if the timer task were late; the next
    /// input must still see every deadline that passed.
    pub fn jump(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let _ = writeln!(
            self.log,
            "     … +{ms}ms, no timer fired (t={}ms)",
            (self.now - self.t0).as_millis()
        );
    }

    fn query(q: &str) -> Query {
        Query::parse(q)
    }

    fn verify(&self, method: Method, q: &str, ws: bool) -> Result<Route, EngineError> {
        let query = Self::query(q);
        let route = request::verify(&self.config, method, &query, ws, |sid| {
            self.slots
                .get(sid)
                .filter(|s| !s.session.is_closed())
                .map(|s| s.session.transport())
        })?;
        if matches!(route, Route::Handshake(_)) && !self.allow_handshake {
            return Err(EngineError::Forbidden);
        }
        Ok(route)
    }

    fn error_line(&mut self, e: EngineError) {
        self.line(format!("S→C  {} {}", e.status(), e.body()));
    }

    fn open_session(&mut self, transport: TransportKind) -> String {
        let id = sio_server::ids::token();
        self.redact(&id, "sid");
        let session = Session::new(id.clone(), transport, self.config.clone(), self.now);
        let conn = Connection::new(DecoderLimits::default(), self.connect_timeout, self.now);
        self.slots.insert(id.clone(), Slot { session, conn });
        id
    }

    /// `GET /socket.io/?<q>` (a handshake or a poll).
    pub fn get(&mut self, q: &str) {
        self.line(format!("C→S  GET /socket.io/?{q}"));
        match self.verify(Method::Get, q, false) {
            Err(e) => self.error_line(e),
            Ok(Route::Handshake(t)) => {
                let sid = self.open_session(t);
                self.drain(&sid);
            }
            Ok(Route::Poll(sid)) => {
                let now = self.now;
                let slot = self.slots.get_mut(&sid).expect("verified");
                match slot.session.handle_poll(now) {
                    Ok(()) => {
                        if !self.drain(&sid) {
                            self.line("     (GET pending)");
                        }
                    }
                    Err(e) => {
                        self.drain(&sid);
                        self.session_error(e);
                    }
                }
            }
            Ok(other) => panic!("unexpected route {other:?}"),
        }
    }

    fn session_error(&mut self, e: SessionError) {
        match e {
            SessionError::Closed => self.error_line(EngineError::UnknownSid),
            SessionError::BadRequest => self.error_line(EngineError::BadRequest),
            SessionError::PollOverlap | SessionError::PostOverlap | SessionError::Parse => {
                self.line("S→C  400 (empty)")
            }
            SessionError::PayloadTooLarge => self.line("S→C  413 (empty)"),
        }
    }

    /// The pending GET's client went away.
    pub fn abort_get(&mut self, sid: &str) {
        self.line("C→S  (pending GET aborted)");
        let now = self.now;
        if let Some(slot) = self.slots.get_mut(sid) {
            slot.session.handle_poll_aborted(now);
        }
        self.drain(sid);
    }

    /// A request with another method and no sid.
    pub fn request(&mut self, method: &str, q: &str) {
        self.line(format!("C→S  {method} /socket.io/?{q}"));
        let m = if method == "POST" { Method::Post } else { Method::Other };
        match self.verify(m, q, false) {
            Err(e) => self.error_line(e),
            Ok(route) => self.line(format!("     (route {route:?})")),
        }
    }

    /// `POST /socket.io/?<q>` with `body`.
    pub fn post(&mut self, q: &str, body: &[u8]) {
        let shown = match std::str::from_utf8(body) {
            Ok(s) if body.len() <= 80 => show(s),
            _ => format!("<{} bytes>", body.len()),
        };
        self.line(format!("C→S  POST /socket.io/?{q}  {shown}"));
        match self.verify(Method::Post, q, false) {
            Err(e) => self.error_line(e),
            Ok(Route::Post(sid)) => {
                let now = self.now;
                let slot = self.slots.get_mut(&sid).expect("verified");
                let result = slot
                    .session
                    .handle_post_start(now)
                    .and_then(|()| slot.session.handle_post(Bytes::copy_from_slice(body), now));
                self.drain(&sid);
                match result {
                    Ok(()) => self.line("S→C  200 ok"),
                    Err(e) => self.session_error(e),
                }
            }
            Ok(other) => panic!("unexpected route {other:?}"),
        }
    }

    /// Opens a WebSocket to `/socket.io/?<q>`. Returns the sid it belongs to, if accepted.
    pub fn ws_open(&mut self, q: &str) -> Option<String> {
        self.line(format!("C→S  WS open /socket.io/?{q}"));
        match self.verify(Method::Get, q, true) {
            Err(e) => {
                self.error_line(e);
                None
            }
            Ok(Route::Handshake(t)) => {
                let sid = self.open_session(t);
                self.drain(&sid);
                Some(sid)
            }
            Ok(Route::Upgrade(sid)) => {
                let now = self.now;
                let slot = self.slots.get_mut(&sid).expect("verified");
                match slot.session.handle_probe_attached(now) {
                    Ok(()) => {
                        self.line("     (probe attached)");
                        Some(sid)
                    }
                    Err(_) => {
                        self.line("S→C  WS close (upgrade refused)");
                        None
                    }
                }
            }
            Ok(other) => panic!("unexpected route {other:?}"),
        }
    }

    /// Sends a text frame on the session's WebSocket (or its probe, before the upgrade).
    pub fn ws_text(&mut self, sid: &str, text: &str) {
        self.ws_frame(sid, Frame::Text(Str::from(text)));
    }

    /// Sends a binary frame.
    pub fn ws_binary(&mut self, sid: &str, bytes: &[u8]) {
        self.ws_frame(sid, Frame::Binary(Bytes::copy_from_slice(bytes)));
    }

    fn ws_frame(&mut self, sid: &str, frame: Frame) {
        let now = self.now;
        let Some(probe) = self
            .slots
            .get(sid)
            .map(|s| s.session.transport() == TransportKind::Polling)
        else {
            self.line("C→S  WS (no such session)");
            return;
        };
        let tag = if probe { "WS(probe)" } else { "WS" };
        let shown = match &frame {
            Frame::Text(s) if s.len() <= 100 => show(s),
            Frame::Text(s) => format!("<text {} bytes>", s.len()),
            Frame::Binary(b) if b.len() <= 16 => format!("binary {}", hex(b)),
            Frame::Binary(b) => format!("<binary {} bytes>", b.len()),
        };
        self.line(format!("C→S  {tag} {shown}"));
        let slot = self.slots.get_mut(sid).expect("checked above");
        if probe {
            slot.session.handle_probe_frame(frame, now);
        } else {
            slot.session.handle_ws_frame(frame, now);
        }
        self.drain(sid);
    }

    /// The client closes its WebSocket.
    pub fn ws_close(&mut self, sid: &str) {
        self.line("C→S  WS close");
        let now = self.now;
        if let Some(slot) = self.slots.get_mut(sid) {
            slot.session.handle_ws_closed(now);
        }
        self.drain(sid);
    }

    /// The server application disconnects the socket of `nsp` (`socket.disconnect()`), or the
    /// whole connection (`socket.disconnect(true)`).
    pub fn server_disconnect(&mut self, sid: &str, nsp: &str, close: bool) {
        self.line(format!("     [server: socket.disconnect({close}) on {nsp}]"));
        let now = self.now;
        let Some(slot) = self.slots.get_mut(sid) else {
            return;
        };
        let nsps: Vec<String> = if close {
            slot.conn.namespaces().map(|(n, _)| n.to_owned()).collect()
        } else {
            vec![nsp.to_owned()]
        };
        for n in nsps {
            slot.session.send_text(&Packet::disconnect(&n).encode_text());
            slot.conn.disconnected(&n);
        }
        if close {
            slot.session.close(now);
        }
        self.drain(sid);
    }

    /// The server application closes the engine session (Node's `socket.close()`).
    pub fn server_close(&mut self, sid: &str) {
        self.line("     [server: engine socket.close()]");
        let now = self.now;
        if let Some(slot) = self.slots.get_mut(sid) {
            slot.session.close(now);
        }
        self.drain(sid);
    }

    /// The server shuts down (Node's `io.close()`): sessions close with "server shutting down".
    pub fn server_shutdown(&mut self, sid: &str) {
        self.line("     [server: shutting down]");
        let now = self.now;
        if let Some(slot) = self.slots.get_mut(sid) {
            slot.session
                .close_gracefully(sio_server::engineio::CloseReason::ServerShuttingDown, now);
        }
        self.drain(sid);
    }

    /// The application emits an event to the socket of `nsp`.
    pub fn server_emit(&mut self, sid: &str, packet: Packet) {
        self.line(format!("     [server: emit {}]", packet.event_name().unwrap_or("?")));
        if let Some(slot) = self.slots.get_mut(sid) {
            send_packet(&mut slot.session, &packet);
        }
        self.drain(sid);
    }

    /// Writes out everything the session wants to send and reacts to its events. Returns whether
    /// a pending GET was answered.
    fn drain(&mut self, sid: &str) -> bool {
        let mut answered = false;
        loop {
            let Some(slot) = self.slots.get_mut(sid) else {
                return answered;
            };
            let mut lines = Vec::new();
            while let Some(t) = slot.session.poll_transmit() {
                lines.push(match t {
                    Transmit::Poll(body) => {
                        answered = true;
                        format!(
                            "S→C  200 {}",
                            show(std::str::from_utf8(&body).expect("payloads are UTF-8"))
                        )
                    }
                    Transmit::WebSocket(f) => format!("S→C  WS {}", frame_str(&f)),
                    Transmit::CloseWebSocket => "S→C  WS close".to_owned(),
                    Transmit::Probe(f) => format!("S→C  WS(probe) {}", frame_str(&f)),
                    Transmit::CloseProbe => "S→C  WS(probe) close".to_owned(),
                });
            }
            let mut events = Vec::new();
            while let Some(e) = slot.session.poll_event() {
                events.push(e);
            }
            for l in lines {
                self.line(l);
            }
            if events.is_empty() {
                return answered;
            }
            for e in events {
                self.on_event(sid, e);
            }
        }
    }

    fn on_event(&mut self, sid: &str, event: Event) {
        let now = self.now;
        match event {
            Event::Upgraded => self.line("     [upgraded to websocket]"),
            Event::Closed(reason) => {
                self.line(format!(
                    "     [session closed: {}]",
                    sio_server::socketio::DisconnectReason::from(reason)
                ));
                self.slots.remove(sid);
            }
            Event::Message(data) => match self.app {
                App::EngineEcho => {
                    let slot = self.slots.get_mut(sid).expect("open");
                    match data {
                        Data::Text(s) => slot.session.send_text(&s),
                        Data::Binary(b) => slot.session.send_binary(b),
                    }
                }
                App::SocketIo => {
                    let slot = self.slots.get_mut(sid).expect("open");
                    match slot.conn.handle_message(data) {
                        Ok(None) => {}
                        Ok(Some(incoming)) => self.on_incoming(sid, incoming),
                        Err(v) => {
                            self.line(format!("     [server closes the connection: {} ({:?})]", v.reason(), v));
                            let slot = self.slots.get_mut(sid).expect("open");
                            slot.session.close(now);
                        }
                    }
                }
            },
        }
    }

    fn on_incoming(&mut self, sid: &str, incoming: Incoming) {
        let slot = self.slots.get_mut(sid).expect("open");
        match incoming {
            Incoming::Connect { nsp, auth } => match nsp.as_str() {
                "/" | "/custom" => {
                    let id = sio_server::ids::token();
                    let slot = self.slots.get_mut(sid).expect("open");
                    slot.conn.connected(&nsp, &id);
                    send_packet(&mut slot.session, &Packet::connect_reply(&nsp, &id));
                    send_packet(&mut slot.session, &Packet::event(&nsp, "auth", [auth]));
                    self.redact(&id, "id");
                }
                "/private" => {
                    let p = Packet::connect_error(&nsp, "not authorized", Some(json!({"code": 401})));
                    send_packet(&mut slot.session, &p);
                }
                _ => send_packet(
                    &mut slot.session,
                    &Packet::connect_error(&nsp, "Invalid namespace", None),
                ),
            },
            Incoming::Packet(p) => match (p.ty, p.event_name()) {
                (PacketType::Disconnect, _) => {
                    let line = format!("     [socket on {} disconnected: client namespace disconnect]", p.nsp);
                    self.line(line);
                }
                (PacketType::Event, Some("message")) if p.nsp == "/" => {
                    let reply = Packet::event("/", "message-back", p.args().iter().cloned())
                        .with_attachments(p.attachments.clone());
                    send_packet(&mut slot.session, &reply);
                }
                (PacketType::Event, Some("message-with-ack")) if p.nsp == "/" => {
                    if let Some(id) = p.id {
                        let reply = Packet::ack("/", id, p.args().to_vec()).with_attachments(p.attachments.clone());
                        send_packet(&mut slot.session, &reply);
                    }
                }
                (PacketType::Ack, _) => {
                    let line = format!("     [server got ack {:?}: {}]", p.id, Value::Array(p.args().to_vec()));
                    self.line(line);
                }
                _ => {}
            },
        }
    }
}

fn frame_str(f: &Frame) -> String {
    match f {
        Frame::Text(s) => show(s),
        Frame::Binary(b) => format!("binary {}", hex(b)),
    }
}

/// Sends a Socket.IO packet over an Engine.IO session: its text, then each attachment.
pub fn send_packet(session: &mut Session, packet: &Packet) {
    let enc = packet.encode();
    session.send_text(&enc.text);
    for b in enc.attachments {
        session.send_binary(b);
    }
}
