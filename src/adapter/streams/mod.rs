//! The Redis Streams adapter (`REDIS_ADAPTER=streams`), wire-compatible with
//! `@socket.io/redis-streams-adapter` 0.3.x (see `docs/STREAMS.md`), with sessions that survive
//! a killed server. [`codec`] is its sans-IO wire format; [`adapter`] one namespace's adapter.
//!
//! Per process: one writer ([`writer`]: every `XADD` and session write, in order, pipelined,
//! bounded in bytes), one reader ([`reader`]: `XREAD BLOCK` on its own connection), one pub/sub
//! connection pair for requests and responses, and a refresher keeping the TTL of live sessions.
//!
//! Delivery: a broadcast resolves once its `XADD` answered (the packet is then durable); every
//! server, this one included, delivers it when its reader reads it, with the entry id as offset.
//! Sessions are written through (`SET sio:session:<pid> … PX <window>`) on connect, join, leave
//! and data changes, and their TTL refreshed every window/3 while the socket lives, so any server
//! can restore them after their owner died. A restore takes the session (single use), checks its
//! namespace and that the offset is still in the stream, and replays what followed, bounded by
//! `RECOVERY_LOG_BYTES`; past that bound the client gets a fresh session.

pub mod adapter;
mod bus;
pub mod codec;
mod reader;
mod writer;

use crate::adapter::cluster::ClusterAdapter;
use crate::adapter::pubsub::{Hub, PubSub};
use crate::adapter::redis::RedisConfig;
use crate::adapter::redis::factory::{connect_pubsub, until_connected};
use crate::adapter::redis::service::RedisService;
use crate::adapter::{Adapter, AdapterFactory};
use adapter::StreamsAdapter;
use bus::{StreamsBus, StreamsRoute};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A stream entry id, `(ms, seq)`, ordered as Redis orders them.
pub type StreamId = (u64, u64);

/// Live sessions written again per refresh batch.
const REFRESH_BATCH: usize = 1000;

/// Connection state recovery settings of the streams adapter.
#[derive(Clone, Copy, Debug)]
pub struct StreamsRecovery {
    /// `RECOVERY`: offsets and sessions on or off.
    pub enabled: bool,
    /// `RECOVERY_MAX_DISCONNECTION_MS`: the sessions' TTL.
    pub window: Duration,
    /// `RECOVERY_LOG_BYTES`: most bytes of stream entries one restore reads.
    pub replay_max_bytes: usize,
}

/// What the namespaces of one process share: connections, the writer, the reader's position and
/// the live sessions.
pub(crate) struct Shared {
    service: RedisService,
    writer: writer::Writer,
    stream: String,
    max_len: u64,
    read_count: u64,
    block: Duration,
    session_prefix: String,
    window: Duration,
    replay_max_bytes: usize,
    adapters: RwLock<HashMap<String, Weak<StreamsAdapter>>>,
    reader_pos: Mutex<Option<StreamId>>,
    reader_healthy: AtomicBool,
    /// pid → (key, value last written) of the sessions of live local sockets.
    live: Mutex<HashMap<String, (String, String)>>,
}

impl Shared {
    /// Hands one entry read from the stream to its namespace's adapter.
    fn dispatch(&self, id: &str, fields: &[(Vec<u8>, Vec<u8>)]) {
        crate::metrics::inc(&crate::metrics::METRICS.streams_entries_read);
        let Some(sid) = codec::parse_stream_id(id) else { return };
        let msg = match codec::decode_entry(fields) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%id, error = %e, "stream entry ignored");
                self.set_reader_pos(sid);
                return;
            }
        };
        let adapters = self.adapters.read();
        match adapters.get(&msg.nsp).and_then(Weak::upgrade) {
            Some(a) => {
                drop(adapters);
                let size = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
                a.on_entry(id, sid, msg, size)
            }
            // Under the adapters' lock: an adapter created meanwhile starts its ring after this.
            None => self.set_reader_pos(sid),
        }
    }

    fn reader_started(&self, id: &str) {
        let started = {
            let mut pos = self.reader_pos.lock();
            if pos.is_none() {
                *pos = codec::parse_stream_id(id);
            }
            *pos
        };
        // After the position is set: an adapter created meanwhile either reads it (under the
        // adapters' write lock) or is seen here.
        if let Some(p) = started {
            for a in self.adapters.read().values().filter_map(Weak::upgrade) {
                a.reader_started(p);
            }
        }
    }

    fn set_reader_pos(&self, id: StreamId) {
        *self.reader_pos.lock() = Some(id);
    }

    fn reader_pos(&self) -> Option<StreamId> {
        *self.reader_pos.lock()
    }

    fn set_reader_healthy(&self, ok: bool) {
        self.reader_healthy.store(ok, Ordering::Relaxed);
    }

    fn is_healthy(&self) -> bool {
        self.reader_healthy.load(Ordering::Relaxed) && self.service.is_healthy()
    }

    /// Changes the live sessions and queues the resulting write (if any) under one lock, so a
    /// refresh's snapshot is queued either before this write or after it, never a stale one
    /// after it (which would put back what an acknowledged join or leave changed). `false`: the
    /// write queue is full.
    fn session_write(&self, change: impl FnOnce(&mut HashMap<String, (String, String)>) -> Option<writer::Op>) -> bool {
        let mut live = self.live.lock();
        change(&mut live).is_none_or(|op| self.writer.send(op))
    }
}

