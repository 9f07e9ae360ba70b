//! One namespace's streams adapter: broadcasts, joins, leaves and disconnects are appended to the
//! stream (through the process's one [`super::writer::Writer`]) and read back by the process's
//! reader, which delivers every broadcast locally, ours included, in stream order and with the
//! entry id as offset; requests and responses (acks, `fetchSockets`, `serverSideEmit`) go over
//! pub/sub through the shared [`ClusterAdapter`], as msgpack like Node's adapter. Sessions are
//! written through to `sio:session:<pid>` and restored by any server (see [`super`]).

use super::codec::{
    self, Body, StreamMessage, decode_entry, decode_session, encode_entry, encode_session_scoped, parse_stream_id,
    session_key, session_nsp, should_replay,
};
use super::reader::parse_entries;
use super::writer::Op;
use super::{Shared, StreamId};
use crate::adapter::cluster::ClusterAdapter;
use crate::adapter::{
    Adapter, AdapterError, BoxFuture, BroadcastFlags, BroadcastOptions, RemoteAck, Restored, Room, Session,
    SessionEvent, SocketInfo, needs_offset, push_offset,
};
use crate::metrics::{self, METRICS};
use crate::server::Namespace;
use crate::server::namespace::WeakNamespace;
use crate::socketio::Packet;
use parking_lot::{Mutex, MutexGuard};
use redis::Value as RValue;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// Broadcasts kept after local delivery, to close the gap between a restore's last `XRANGE` and
/// what the reader delivered meanwhile (usually milliseconds, but unbounded under load), and to
/// answer a restore whose offset the ring still covers without any `XRANGE` (a reconnect storm:
/// thousands of restores, each scanning the stream from its own offset, cost seconds of CPU): at
/// most this many, and at most [`RING_BYTES`] of stream entries. A gap the ring no longer holds
/// gives the client a fresh session (see [`settle`]).
const RING_ENTRIES: usize = 16384;
/// See [`RING_ENTRIES`].
const RING_BYTES: usize = 4 << 20;

/// Entries read per `XRANGE` call of a restore.
const XRANGE_BATCH: usize = 1000;

/// Takes a session in one step: its value and remaining time to live, then deletes it.
const TAKE_SESSION: &str = "local v = redis.call('GET', KEYS[1]) if not v then return false end local t = redis.call('PTTL', KEYS[1]) redis.call('DEL', KEYS[1]) return {v, t}";

/// A pid as our servers and Node's issue them (20 base64id characters); anything else is refused
/// before Redis is asked.
fn valid_pid(pid: &str) -> bool {
    (1..=64).contains(&pid.len())
        && pid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='))
}

/// The offset a replayed or ring packet carries: its last argument, which the adapter pushed (the
/// entry id) since only packets that [`needs_offset`] are replayed or kept.
fn offset_of(p: &Packet) -> Option<StreamId> {
    match &p.data {
        Some(Value::Array(args)) => args.last().and_then(Value::as_str).and_then(parse_stream_id),
        _ => None,
    }
}

/// A broadcast the reader delivered here, kept for a restore finishing meanwhile.
struct Delivered {
    id: StreamId,
    packet: Packet,
    opts: BroadcastOptions,
    size: usize,
}

/// The recent broadcasts, bounded by [`RING_ENTRIES`] and [`RING_BYTES`].
#[derive(Default)]
struct Ring {
    entries: VecDeque<Delivered>,
    bytes: usize,
    /// The ring holds every broadcast of its namespace delivered after this id: the reader's
    /// position when the adapter was created or the reader started, then the newest entry
    /// dropped. `None`: the reader has not started; the ring proves nothing.
    floor: Option<StreamId>,
}

impl Ring {
    fn push(&mut self, d: Delivered) {
        self.bytes += d.size;
        self.entries.push_back(d);
        while self.entries.len() > RING_ENTRIES || self.bytes > RING_BYTES {
            let Some(old) = self.entries.pop_front() else { break };
            self.bytes -= old.size;
            self.floor = self.floor.max(Some(old.id));
        }
    }

    /// The reader starts (or the adapter is created) at `pos`: what came before it was never
    /// delivered here, so the ring cannot vouch for it.
    fn start_at(&mut self, pos: StreamId) {
        self.floor = self.floor.max(Some(pos));
    }

