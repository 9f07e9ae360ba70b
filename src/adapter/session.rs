//! Connection state recovery on one server (Node's `SessionAwareAdapter`): every EVENT delivered
//! without ack id and not volatile gets an offset and is logged; a socket that closed for a
//! recoverable reason leaves its session behind. Both are kept for the recovery window and swept;
//! the log is also bounded in bytes (oldest packets dropped first: a client whose offset was
//! dropped gets a fresh session), and so are the saved sessions (oldest dropped first). A task
//! per adapter sweeps both every second, so an idle namespace lets them go too.
//!
//! A restore hands back the logged frames themselves (shared `Bytes`, never decoded or copied)
//! and replays at most [`MAX_REPLAY_BYTES`]: a client that missed more gets a fresh session
//! (`recovered` false, as after an expired window), since a partial replay would lose packets
//! silently and a larger one would only fill the connection's send queue.

use super::{
    Adapter, AdapterFactory, BoxFuture, BroadcastOptions, Restored, Session, SessionEvent, needs_offset, push_offset,
};
use crate::engineio::Frame;
use crate::server::rooms::Room;
use crate::server::{Namespace, encode_with};
use crate::socketio::{Packet, Parser};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most sessions kept at once per namespace; past it the oldest is dropped.
const MAX_SESSIONS: usize = 100_000;

/// Most bytes of logged frames one restore replays (the default send-queue soft limit); past it
/// the client gets a fresh session.
pub const MAX_REPLAY_BYTES: usize = 8 << 20;

/// How often the adapter's task sweeps expired packets and sessions.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a saved session costs: its ids, rooms and `data` (as JSON), plus a fixed overhead.
fn session_size(s: &Session) -> usize {
    let data = match &s.data {
        serde_json::Value::Null => 4,
        v => serde_json::to_vec(v).map_or(0, |b| b.len()),
    };
    let rooms: usize = s.rooms.iter().map(|r| r.len() + 24).sum();
    128 + s.sid.len() + s.pid.len() + rooms + data
}

/// Builds a [`SessionAwareAdapter`] per namespace.
#[derive(Clone, Copy, Debug)]
pub struct SessionAwareFactory {
    /// How long a session and its packets stay restorable (`RECOVERY_MAX_DISCONNECTION_MS`).
    pub max_disconnection: Duration,
    /// Most bytes of logged packets per namespace (`RECOVERY_LOG_BYTES`).
    pub max_log_bytes: usize,
    /// Most bytes of saved sessions per namespace (`RECOVERY_SESSION_BYTES`).
    pub max_session_bytes: usize,
    /// The parser packets are encoded with (`PARSER`).
    pub parser: Parser,
}

impl AdapterFactory for SessionAwareFactory {
    fn create(&self, _nsp: &str) -> Arc<dyn Adapter> {
        let adapter = Arc::new(
            SessionAwareAdapter::new(self.max_disconnection, self.max_log_bytes)
                .with_parser(self.parser)
                .with_max_session_bytes(self.max_session_bytes),
        );
        spawn_sweeper(&adapter);
        adapter
    }
}

/// Sweeps `adapter` every [`SWEEP_EVERY`] until it is dropped (the task holds a `Weak`). Without
/// a Tokio runtime (unit tests) the sweep runs on traffic only.
fn spawn_sweeper(adapter: &Arc<SessionAwareAdapter>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(adapter);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(a) = weak.upgrade() else { return };
            a.sweep_at(Instant::now());
        }
    });
}

/// One logged packet, kept as the frames it was delivered in (shared with the sockets' queues).
#[derive(Debug)]
struct Logged {
    seq: u64,
    at: Instant,
    rooms: Vec<Room>,
    except: Vec<Room>,
    frames: Vec<Frame>,
    size: usize,
}

