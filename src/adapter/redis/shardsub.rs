//! The sharded subscriber on a Redis Cluster: every channel's `SSUBSCRIBE` sits on exactly one
//! connection, to the master that serves the channel's slot.
//!
//! The `redis` crate's Cluster client is not used for this. A replica serves `SSUBSCRIBE` for its
//! master's slots, so a subscription sent by a stale slot map lands on the demoted master after a
//! manual failover and hears the shard's messages only once the new master counts it as a
//! replica (0.5–1.6 s of losses, seen in CI). The client also re-sends every tracked subscription
//! after each slot-map refresh, by whatever map it then holds: a channel can end up subscribed on
//! the replica and on the master at once, every message delivered twice (seen: 59 duplicates).
//!
//! Here the slot owners come from the `CLUSTER NODES` views of every known node, merged by config
//! epoch ([`super::topology`]), read again before subscribing a channel whose slot moved (Redis
//! ended its subscription with a `sunsubscribe` push) and after a failure. Each master gets one
//! connection of its own; a subscription found on another node's live connection is removed there
//! first. While a master does not answer, its channels are held on one of its replicas, which
//! keeps them if it is promoted. A connection that drops reports [`PushKind::Disconnection`], and
//! the owners of the subscriptions ([`super::subs`]) re-issue them.

use super::probe::key_slot;
use super::service::{connection_lost, push_channel};
use super::topology::{NodeAddr, SlotOwners, View};
use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, PushInfo, PushKind, RedisError, RedisResult, Value,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Where subscriber pushes go (messages, ended subscriptions, disconnections).
pub type PushFn = dyn Fn(PushInfo) -> Result<(), redis::aio::SendError> + Send + Sync;

/// A node connection and the generation that tells it from earlier ones to the same node.
#[derive(Clone)]
struct Live {
    generation: u64,
    conn: MultiplexedConnection,
}

#[derive(Default)]
struct Shared {
    conns: Mutex<HashMap<NodeAddr, Live>>,
    /// One lock per node, held while connecting to it, so the channels of a node share one
    /// attempt; and when an attempt last failed, so those waiting behind it (or coming within half
    /// the timeout) fail at once instead of each trying again.
    connecting: Mutex<HashMap<NodeAddr, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
    /// Channel → the connection holding its subscription.
    held: Mutex<HashMap<String, (NodeAddr, u64)>>,
    /// Connections that read `CLUSTER NODES`, by address, kept between reads (while a master is
    /// down the owners are read every few hundred milliseconds).
    readers: Mutex<HashMap<String, MultiplexedConnection>>,
    generation: AtomicU64,
    /// Bumped whenever the slot owners must be read again before the next subscription.
    wanted: AtomicU64,
    /// The last slot owners read, with the value of `wanted` when that read began; the lock also
    /// makes concurrent readers share one refresh.
    owners: tokio::sync::Mutex<Option<(u64, Arc<SlotOwners>)>>,
}

impl Shared {
    /// Forgets a connection that failed or closed, and the subscriptions it held; the next
    /// subscription reads the slot owners again (the node may have died).
    fn drop_conn(&self, addr: &NodeAddr, generation: u64) -> bool {
        let removed = {
            let mut conns = self.conns.lock();
            let current = conns.get(addr).is_some_and(|l| l.generation == generation);
            if current {
                conns.remove(addr);
            }
            current
        };
        self.held.lock().retain(|_, (a, g)| !(a == addr && *g == generation));
        self.wanted.fetch_add(1, Ordering::Relaxed);
        removed
    }

    fn live(&self, addr: &NodeAddr, generation: u64) -> Option<MultiplexedConnection> {
        self.conns
            .lock()
            .get(addr)
            .filter(|l| l.generation == generation)
            .map(|l| l.conn.clone())
    }
}

/// Subscriptions to sharded channels, each on its slot's master.
pub struct ShardedSubscriber {
    seeds: Vec<ConnectionInfo>,
    push: Arc<PushFn>,
    timeout: Duration,
    shared: Arc<Shared>,
}

fn io_error(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::IoError, what))
}