    /// Whether the ring holds every broadcast delivered after `after`.
    fn covers(&self, after: StreamId) -> bool {
        self.floor.is_some_and(|f| f <= after)
    }

    /// The packets delivered after `after` up to `upto`, that a session in `rooms` got; `None`
    /// when the ring does not hold all of them (dropped, or delivered before it started).
    fn between(&self, after: StreamId, upto: StreamId, rooms: &[Room]) -> Option<Vec<Packet>> {
        if !self.covers(after) {
            return None;
        }
        // The entries are in stream order: start at the first one after `after`.
        let first = self.entries.partition_point(|d| d.id <= after);
        Some(
            self.entries
                .range(first..)
                .take_while(|d| d.id <= upto)
                .filter(|d| should_replay(rooms, &d.opts))
                .map(|d| d.packet.clone())
                .collect(),
        )
    }
}

/// The streams adapter of one namespace.
pub struct StreamsAdapter {
    nsp_name: String,
    cluster: Arc<ClusterAdapter>,
    shared: Arc<Shared>,
    recovery: bool,
    nsp: OnceLock<WeakNamespace>,
    /// Held by every local delivery of the reader: see [`Adapter::delivery_fence`].
    fence: Mutex<()>,
    ring: Mutex<Ring>,
}

impl StreamsAdapter {
    pub(super) fn new(nsp: &str, cluster: Arc<ClusterAdapter>, shared: Arc<Shared>, recovery: bool) -> StreamsAdapter {
        StreamsAdapter {
            nsp_name: nsp.to_owned(),
            cluster,
            shared,
            recovery,
            nsp: OnceLock::new(),
            fence: Mutex::new(()),
            ring: Mutex::default(),
        }
    }

    /// The reader starts at `pos` (or already had when this adapter was created).
    pub(super) fn reader_started(&self, pos: StreamId) {
        self.ring.lock().start_at(pos);
    }

    fn namespace(&self) -> Option<Namespace> {
        self.nsp.get()?.upgrade()
    }

    fn uid(&self) -> &str {
        self.cluster.uid()
    }

    /// Appends a message of this namespace to the stream; the receiver gets the entry id.
    fn append(&self, body: Body) -> tokio::sync::oneshot::Receiver<super::writer::XaddResult> {
        let msg = StreamMessage {
            uid: self.uid().to_owned(),
            nsp: self.nsp_name.clone(),
            body,
        };
        self.shared.writer.xadd(encode_entry(&msg))
    }

    /// Handles one entry of this namespace read from the stream (any server's, ours included).
    pub(super) fn on_entry(&self, id: &str, sid: StreamId, msg: StreamMessage, size: usize) {
        let Some(nsp) = self.namespace() else {
            self.shared.set_reader_pos(sid);
            return;
        };
        let own = msg.uid == self.uid();
        match msg.body {
            // Without recovery the server delivered our own broadcasts itself.
            Body::Broadcast { mut packet, opts } if !own || self.recovery => {
                let local = BroadcastOptions {
                    flags: BroadcastFlags {
                        local: true,
                        ..opts.flags
                    },
                    ..opts.clone()
                };
                let _fence = self.fence.lock();
                if self.recovery && needs_offset(&packet, &opts) {
                    push_offset(&mut packet, id);
                    self.ring.lock().push(Delivered {
                        id: sid,
                        packet: packet.clone(),
                        opts,
                        size,
                    });
                }
                let d = nsp.local_broadcast(&packet, &local);
                metrics::adapter_broadcast_in(false, d.queued + d.dropped);
                // Under the fence: a restore sees either before this delivery or after it.
                self.shared.set_reader_pos(sid);
                return;
            }
            Body::SocketsJoin { opts, rooms } if !own => nsp.local_add_sockets(&opts, &rooms),
            Body::SocketsLeave { opts, rooms } if !own => nsp.local_del_sockets(&opts, &rooms),
            Body::DisconnectSockets { opts, close } if !own => nsp.local_disconnect_sockets(&opts, close),
            _ => {}
        }
        self.shared.set_reader_pos(sid);
    }