/// The single-server recovering adapter.
#[derive(Debug)]
pub struct SessionAwareAdapter {
    window: Duration,
    max_log_bytes: usize,
    max_session_bytes: usize,
    max_replay_bytes: usize,
    /// Taken by each delivery before `state`: see [`Adapter::delivery_fence`].
    fence: Mutex<()>,
    state: Mutex<State>,
    parser: Parser,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    packets: VecDeque<Logged>,
    bytes: usize,
    /// Each saved session, when it was saved and its [`session_size`].
    sessions: HashMap<String, (Session, Instant, usize)>,
    /// Sum of the saved sessions' sizes.
    session_bytes: usize,
    /// Sessions in the order they were persisted, to sweep from the front.
    order: VecDeque<(Instant, String)>,
}

impl State {
    fn remove_session(&mut self, pid: &str) -> Option<Session> {
        let (session, _, size) = self.sessions.remove(pid)?;
        self.session_bytes -= size;
        Some(session)
    }

    fn sweep(&mut self, now: Instant, window: Duration, max_bytes: usize, max_session_bytes: usize) {
        while let Some(p) = self.packets.front() {
            if now.saturating_duration_since(p.at) <= window && self.bytes <= max_bytes {
                break;
            }
            self.bytes -= p.size;
            self.packets.pop_front();
        }
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= window
                && self.order.len() <= MAX_SESSIONS
                && self.session_bytes <= max_session_bytes
            {
                break;
            }
            if let Some((at, pid)) = self.order.pop_front()
                && self.sessions.get(&pid).is_some_and(|(_, t, _)| *t == at)
            {
                self.remove_session(&pid);
            }
        }
    }
}

/// Parses an offset this adapter issued: decimal digits only.
fn parse_offset(offset: &str) -> Option<u64> {
    if offset.is_empty() || offset.len() > 20 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    offset.parse().ok()
}

/// Whether a packet sent to `rooms` minus `except` reached a socket in `session_rooms` (Node's
/// `shouldIncludePacket`).
fn should_include(session_rooms: &[String], rooms: &[Room], except: &[Room]) -> bool {
    let included = rooms.is_empty() || session_rooms.iter().any(|r| rooms.iter().any(|x| **x == **r));
    let excluded = session_rooms.iter().any(|r| except.iter().any(|x| **x == **r));
    included && !excluded
}

impl SessionAwareAdapter {
    /// An adapter keeping sessions and packets for `window`, at most `max_log_bytes` of packets.
    pub fn new(window: Duration, max_log_bytes: usize) -> SessionAwareAdapter {
        SessionAwareAdapter {
            window,
            max_log_bytes,
            max_session_bytes: 64 << 20,
            max_replay_bytes: MAX_REPLAY_BYTES,
            fence: Mutex::default(),
            state: Mutex::default(),
            parser: Parser::Default,
        }
    }

    /// Encodes logged packets with `parser` (the server's `PARSER`).
    pub fn with_parser(mut self, parser: Parser) -> SessionAwareAdapter {
        self.parser = parser;
        self
    }

    /// Keeps at most `bytes` of saved sessions (`RECOVERY_SESSION_BYTES`), oldest dropped first.
    pub fn with_max_session_bytes(mut self, bytes: usize) -> SessionAwareAdapter {
        self.max_session_bytes = bytes;
        self
    }