/// Whether an error of `SUNSUBSCRIBE` means the subscription is gone anyway: the connection
/// broke, or the node no longer serves the slot (it ended its subscriptions there when the slot
/// moved, and redirects).
fn gone(e: &RedisError) -> bool {
    connection_lost(e) || matches!(e.kind(), redis::ErrorKind::Moved | redis::ErrorKind::Ask)
}

impl ShardedSubscriber {
    /// A subscriber for the cluster reachable through `seeds` (with their credentials; RESP3 for
    /// pushes), sending pushes to `push`. Every network step is bounded (reads and connects by
    /// half of `timeout`, commands by `timeout`); the caller bounds the whole.
    pub fn new(seeds: Vec<ConnectionInfo>, push: Arc<PushFn>, timeout: Duration) -> ShardedSubscriber {
        ShardedSubscriber {
            seeds,
            push,
            timeout,
            shared: Arc::default(),
        }
    }

    /// The connection info for `addr`, with the seeds' credentials and TLS settings.
    fn info_for(&self, addr: &NodeAddr) -> Option<ConnectionInfo> {
        let seed = self.seeds.first()?;
        let node = match &seed.addr {
            ConnectionAddr::TcpTls {
                insecure, tls_params, ..
            } => ConnectionAddr::TcpTls {
                host: addr.host.clone(),
                port: addr.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(addr.host.clone(), addr.port),
        };
        Some(ConnectionInfo {
            addr: node,
            redis: seed.redis.clone(),
        })
    }

    /// Reads `CLUSTER NODES` from every seed and every node known so far, concurrently (each
    /// within half the timeout: a node that swallows packets costs no more), and merges the
    /// views that came back.
    async fn read_owners(&self, known: &[NodeAddr]) -> RedisResult<SlotOwners> {
        let mut infos: Vec<ConnectionInfo> = self.seeds.clone();
        let seeds: Vec<String> = self.seeds.iter().map(|i| i.addr.to_string()).collect();
        infos.extend(
            known
                .iter()
                .filter_map(|a| self.info_for(a))
                .filter(|i| !seeds.contains(&i.addr.to_string())),
        );
        let deadline = self.timeout / 2;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(deadline)
            .set_response_timeout(deadline);
        let reads = infos.into_iter().map(|info| {
            let config = config.clone();
            let key = info.addr.to_string();
            let pooled = self.shared.readers.lock().get(&key).cloned();
            async move {
                let read = async {
                    let mut conn = match pooled {
                        Some(c) => c,
                        None => {
                            let c = Client::open(info)?
                                .get_multiplexed_async_connection_with_config(&config)
                                .await?;
                            self.shared.readers.lock().insert(key.clone(), c.clone());
                            c
                        }
                    };
                    redis::cmd("CLUSTER")
                        .arg("NODES")
                        .query_async::<String>(&mut conn)
                        .await
                };
                let result = tokio::time::timeout(deadline, read).await;
                if !matches!(result, Ok(Ok(_))) {
                    self.shared.readers.lock().remove(&key);
                }
                result
            }
        });
        let mut views = Vec::new();
        let mut last = None;
        for result in futures_util::future::join_all(reads).await {
            match result {
                Ok(Ok(text)) => views.push(View::parse(&text)),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(io_error("CLUSTER NODES timed out")),
            }
        }
        if views.is_empty() {
            return Err(last.unwrap_or_else(|| io_error("no cluster node answered CLUSTER NODES")));
        }
        Ok(SlotOwners::merge(&views))
    }

    /// The slot owners, read again if something asked for it since the last read began.
    async fn owners(&self) -> RedisResult<Arc<SlotOwners>> {
        let want = self.shared.wanted.load(Ordering::Relaxed);
        let mut cached = self.shared.owners.lock().await;
        if let Some((read_at, owners)) = &*cached
            && *read_at >= want
        {
            return Ok(owners.clone());
        }
        let read_at = self.shared.wanted.load(Ordering::Relaxed);
        let known = cached.as_ref().map(|(_, o)| o.nodes().to_vec()).unwrap_or_default();
        let owners = Arc::new(self.read_owners(&known).await?);
        *cached = Some((read_at, owners.clone()));
        // Forget readers and connect locks of nodes that left (or failed): those maps stay the
        // size of the cluster.
        let keep: Vec<String> = owners
            .nodes()
            .iter()
            .filter_map(|a| self.info_for(a))
            .chain(self.seeds.iter().cloned())
            .map(|i| i.addr.to_string())
            .collect();
        self.shared.readers.lock().retain(|k, _| keep.contains(k));
        self.shared
            .connecting
            .lock()
            .retain(|a, lock| owners.nodes().contains(a) || Arc::strong_count(lock) > 1);
        Ok(owners)
    }

    /// The connection to `addr`, opened if there is none.
    async fn connection(&self, addr: &NodeAddr) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(l) = self.shared.conns.lock().get(addr) {
            return Ok((l.generation, l.conn.clone()));
        }
        let lock = self.shared.connecting.lock().entry(addr.clone()).or_default().clone();
        let mut failed_at = lock.lock().await;
        if let Some(l) = self.shared.conns.lock().get(addr) {
            return Ok((l.generation, l.conn.clone()));
        }
        if failed_at.is_some_and(|at| at.elapsed() < self.timeout / 2) {
            return Err(io_error("the node did not answer a moment ago"));
        }
        let info = self.info_for(addr).ok_or_else(|| io_error("no cluster nodes"))?;
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let push = self.push.clone();
        let node = addr.clone();
        let on_push = move |info: PushInfo| {
            if let Some(shared) = weak.upgrade() {
                match info.kind {
                    PushKind::Disconnection => {
                        shared.drop_conn(&node, generation);
                    }
                    PushKind::SUnsubscribe => {
                        if let Some(channel) = push_channel(&info.data) {
                            let mut held = shared.held.lock();
                            if held.get(&channel).is_some_and(|(a, g)| *a == node && *g == generation) {
                                held.remove(&channel);
                            }
                        }
                    }
                    _ => {}
                }
            }
            push(info)
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_push_sender(on_push);
        let connect = async {
            Client::open(info)?
                .get_multiplexed_async_connection_with_config(&config)
                .await
        };
        let conn = match tokio::time::timeout(self.timeout / 2, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                *failed_at = Some(Instant::now());
                return Err(e);
            }
            Err(_) => {
                *failed_at = Some(Instant::now());
                return Err(io_error("connect timed out"));
            }
        };
        *failed_at = None;
        self.shared.conns.lock().insert(
            addr.clone(),
            Live {
                generation,
                conn: conn.clone(),
            },
        );
        Ok((generation, conn))
    }

