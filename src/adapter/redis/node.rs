//! The connection to one Cluster node inside the `redis` crate's Cluster client (the command
//! client), wrapped to see what the client hides: the MOVED and ASK redirects it follows, the
//! node connections it opens (and fails to open), counted in `/metrics`. Subscriptions do not go
//! through that client ([`super::pinned`], [`super::shardsub`]).

use crate::metrics::{self, METRICS};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::Connect;
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisFuture, Value};

/// A node connection of the command client.
#[derive(Clone)]
pub struct NodeConn(MultiplexedConnection);

fn count_redirect(code: Option<&str>, kind: Option<ErrorKind>) {
    if code == Some("MOVED") || kind == Some(ErrorKind::Moved) {
        metrics::inc(&METRICS.redis_redirects_moved);
    } else if code == Some("ASK") || kind == Some(ErrorKind::Ask) {
        metrics::inc(&METRICS.redis_redirects_ask);
    }
}

fn count_value(v: &Value) {
    if let Value::ServerError(e) = v {
        count_redirect(Some(e.code()), None);
    }
}

fn count_error(e: &redis::RedisError) {
    count_redirect(e.code(), Some(e.kind()));
}

impl ConnectionLike for NodeConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.0.req_packed_command(cmd).await;
            match &result {
                Ok(v) => count_value(v),
                Err(e) => count_error(e),
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.0.req_packed_commands(cmd, offset, count).await;
            match &result {
                Ok(values) => values.iter().for_each(count_value),
                Err(e) => count_error(e),
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

impl Connect for NodeConn {
    fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        Box::pin(async move {
            match MultiplexedConnection::connect_with_config(info, config).await {
                Ok(conn) => {
                    metrics::inc(&METRICS.redis_node_connects);
                    Ok(NodeConn(conn))
                }
                Err(e) => {
                    metrics::inc(&METRICS.redis_node_connect_failures);
                    Err(e)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn redirects_are_counted_by_kind() {
        let moved = METRICS.redis_redirects_moved.load(Ordering::Relaxed);
        let ask = METRICS.redis_redirects_ask.load(Ordering::Relaxed);
        count_error(&redis::RedisError::from((
            ErrorKind::Moved,
            "MOVED",
            "3999 127.0.0.1:6381".into(),
        )));
        count_error(&redis::RedisError::from((
            ErrorKind::Ask,
            "ASK",
            "3999 127.0.0.1:6381".into(),
        )));
        count_error(&redis::RedisError::from((ErrorKind::IoError, "broken pipe")));
        assert!(METRICS.redis_redirects_moved.load(Ordering::Relaxed) > moved);
        assert!(METRICS.redis_redirects_ask.load(Ordering::Relaxed) > ask);
    }
}