    /// Replays at most `bytes` of missed packets per restore; past it the client gets a fresh session.
    pub fn with_max_replay_bytes(mut self, bytes: usize) -> SessionAwareAdapter {
        self.max_replay_bytes = bytes;
        self
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    fn sweep(&self, st: &mut State, now: Instant) {
        st.sweep(now, self.window, self.max_log_bytes, self.max_session_bytes);
    }

    /// Drops expired packets and sessions (the timer's sweep).
    fn sweep_at(&self, now: Instant) {
        let mut st = self.lock();
        self.sweep(&mut st, now);
        // Give back what a burst left behind once the log is empty.
        if st.packets.is_empty() && st.packets.capacity() > 64 {
            st.packets.shrink_to_fit();
        }
        if st.order.is_empty() && st.order.capacity() > 64 {
            st.order.shrink_to_fit();
            st.sessions.shrink_to_fit();
        }
    }

    /// Encodes `packet`, with the next offset and logged if it needs one; returns its frames.
    fn log(&self, st: &mut State, mut packet: Packet, opts: &BroadcastOptions, now: Instant) -> Vec<Frame> {
        if !needs_offset(&packet, opts) {
            return encode_with(self.parser, &packet);
        }
        st.next_seq += 1;
        push_offset(&mut packet, &st.next_seq.to_string());
        let frames = encode_with(self.parser, &packet);
        let size = frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.len(),
                Frame::Binary(b) => b.len(),
            })
            .sum::<usize>();
        st.bytes += size;
        st.packets.push_back(Logged {
            seq: st.next_seq,
            at: now,
            rooms: opts.rooms.clone(),
            except: opts.except.clone(),
            frames: frames.clone(),
            size,
        });
        self.sweep(st, now);
        frames
    }

    /// The sans-IO part of [`Adapter::restore_session`], at time `now`.
    fn restore_at(&self, pid: &str, offset: &str, now: Instant) -> Option<Restored> {
        let mut st = self.lock();
        self.sweep(&mut st, now);
        // Single use: a failed attempt burns the session too.
        let session = st.remove_session(pid)?;
        let seq = parse_offset(offset)?;
        let first = st.packets.front()?.seq;
        let at = usize::try_from(seq.checked_sub(first)?).ok()?;
        if st.packets.get(at)?.seq != seq {
            return None;
        }
        // Shared frames only (reference counts): nothing is decoded or copied under the lock.
        let mut bytes = 0usize;
        let mut missed_frames = Vec::new();
        for p in st.packets.iter().skip(at + 1) {
            if !should_include(&session.rooms, &p.rooms, &p.except) {
                continue;
            }
            bytes += p.size;
            if bytes > self.max_replay_bytes {
                tracing::info!(
                    max_bytes = self.max_replay_bytes,
                    "a client missed more than one restore replays; it gets a fresh session"
                );
                return None;
            }
            missed_frames.push(p.frames.clone());
        }
        Some(Restored {
            session,
            missed: Vec::new(),
            missed_frames,
            read_to: None,
        })
    }

    /// The sans-IO part of [`Adapter::persist_session`], at time `now`.
    fn persist_at(&self, session: Session, event: SessionEvent, now: Instant) {
        if event != SessionEvent::Disconnected {
            return;
        }
        let size = session_size(&session);
        let mut st = self.lock();
        st.remove_session(&session.pid);
        st.order.push_back((now, session.pid.clone()));
        st.session_bytes += size;
        st.sessions.insert(session.pid.clone(), (session, now, size));
        self.sweep(&mut st, now);
    }
}

impl Adapter for SessionAwareAdapter {
    fn recovery(&self) -> bool {
        true
    }