    fn write_session(&self, session: &Session, event: SessionEvent) {
        let key = session_key(&self.shared.session_prefix, &session.pid);
        let px = self.shared.window.as_millis() as u64;
        let value = || {
            let s = codec::Session {
                sid: session.sid.clone(),
                pid: session.pid.clone(),
                rooms: session.rooms.iter().map(|r| Room::from(r.as_str())).collect(),
                data: session.data.clone(),
            };
            encode_session_scoped(&s, &self.nsp_name, self.uid())
        };
        let pid = &session.pid;
        let queued = self.shared.session_write(|live| match event {
            SessionEvent::Connected | SessionEvent::Changed => {
                let value = value();
                live.insert(pid.clone(), (key.clone(), value.clone()));
                Some(Op::Set { key, value, px })
            }
            SessionEvent::Disconnected => {
                live.remove(pid);
                Some(Op::Set {
                    key,
                    value: value(),
                    px,
                })
            }
            SessionEvent::Ended => live.remove(pid).map(|(key, value)| Op::DelIfEqual { key, value }),
        });
        if !queued {
            tracing::warn!(sid = %session.sid, "session write dropped: the stream write queue is full");
        }
    }
}

/// Whether a session written for `written` (`None`: by Node, which does not record it) may be
/// restored in namespace `nsp`, `gated` when that namespace has middlewares a restore would skip.
fn nsp_may_restore(written: Option<&str>, nsp: &str, gated: bool) -> bool {
    match written {
        Some(n) => n == nsp,
        None => !gated,
    }
}

/// [`Adapter::settle_restore`] given the reader's position and the restore's last read: trims
/// `restored.missed` to what the reader will not deliver, completes it from the ring, and says
/// whether the result is provably complete (else the socket must get a fresh session).
fn settle(reader: Option<StreamId>, read_to: Option<StreamId>, ring: &Ring, restored: &mut Restored) -> bool {
    let (Some(reader), Some(read_to)) = (reader, read_to) else {
        return false;
    };
    // The reader delivers what comes after its position to the joined socket: not twice.
    restored.missed.retain(|p| offset_of(p).is_some_and(|o| o <= reader));
    if reader <= read_to {
        return true;
    }
    // The reader went past the restore's last read: what it delivered in between comes from
    // the ring, which must hold all of it.
    let rooms: Vec<Room> = restored.session.rooms.iter().map(|r| Room::from(r.as_str())).collect();
    match ring.between(read_to, reader, &rooms) {
        Some(more) => {
            restored.missed.extend(more);
            true
        }
        None => false,
    }
}

/// Why a restore gave a fresh session (logged at debug; the client just gets `recovered=false`).
fn refuse(why: &'static str) -> Option<Restored> {
    metrics::inc(&METRICS.streams_restores_refused);
    tracing::debug!(reason = why, "session not restored");
    None
}

