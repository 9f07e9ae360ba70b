//! The reader loop of a process's streams adapter: one dedicated connection (a blocking `XREAD`
//! would stall every other command on a shared one) reading the stream in `COUNT` batches after
//! the last id it saw, handing each entry to [`super::Shared::dispatch`]. It starts after the
//! stream's last entry at startup (not Node's `$`, which can miss an entry between two reads), and
//! after a dropped connection or a Redis restart it reconnects with backoff and goes on from the
//! last id it saw, so nothing still in the stream is skipped.

use super::Shared;
use crate::adapter::redis::RedisTarget;
use crate::adapter::redis::service::Redacted;
use redis::cluster::ClusterClientBuilder;
use redis::{RedisResult, Value};
use std::sync::Weak;
use std::time::Duration;

/// After a read that found entries but fewer than `COUNT`, the reader waits this long before the
/// next one, so a busy stream is read in batches: every blocking `XREAD` costs Redis far more than
/// the entries it returns (measured: Redis CPU per message halved), for at most this much latency.
const BATCH_WAIT: Duration = Duration::from_millis(1);

/// The reader's own connection.
enum ReadConn {
    Standalone(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ReadConn {
    async fn connect(target: &RedisTarget, timeout: Duration, block: Duration) -> RedisResult<ReadConn> {
        match target {
            RedisTarget::Standalone(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(block + timeout);
                Ok(ReadConn::Standalone(
                    client.get_multiplexed_async_connection_with_config(&config).await?,
                ))
            }
            RedisTarget::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(block + timeout)
                    .build()?;
                Ok(ReadConn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    async fn query(&mut self, cmd: &redis::Cmd) -> RedisResult<Value> {
        match self {
            ReadConn::Standalone(c) => cmd.query_async(c).await,
            ReadConn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// One entry as read: its id and field-value pairs.
pub(super) type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// Parses the entries of an `XRANGE` reply (or of one stream in an `XREAD` reply).
pub(super) fn parse_entries(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else { return None };
            let id = String::from_utf8(bytes(pair.first()?)?).ok()?;
            let fields = match pair.get(1)? {
                Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| Some((bytes(c.first()?)?, bytes(c.get(1)?)?)))
                    .collect(),
                Value::Map(kv) => kv.iter().filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?))).collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

/// The entries of an `XREAD` reply for one stream (RESP2 array or RESP3 map).
fn parse_xread(v: &Value) -> Vec<Entry> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) => kv.get(1).map(parse_entries),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, e)| parse_entries(e)).collect(),
        _ => Vec::new(),
    }
}

/// The id of the stream's last entry (`0-0` when it is empty or missing).
async fn last_id(conn: &mut ReadConn, stream: &str) -> RedisResult<String> {
    let v = conn
        .query(
            redis::cmd("XREVRANGE")
                .arg(stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )
        .await?;
    Ok(parse_entries(&v)
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |(id, _)| id))
}

/// Runs until the adapter's shared state is dropped.
pub(super) async fn run(shared: Weak<Shared>, target: RedisTarget, timeout: Duration) {
    let (stream, count, block) = match shared.upgrade() {
        Some(s) => (s.stream.clone(), s.read_count, s.block),
        None => return,
    };
    let mut last: Option<String> = None;
    let mut delay = Duration::from_millis(100);
    loop {
        let mut conn = match ReadConn::connect(&target, timeout, block).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %Redacted(&e), "stream reader cannot connect to redis; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                if shared.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        if last.is_none() {
            match last_id(&mut conn, &stream).await {
                Ok(id) => {
                    if let Some(s) = shared.upgrade() {
                        s.reader_started(&id);
                    }
                    last = Some(id);
                }
                Err(e) => {
                    tracing::warn!(error = %Redacted(&e), "stream reader cannot read the stream's end; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
        }
        delay = Duration::from_millis(100);
        if let Some(s) = shared.upgrade() {
            s.set_reader_healthy(true);
        }
        while let Some(from) = last.clone() {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&stream)
                .arg(&from);
            let reply = conn.query(&cmd).await;
            let Some(shared) = shared.upgrade() else { return };
            match reply {
                Ok(v) => {
                    let entries = parse_xread(&v);
                    let n = entries.len() as u64;
                    for (id, fields) in entries {
                        shared.dispatch(&id, &fields);
                        last = Some(id);
                    }
                    drop(shared);
                    if n > 0 && n < count {
                        tokio::time::sleep(BATCH_WAIT).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %Redacted(&e), "stream read failed; reconnecting");
                    shared.set_reader_healthy(false);
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, kv: &[&str]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(kv.iter().map(|s| bulk(s)).collect())])
    }

    #[test]
    fn xrange_and_xread_replies_parse_in_resp2_and_resp3() {
        let entries = Value::Array(vec![
            entry("1-0", &["uid", "a", "nsp", "/"]),
            entry("1-1", &["type", "3"]),
        ]);
        let parsed = parse_entries(&entries);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "1-0");
        assert_eq!(
            parsed[0].1,
            vec![(b"uid".to_vec(), b"a".to_vec()), (b"nsp".to_vec(), b"/".to_vec())]
        );
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("socket.io"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("socket.io"), entries)]);
        let ids = |v: &Value| parse_xread(v).into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(&resp2), ["1-0", "1-1"]);
        assert_eq!(ids(&resp3), ["1-0", "1-1"]);
        // A BLOCK timeout answers nil; garbage gives nothing rather than a panic.
        assert!(parse_xread(&Value::Nil).is_empty());
        assert!(parse_entries(&Value::Array(vec![Value::Int(3), Value::Array(vec![])])).is_empty());
    }
}