    fn deliver(
        &self,
        nsp: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<(), super::AdapterError>> {
        // A copy for the admin UI's live `event_sent`, only when one is watching.
        let observed = nsp.observer().filter(|o| o.wants_events()).map(|_| packet.clone());
        let fence = self.fence.lock();
        let frames = self.log(&mut self.lock(), packet, opts, Instant::now());
        // Delivered under the fence, so each socket gets the packets in offset order; the observer
        // hears of it after (it emits to the admin namespace, whose delivery takes its own fence).
        let (delivered, sent_to) = nsp.push_frames(&frames, opts);
        drop(fence);
        nsp.report_sent(&frames, delivered, &sent_to, observed.as_ref());
        Box::pin(std::future::ready(Ok(())))
    }

    fn delivery_fence(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        Some(self.fence.lock())
    }

    fn persist_session(&self, session: Session, event: SessionEvent) {
        self.persist_at(session, event, Instant::now());
    }

    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>> {
        let restored = self.restore_at(pid, offset, Instant::now());
        Box::pin(std::future::ready(restored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: except.iter().map(|r| Room::from(*r)).collect(),
            ..BroadcastOptions::default()
        }
    }

    fn session(pid: &str, rooms: &[&str]) -> Session {
        Session {
            sid: "s1".into(),
            pid: pid.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            data: json!({"n": 1}),
        }
    }

    /// The text frame of what `log` returns, without the Engine.IO `4`.
    fn text(frames: Vec<Frame>) -> String {
        match &frames[0] {
            Frame::Text(t) => t[1..].to_owned(),
            Frame::Binary(_) => panic!("a text frame first"),
        }
    }

    fn emit(a: &SessionAwareAdapter, event: &str, o: &BroadcastOptions, now: Instant) -> String {
        let mut st = a.lock();
        text(a.log(&mut st, Packet::event("/", event, [json!(1)]), o, now))
    }

    #[test]
    fn offsets_are_appended_only_to_plain_events() {
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20);
        let now = Instant::now();
        assert_eq!(emit(&a, "e", &opts(&[], &[]), now), r#"2["e",1,"1"]"#);
        assert_eq!(emit(&a, "e", &opts(&["r"], &[]), now), r#"2["e",1,"2"]"#);
        let mut st = a.lock();
        let acked = a.log(&mut st, Packet::event("/", "e", []).with_id(7), &opts(&[], &[]), now);
        assert_eq!(text(acked), r#"27["e"]"#);
        let mut volatile = opts(&[], &[]);
        volatile.flags.volatile = true;
        assert_eq!(
            text(a.log(&mut st, Packet::event("/", "e", []), &volatile, now)),
            r#"2["e"]"#
        );
        let ack = a.log(&mut st, Packet::ack("/", 1, vec![]), &opts(&[], &[]), now);
        assert_eq!(text(ack), "31[]");
        let bin = Packet::event("/x", "b", [crate::socketio::placeholder(0)])
            .with_attachments(vec![bytes::Bytes::from_static(b"\x01")]);
        assert_eq!(
            text(a.log(&mut st, bin, &opts(&[], &[]), now)),
            r#"51-/x,["b",{"_placeholder":true,"num":0},"3"]"#
        );
        assert_eq!(st.packets.len(), 3);
        assert_eq!(
            st.bytes,
            13 + 13 + 46 + 1,
            "the frames' bytes, Engine.IO prefix included"
        );
        // The attachment is logged as its own frame, replayed as is.
        assert_eq!(st.packets[2].frames.len(), 2);
    }

    #[test]
    fn restore_replays_after_the_offset_filtered_by_rooms_and_excepts_once() {
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20);
        let now = Instant::now();
        emit(&a, "before", &opts(&["r"], &[]), now); // offset 1: the client saw it
        emit(&a, "all", &opts(&[], &[]), now);
        emit(&a, "other-room", &opts(&["x"], &[]), now);
        emit(&a, "mine", &opts(&["r"], &[]), now);
        emit(&a, "excepted", &opts(&["r"], &["s1"]), now);
        emit(&a, "private", &opts(&["s1"], &[]), now);
        a.persist_at(session("p", &["s1", "r"]), SessionEvent::Disconnected, now);
        let r = a.restore_at("p", "1", now).expect("restored");
        assert_eq!(r.session, session("p", &["s1", "r"]));
        assert!(r.missed.is_empty(), "the logged frames, never decoded");
        let got: Vec<String> = r.missed_frames.into_iter().map(text).collect();
        assert_eq!(
            got,
            [r#"2["all",1,"2"]"#, r#"2["mine",1,"4"]"#, r#"2["private",1,"6"]"#]
        );
        assert!(a.restore_at("p", "1", now).is_none(), "single use");
    }

    #[test]
    fn a_session_never_shows_its_pid() {
        let s = session("secret-pid-0123456789", &["s1"]);
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn bad_input_gives_nothing() {
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20);
        let now = Instant::now();
        emit(&a, "e", &opts(&[], &[]), now);
        for (pid, offset) in [
            ("nope", "1"),
            ("p", "x1"),
            ("p", "+1"),
            ("p", ""),
            ("p", "99"),
            ("p", "0"),
        ] {
            a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, now);
            assert!(a.restore_at(pid, offset, now).is_none(), "{pid} {offset}");
        }
        // Connected / Changed are not kept by this adapter.
        a.persist_at(session("q", &["s1"]), SessionEvent::Changed, now);
        assert!(a.restore_at("q", "1", now).is_none());
    }

    #[test]
    fn sessions_and_packets_expire_after_the_window() {
        let w = Duration::from_secs(10);
        let a = SessionAwareAdapter::new(w, 1 << 20);
        let t0 = Instant::now();
        emit(&a, "e", &opts(&[], &[]), t0);
        a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, t0);
        assert!(a.restore_at("p", "1", t0 + w + Duration::from_millis(1)).is_none());
        assert!(a.lock().sessions.is_empty() && a.lock().packets.is_empty());
    }

    #[test]
    fn the_log_is_bounded_in_bytes_dropping_the_oldest() {
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 40);
        let now = Instant::now();
        for _ in 0..5 {
            emit(&a, "e", &opts(&[], &[]), now); // 13 bytes each
        }
        let st = a.lock();
        assert!(st.bytes <= 40);
        assert_eq!(st.packets.iter().map(|p| p.seq).collect::<Vec<_>>(), [3, 4, 5]);
        drop(st);
        a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, now);
        assert!(
            a.restore_at("p", "1", now).is_none(),
            "a dropped offset cannot be resumed"
        );
    }