/// The asynchronous part of [`Adapter::restore_session`]: take the session (single use), check it
/// belongs to `nsp` and that `offset` is still in the stream, then read what was missed.
/// `gated`: the namespace has middlewares (which a restore skips), so a session that does not
/// name its namespace (Node's) is refused there: it may have been issued by another namespace.
/// `from_ring`: the ring covered `offset` when the restore began, so only the offset's own entry
/// is read from the stream (it must still be there): the restore reads up to `offset` itself and
/// [`settle`] takes what followed from the ring (or refuses, if the ring dropped it meanwhile).
async fn restore(
    shared: Arc<Shared>,
    nsp: String,
    pid: String,
    offset: String,
    gated: bool,
    from_ring: bool,
) -> Option<Restored> {
    if !valid_pid(&pid) {
        return refuse("malformed pid");
    }
    if parse_stream_id(&offset).is_none() {
        return refuse("offset is not a stream id");
    }
    let service = &shared.service;
    let key = session_key(&shared.session_prefix, &pid);
    let taken = service
        .query(redis::cmd("EVAL").arg(TAKE_SESSION).arg(1).arg(&key).clone())
        .await;
    let (raw, pttl) = match taken {
        Ok(RValue::Array(v)) => match (v.first(), v.get(1)) {
            (Some(RValue::BulkString(raw)), Some(RValue::Int(t))) => (raw.clone(), *t),
            _ => return refuse("unexpected session reply"),
        },
        Ok(_) => return refuse("unknown, expired or used pid"),
        Err(e) => {
            tracing::warn!(error = %crate::adapter::redis::service::Redacted(&e), "cannot read a session; fresh socket");
            return refuse("redis error");
        }
    };
    if !nsp_may_restore(session_nsp(&raw).as_deref(), &nsp, gated) {
        // Someone presented a pid to another namespace (or a Node session, which does not name
        // its namespace, to one with middlewares): put the session back for its own.
        let px = pttl.max(1);
        let _ = service
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&raw)
                    .arg("PX")
                    .arg(px)
                    .arg("NX")
                    .clone(),
            )
            .await;
        return refuse("pid of another namespace");
    }
    let Ok(session) = decode_session(&raw) else {
        return refuse("undecodable session");
    };
    if session.pid != pid {
        return refuse("session of another pid");
    }
    if from_ring {
        // Still in the stream, as Node checks (one entry read, not the scan from it).
        let one = service
            .query(
                redis::cmd("XRANGE")
                    .arg(&shared.stream)
                    .arg(&offset)
                    .arg(&offset)
                    .arg("COUNT")
                    .arg(1)
                    .clone(),
            )
            .await;
        let Ok(one) = one else { return refuse("redis error") };
        if parse_entries(&one).first().map(|(id, _)| parse_stream_id(id)) != Some(parse_stream_id(&offset)) {
            return refuse("offset no longer in the stream");
        }
        metrics::inc(&METRICS.streams_restores);
        return Some(restored_session(session, Vec::new(), parse_stream_id(&offset)));
    }
    // One inclusive scan from the offset: its first entry must be the offset itself (still in the
    // stream, as Node checks), so a `MAXLEN ~` trim cannot slip between a check and the scan.
    let wanted = parse_stream_id(&offset);
    let mut from = offset.clone();
    let mut first = true;
    let mut cursor = offset.clone();
    let mut missed = Vec::new();
    let (mut bytes, mut scanned) = (0usize, 0usize);
    let scan_limit = (shared.max_len as usize).saturating_mul(2).max(XRANGE_BATCH);
    loop {
        let batch = service
            .query(
                redis::cmd("XRANGE")
                    .arg(&shared.stream)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(XRANGE_BATCH)
                    .clone(),
            )
            .await;
        let Ok(batch) = batch else { return refuse("redis error") };
        let mut entries = parse_entries(&batch);
        let n = entries.len();
        if std::mem::take(&mut first) {
            if entries.first().map(|(id, _)| parse_stream_id(id)) != Some(wanted) {
                return refuse("offset no longer in the stream");
            }
            entries.remove(0);
        }
        for (id, fields) in entries {
            scanned += 1;
            bytes += fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            if bytes > shared.replay_max_bytes || scanned > scan_limit {
                return refuse("too much to replay");
            }
            if let Ok(StreamMessage {
                nsp: entry_nsp,
                body: Body::Broadcast { mut packet, opts },
                ..
            }) = decode_entry(&fields)
                && entry_nsp == nsp
                && should_replay(&session.rooms, &opts)
                // As Node: only what carried an offset (EVENTs without ack id, not volatile), so
                // every replayed packet ends with its entry id.
                && needs_offset(&packet, &opts)
            {
                push_offset(&mut packet, &id);
                missed.push(packet);
            }
            cursor = id;
        }
        if n < XRANGE_BATCH {
            break;
        }
        let Some(next) = codec::next_offset(&cursor) else { break };
        from = next;
    }
    metrics::inc(&METRICS.streams_restores);
    Some(restored_session(session, missed, parse_stream_id(&cursor)))
}

/// A taken session with what it missed up to `read_to`.
fn restored_session(session: codec::Session, missed: Vec<Packet>, read_to: Option<StreamId>) -> Restored {
    Restored {
        session: Session {
            sid: session.sid,
            pid: session.pid,
            rooms: session.rooms.iter().map(|r| r.to_string()).collect(),
            data: session.data,
        },
        missed,
        read_to,
        ..Restored::default()
    }
}