    /// Runs `cmd` on a node connection; a failure that may mean the connection is gone drops it
    /// and reports a disconnection, so every subscription it held is re-issued.
    async fn run(
        &self,
        addr: &NodeAddr,
        generation: u64,
        mut conn: MultiplexedConnection,
        (kind, channel): (PushKind, &str),
    ) -> RedisResult<()> {
        let cmd = redis::cmd(&kind.to_string().to_uppercase()).arg(channel).clone();
        let result = tokio::time::timeout(self.timeout, conn.req_packed_command(&cmd))
            .await
            .unwrap_or_else(|_| Err(io_error("subscriber command timed out")))
            .and_then(|v| v.extract_error())
            .and_then(|v| match v {
                // The `redis` crate answers a command with the next reply-like push, which may be
                // a `sunsubscribe` the node sent by itself (a slot moved): replies are then out of
                // step on this connection, so it is dropped and every subscription re-issued.
                Value::Push { kind: k, data } if k == kind && push_channel(&data).as_deref() == Some(channel) => Ok(()),
                other => Err(RedisError::from((
                    redis::ErrorKind::IoError,
                    "subscriber reply out of step",
                    format!("{other:?}"),
                ))),
            });
        if let Err(e) = &result {
            if connection_lost(e) && self.shared.drop_conn(addr, generation) {
                let _ = (self.push)(PushInfo {
                    kind: PushKind::Disconnection,
                    data: Vec::new(),
                });
            } else {
                // MOVED, CLUSTERDOWN, ...: read the slot owners again before the retry.
                self.shared.wanted.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// `SSUBSCRIBE channel` on its slot's master. `moved`: Redis ended the channel's subscription
    /// because its slot moved, so the slot owners are read again first.
    pub async fn ssubscribe(&self, channel: &str, moved: bool) -> RedisResult<()> {
        if moved {
            self.shared.wanted.fetch_add(1, Ordering::Relaxed);
        }
        let owners = self.owners().await?;
        let slot = key_slot(channel.as_bytes());
        let addr = owners.owner(slot).cloned().ok_or_else(|| {
            self.shared.wanted.fetch_add(1, Ordering::Relaxed);
            RedisError::from((redis::ErrorKind::ClusterDown, "no master serves the slot"))
        })?;
        let (generation, conn) = match self.connection(&addr).await {
            Ok(c) => c,
            Err(e) => {
                self.shared.wanted.fetch_add(1, Ordering::Relaxed);
                self.stand_by(channel, &owners, &addr).await;
                return Err(e);
            }
        };
        let previous = self.shared.held.lock().get(channel).cloned();
        if let Some((old, old_generation)) = previous
            && old != addr
        {
            // The slot moved without a push, or the master answers again after a stand-by on its
            // replica: leave the old node first, or a replica there would deliver every message
            // a second time.
            if let Some(conn) = self.shared.live(&old, old_generation) {
                match self
                    .run(&old, old_generation, conn, (PushKind::SUnsubscribe, channel))
                    .await
                {
                    Err(e) if !gone(&e) => return Err(e),
                    _ => {}
                }
            }
            self.shared.held.lock().remove(channel);
        }
        self.subscribe_on(&addr, generation, conn, channel).await
    }

    /// `SSUBSCRIBE channel` on one connection. The channel counts as held there from before the
    /// command is sent: if the caller's deadline cuts it after the node took it, the subscription
    /// is still known (and left before any move) instead of lingering unseen.
    async fn subscribe_on(
        &self,
        addr: &NodeAddr,
        generation: u64,
        conn: MultiplexedConnection,
        channel: &str,
    ) -> RedisResult<()> {
        let mine = (addr.clone(), generation);
        self.shared.held.lock().insert(channel.to_owned(), mine.clone());
        let result = self.run(addr, generation, conn, (PushKind::SSubscribe, channel)).await;
        if result.is_err() {
            let mut held = self.shared.held.lock();
            if held.get(channel) == Some(&mine) {
                held.remove(channel);
            }
        }
        result
    }

    /// While `master` does not answer, holds `channel`'s subscription on one of its replicas (a
    /// replica serves `SSUBSCRIBE` for its master's slots). The replica promoted in its place
    /// keeps the subscription, so messages published on it right after the promotion are not
    /// missed; if the master answers again instead, the next attempt moves the subscription back
    /// to it. The caller still reports the failure, so the attempts go on until then.
    async fn stand_by(&self, channel: &str, owners: &SlotOwners, master: &NodeAddr) {
        let held = self.shared.held.lock().get(channel).cloned();
        if let Some((node, generation)) = &held
            && owners.replicas_of(master).any(|r| r == node)
            && self.shared.live(node, *generation).is_some()
        {
            return;
        }
        if let Some((node, generation)) = held
            && let Some(conn) = self.shared.live(&node, generation)
        {
            // Held elsewhere (the slot's previous owner): leave it before holding it twice.
            if let Err(e) = self
                .run(&node, generation, conn, (PushKind::SUnsubscribe, channel))
                .await
                && !gone(&e)
            {
                return;
            }
            self.shared.held.lock().remove(channel);
        }
        for replica in owners.replicas_of(master) {
            let Ok((generation, conn)) = self.connection(replica).await else {
                continue;
            };
            if self.subscribe_on(replica, generation, conn, channel).await.is_ok() {
                return;
            }
        }
    }

    /// `SUNSUBSCRIBE channel` on the connection holding it (nothing to do when that connection is
    /// gone: the subscription went with it).
    pub async fn sunsubscribe(&self, channel: &str) -> RedisResult<()> {
        let Some((addr, generation)) = self.shared.held.lock().remove(channel) else {
            return Ok(());
        };
        let Some(conn) = self.shared.live(&addr, generation) else {
            return Ok(());
        };
        match self
            .run(&addr, generation, conn, (PushKind::SUnsubscribe, channel))
            .await
        {
            Err(e) if !gone(&e) => {
                self.shared.held.lock().insert(channel.to_owned(), (addr, generation));
                Err(e)
            }
            _ => Ok(()),
        }
    }
}
