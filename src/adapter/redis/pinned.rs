//! The classic subscriber on a Redis Cluster: one connection to one node at a time. Classic
//! `PUBLISH` is broadcast over the cluster bus to every node, so a `SUBSCRIBE`/`PSUBSCRIBE` works
//! on any node, but it must live on exactly one: the Cluster client would send it to a random node
//! whenever the channel's slot owner is down, and every resubscription there would add a second
//! subscription (every message delivered twice). Here the subscriptions sit on one node; when that
//! connection fails, the next node of the list is used and the owners re-issue their
//! subscriptions there ([`super::service::SubscriberEvent::Reset`]).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionInfo, RedisResult, Value};
use std::time::Duration;
use tokio::sync::Mutex;

#[derive(Default)]
struct State {
    /// The node in use (or to try first).
    index: usize,
    /// Its connection and generation (`None` once it failed).
    current: Option<(u64, MultiplexedConnection)>,
    /// Connections opened so far.
    generation: u64,
}

/// A subscriber connection pinned to one Cluster node, moving to the next node when it fails.
pub struct PinnedSubscriber {
    nodes: Vec<ConnectionInfo>,
    config: AsyncConnectionConfig,
    timeout: Duration,
    state: Mutex<State>,
    on_move: Box<dyn Fn() + Send + Sync>,
}

impl PinnedSubscriber {
    /// A subscriber over `nodes` (tried in order, starting with the first); `config` carries the
    /// push sender; `on_move` runs whenever a new connection replaces a failed one.
    pub fn new(
        nodes: Vec<ConnectionInfo>,
        config: AsyncConnectionConfig,
        timeout: Duration,
        on_move: impl Fn() + Send + Sync + 'static,
    ) -> PinnedSubscriber {
        PinnedSubscriber {
            nodes,
            config,
            timeout,
            state: Mutex::default(),
            on_move: Box::new(on_move),
        }
    }

    /// The current connection, or a new one to the next node that answers (each attempt bounded
    /// by the timeout; one pass over the nodes at most).
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.current {
            return Ok(c.clone());
        }
        let mut last = None;
        let n = self.nodes.len();
        let start = st.index;
        // Several attempts fit in the caller's own deadline (`REDIS_TIMEOUT_MS` around the whole
        // query), and the next node is recorded before each attempt: when that deadline cuts an
        // attempt at a node that swallows packets, the next call starts past it.
        let attempt_timeout = (self.timeout / 4).max(Duration::from_millis(200));
        for step in 0..n {
            let index = (start + step) % n;
            st.index = (index + 1) % n;
            let attempt = async {
                let client = Client::open(self.nodes[index].clone())?;
                client.get_multiplexed_async_connection_with_config(&self.config).await
            };
            match tokio::time::timeout(attempt_timeout, attempt).await {
                Ok(Ok(conn)) => {
                    st.generation += 1;
                    let generation = st.generation;
                    let moved = generation > 1;
                    st.index = index;
                    st.current = Some((generation, conn.clone()));
                    drop(st);
                    if moved {
                        tracing::info!(node = %self.nodes[index].addr, "redis classic subscriber moved to another node");
                        (self.on_move)();
                    }
                    return Ok((generation, conn));
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(redis::RedisError::from((
                        redis::ErrorKind::IoError,
                        "connect timed out",
                    )))
                }
            }
        }
        // Next time, start after the node tried first.
        st.index = (start + 1) % n.max(1);
        Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::ClientError, "no cluster nodes"))))
    }

    /// Runs `cmd` on the pinned node; a failure that may mean a dead connection drops it, so the
    /// next command moves to the next node.
    pub async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let (generation, mut conn) = self.connection().await?;
        // Shorter than the caller's deadline, so a node that stalls is marked failed (and left)
        // here instead of the caller dropping this future first.
        let result = match tokio::time::timeout(self.timeout * 3 / 4, conn.req_packed_command(cmd)).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "subscriber command timed out",
            ))),
        };
        if let Err(e) = &result
            && super::service::connection_lost(e)
        {
            let mut st = self.state.lock().await;
            if st.current.as_ref().is_some_and(|(g, _)| *g == generation) {
                st.current = None;
                st.index = (st.index + 1) % self.nodes.len().max(1);
            }
        }
        result
    }
}