impl Adapter for StreamsAdapter {
    fn init(&self, nsp: WeakNamespace) {
        let _ = self.nsp.set(nsp.clone());
        self.cluster.init(nsp);
    }

    fn is_healthy(&self) -> bool {
        self.shared.is_healthy() && self.cluster.is_healthy()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        drop(self.append(Body::Broadcast {
            packet: packet.clone(),
            opts: opts.clone(),
        }));
    }

    fn broadcast_with_ack(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, (usize, Option<mpsc::UnboundedReceiver<RemoteAck>>)> {
        self.cluster.broadcast_with_ack(packet, opts)
    }

    fn fetch_sockets(&self, opts: &BroadcastOptions) -> BoxFuture<'static, Vec<SocketInfo>> {
        self.cluster.fetch_sockets(opts)
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        drop(self.append(Body::SocketsJoin {
            opts: opts.clone(),
            rooms: rooms.to_vec(),
        }));
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        drop(self.append(Body::SocketsLeave {
            opts: opts.clone(),
            rooms: rooms.to_vec(),
        }));
    }

    fn disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        drop(self.append(Body::DisconnectSockets {
            opts: opts.clone(),
            close,
        }));
    }

    fn server_side_emit(&self, args: &[Value]) {
        self.cluster.server_side_emit(args)
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        self.cluster.server_count()
    }

    fn recovery(&self) -> bool {
        self.recovery
    }

    fn deliver(
        &self,
        nsp: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        if opts.flags.local {
            let _fence = self.fence.lock();
            nsp.local_broadcast(&packet, opts);
            return Box::pin(std::future::ready(Ok(())));
        }
        // With recovery, local sockets get it from the reader, with its entry id, in stream
        // order; without, at once (the reader skips our own entries then).
        if !self.recovery {
            nsp.local_broadcast(&packet, opts);
        }
        let written = self.append(Body::Broadcast {
            packet,
            opts: opts.clone(),
        });
        Box::pin(async move {
            match written.await {
                Ok(Ok(_id)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(AdapterError::Unavailable("the stream writer stopped".into())),
            }
        })
    }

    fn delivery_fence(&self) -> Option<MutexGuard<'_, ()>> {
        Some(self.fence.lock())
    }

    fn settle_restore(&self, restored: &mut Restored) -> bool {
        let reader = self.shared.reader_pos();
        let ok = settle(reader, restored.read_to, &self.ring.lock(), restored);
        if !ok {
            metrics::inc(&METRICS.streams_restores_refused);
            tracing::debug!(sid = %restored.session.sid, "restore gap not provably covered; fresh session");
        }
        ok
    }

    fn persist_session(&self, session: Session, event: SessionEvent) {
        if self.recovery {
            self.write_session(&session, event);
        }
    }

    fn sessions_written(&self) -> BoxFuture<'static, bool> {
        if !self.recovery {
            return Box::pin(std::future::ready(true));
        }
        if !self.shared.service.is_healthy() {
            return Box::pin(std::future::ready(false));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.shared.writer.send(Op::Flush(tx)) {
            return Box::pin(std::future::ready(false));
        }
        // The writer's commands each have the Redis timeout; a backlog ahead may take longer.
        let deadline = self.shared.service.timeout() * 2;
        Box::pin(async move {
            tokio::time::timeout(deadline, rx)
                .await
                .is_ok_and(|r| r.unwrap_or(false))
        })
    }

    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>> {
        if !self.recovery {
            return Box::pin(std::future::ready(None));
        }
        // Unknown namespace (dropped): treat as gated, the safe side.
        let gated = self.namespace().is_none_or(|n| {
            let hooks = n.hooks();
            !hooks.middlewares.read().is_empty() || !hooks.async_middlewares.read().is_empty()
        });
        // The ring answers when it covers the offset, unless a restore may read less than it holds.
        let from_ring = self.shared.replay_max_bytes >= RING_BYTES
            && parse_stream_id(offset).is_some_and(|o| self.ring.lock().covers(o));
        Box::pin(restore(
            self.shared.clone(),
            self.nsp_name.clone(),
            pid.to_owned(),
            offset.to_owned(),
            gated,
            from_ring,
        ))
    }
}

#[cfg(test)]
#[path = "adapter_tests.rs"]
mod tests;