/// Every window/3, writes the sessions of live local sockets again (refreshing their TTL, in
/// batches), until the shared state is dropped.
fn spawn_refresher(shared: Weak<Shared>, window: Duration) {
    tokio::spawn(async move {
        let period = (window / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(period).await;
            let Some(s) = shared.upgrade() else { return };
            let px = s.window.as_millis() as u64;
            // Snapshot and queue under the live lock (see `Shared::session_write`).
            let live = s.live.lock();
            let sessions: Vec<(String, String)> = live.values().cloned().collect();
            for chunk in sessions.chunks(REFRESH_BATCH) {
                if !s.writer.send(writer::Op::Refresh {
                    sessions: chunk.to_vec(),
                    px,
                }) {
                    tracing::warn!("session refresh dropped: the stream write queue is full");
                }
            }
            drop(live);
        }
    });
}

/// Builds the streams adapter of each namespace, sharing one set of connections.
pub struct StreamsAdapterFactory {
    shared: Arc<Shared>,
    driver: Arc<dyn PubSub>,
    hub: Hub,
    channel_prefix: String,
    requests_timeout: Duration,
    recovery: bool,
}

impl StreamsAdapterFactory {
    /// Connects to Redis and starts the writer, the reader, the refresher and the pub/sub
    /// dispatcher. The stream key and the channel prefix are `config.key_prefix` (`socket.io`).
    pub async fn connect(config: RedisConfig, recovery: StreamsRecovery) -> redis::RedisResult<StreamsAdapterFactory> {
        let (service, hub, driver) = connect_pubsub(&config).await?;
        let driver: Arc<dyn PubSub> = driver;
        let stream = config.key_prefix.clone();
        let shared = Arc::new(Shared {
            writer: writer::Writer::spawn(
                service.clone(),
                stream.clone(),
                codec::DEFAULT_MAX_LEN,
                config.queue_bytes,
            ),
            service,
            stream,
            max_len: codec::DEFAULT_MAX_LEN,
            read_count: codec::DEFAULT_READ_COUNT,
            block: Duration::from_millis(codec::DEFAULT_BLOCK_TIME_MS),
            session_prefix: codec::DEFAULT_SESSION_KEY_PREFIX.to_owned(),
            window: recovery.window,
            replay_max_bytes: recovery.replay_max_bytes,
            adapters: RwLock::default(),
            reader_pos: Mutex::default(),
            reader_healthy: AtomicBool::new(false),
            live: Mutex::default(),
        });
        tokio::spawn(reader::run(
            Arc::downgrade(&shared),
            config.target.clone(),
            config.timeout,
        ));
        if recovery.enabled {
            spawn_refresher(Arc::downgrade(&shared), recovery.window);
        }
        Ok(StreamsAdapterFactory {
            shared,
            driver,
            hub,
            channel_prefix: config.key_prefix,
            requests_timeout: config.requests_timeout,
            recovery: recovery.enabled,
        })
    }

    /// Connects, retrying with backoff (0.5 s doubling to 5 s) until Redis answers.
    pub async fn connect_with_retry(config: RedisConfig, recovery: StreamsRecovery) -> StreamsAdapterFactory {
        let f = until_connected(&config, || StreamsAdapterFactory::connect(config.clone(), recovery)).await;
        tracing::info!(target = ?config.target, adapter = "streams", recovery = recovery.enabled, "connected to redis");
        f
    }

    /// The Redis service (for presence and health).
    pub fn service(&self) -> &RedisService {
        &self.shared.service
    }
}

impl AdapterFactory for StreamsAdapterFactory {
    fn create(&self, nsp: &str) -> Arc<dyn Adapter> {
        let channel = format!("{}#{nsp}#", self.channel_prefix);
        let bus = Arc::new(StreamsBus {
            driver: self.driver.clone(),
            channel: channel.clone(),
        });
        let cluster = Arc::new(ClusterAdapter::new(nsp, bus, self.requests_timeout));
        let response_channel = format!("{channel}{}#", cluster.uid());
        self.driver.subscribe(channel.clone());
        self.driver.subscribe(response_channel.clone());
        self.hub.add(Arc::new(StreamsRoute {
            adapter: cluster.clone(),
            channel,
            response_channel,
        }));
        let adapter = Arc::new(StreamsAdapter::new(nsp, cluster, self.shared.clone(), self.recovery));
        let mut adapters = self.shared.adapters.write();
        // Its ring covers only what the reader delivers from now on.
        if let Some(p) = self.shared.reader_pos() {
            adapter.reader_started(p);
        }
        adapters.insert(nsp.to_owned(), Arc::downgrade(&adapter));
        drop(adapters);
        adapter
    }
}