    #[test]
    fn a_restore_replays_at_most_its_byte_budget_else_a_fresh_session() {
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20).with_max_replay_bytes(26);
        let now = Instant::now();
        emit(&a, "e", &opts(&[], &[]), now); // offset 1, seen
        emit(&a, "e", &opts(&[], &[]), now); // 13 bytes each
        emit(&a, "e", &opts(&[], &[]), now);
        a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, now);
        assert_eq!(a.restore_at("p", "1", now).expect("fits").missed_frames.len(), 2);
        emit(&a, "e", &opts(&[], &[]), now);
        a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, now);
        assert!(a.restore_at("p", "1", now).is_none(), "39 bytes > 26: fresh session");
        a.persist_at(session("p", &["s1"]), SessionEvent::Disconnected, now);
        assert!(a.restore_at("p", "2", now).is_some(), "26 bytes fit");
    }

    #[test]
    fn saved_sessions_are_bounded_in_bytes_oldest_dropped_first() {
        let one = session_size(&session("p0", &["s1", "room"]));
        let a = SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20).with_max_session_bytes(3 * one);
        let now = Instant::now();
        emit(&a, "e", &opts(&[], &[]), now);
        for i in 0..5 {
            a.persist_at(
                session(&format!("p{i}"), &["s1", "room"]),
                SessionEvent::Disconnected,
                now,
            );
        }
        let st = a.lock();
        assert_eq!(st.sessions.len(), 3);
        assert_eq!(st.session_bytes, 3 * one);
        drop(st);
        assert!(a.restore_at("p1", "1", now).is_none(), "the oldest went first");
        assert!(a.restore_at("p4", "1", now).is_some());
        assert_eq!(a.lock().session_bytes, 2 * one, "a restore gives its bytes back");
        // A big session costs its rooms and data.
        let mut big = session("big", &["s1"]);
        big.rooms.extend((0..100).map(|i| format!("{i:0>256}")));
        assert!(session_size(&big) > 100 * 256);
    }

    #[tokio::test]
    async fn a_timer_sweeps_an_idle_namespace_and_ends_with_the_adapter() {
        let a = Arc::new(SessionAwareAdapter::new(Duration::from_millis(50), 1 << 20));
        spawn_sweeper(&a);
        emit(&a, "e", &opts(&[], &[]), Instant::now());
        a.persist_session(session("p", &["s1"]), SessionEvent::Disconnected);
        assert_eq!(a.lock().sessions.len(), 1);
        // No traffic: only the timer can drop them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(a.lock().sessions.is_empty() && a.lock().packets.is_empty()) {
            assert!(Instant::now() < deadline, "swept within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(a.lock().session_bytes, 0);
        let weak = Arc::downgrade(&a);
        drop(a);
        assert!(weak.upgrade().is_none(), "the task holds no strong reference");
    }
}
