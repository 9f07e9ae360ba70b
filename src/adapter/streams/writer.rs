//! The one writer of a process's streams adapter: `XADD`s (broadcasts, joins, leaves,
//! disconnects) and session writes go through one queue, bounded in bytes, and are sent in call
//! order as pipelines of at most [`BATCH_OPS`] commands, so successive emits keep their order in
//! the stream. Each `XADD` can report its entry id (the packet's offset) or the failure.

use crate::adapter::AdapterError;
use crate::adapter::redis::service::{Redacted, RedisService};
use redis::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most commands in one pipeline.
const BATCH_OPS: usize = 256;

/// Deletes a key only if it still holds the value we wrote (another server may have restored
/// the session and written its own since).
const DEL_IF_EQUAL: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// What an `XADD` answers: the entry id, or why it failed.
pub type XaddResult = Result<String, AdapterError>;

/// What a failed pipeline means for its `XADD`s: an error reply or a refused connection means
/// not written; a timeout or a connection lost after sending means maybe written.
fn failure(e: &redis::RedisError) -> AdapterError {
    let reason = format!("XADD failed: {}", Redacted(e));
    if e.kind() == redis::ErrorKind::IoError && !e.is_connection_refusal() {
        AdapterError::Unknown(reason)
    } else {
        AdapterError::Unavailable(reason)
    }
}

/// One queued write.
pub(super) enum Op {
    /// `XADD stream MAXLEN ~ n * fields…`.
    Xadd {
        fields: Vec<(&'static str, String)>,
        done: Option<oneshot::Sender<XaddResult>>,
    },
    /// `SET key value PX ms`.
    Set { key: String, value: String, px: u64 },
    /// Delete `key` if it still holds `value`.
    DelIfEqual { key: String, value: String },
    /// `SET key value PX ms` for each live session: refreshes its TTL, and puts it back if Redis
    /// lost it (a restart) or another server's stale write deleted it.
    Refresh { sessions: Vec<(String, String)>, px: u64 },
    /// Answers once every session write queued before it was attempted: `true` when those of
    /// its batch succeeded.
    Flush(oneshot::Sender<bool>),
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Xadd { fields, .. } => fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + 32,
            Op::Set { key, value, .. } | Op::DelIfEqual { key, value } => key.len() + value.len() + 32,
            Op::Refresh { sessions, .. } => sessions.iter().map(|(k, v)| k.len() + v.len() + 16).sum(),
            Op::Flush(_) => 16,
        }
    }
}

/// The handle to the writer task.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::UnboundedSender<(Op, usize)>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl Writer {
    /// Starts the writer on `service`, appending to `stream` trimmed to about `max_len`
    /// entries, with at most `limit` bytes queued.
    pub(super) fn spawn(service: RedisService, stream: String, max_len: u64, limit: usize) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(service, stream, max_len, rx, queued.clone()));
        Writer { tx, queued, limit }
    }

    /// Queues `op`; false (and `op` dropped) past the byte limit or after the task ended.
    pub(super) fn send(&self, op: Op) -> bool {
        let size = op.size();
        if self.queued.fetch_add(size, Ordering::AcqRel) + size > self.limit {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        if self.tx.send((op, size)).is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues an `XADD`; the receiver gets the entry id once Redis answered.
    pub(super) fn xadd(&self, fields: Vec<(&'static str, String)>) -> oneshot::Receiver<XaddResult> {
        let (done, rx) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let op = Op::Xadd {
            fields,
            done: Some(done),
        };
        if !self.send(op) {
            crate::metrics::inc(&crate::metrics::METRICS.streams_xadd_errors);
            let _ = tx2.send(Err(AdapterError::Unavailable(
                "the stream write queue is full".to_owned(),
            )));
            return rx2;
        }
        drop(tx2);
        rx
    }
}

fn xadd_cmd(stream: &str, max_len: u64, fields: &[(&'static str, String)]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(v.as_bytes());
    }
    cmd
}

fn op_cmds(op: &Op, stream: &str, max_len: u64) -> Vec<redis::Cmd> {
    match op {
        Op::Xadd { fields, .. } => vec![xadd_cmd(stream, max_len, fields)],
        Op::Set { key, value, px } => vec![redis::cmd("SET").arg(key).arg(value).arg("PX").arg(*px).clone()],
        Op::DelIfEqual { key, value } => vec![redis::cmd("EVAL").arg(DEL_IF_EQUAL).arg(1).arg(key).arg(value).clone()],
        Op::Refresh { sessions, px } => sessions
            .iter()
            .map(|(k, v)| redis::cmd("SET").arg(k).arg(v).arg("PX").arg(*px).clone())
            .collect(),
        Op::Flush(_) => Vec::new(),
    }
}

fn entry_id(v: &Value) -> XaddResult {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b.clone()).map_err(|_| AdapterError::Unknown("XADD answered a non-UTF-8 id".to_owned()))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::ServerError(e) => Err(AdapterError::Unavailable(format!("XADD failed: {e:?}"))),
        other => Err(AdapterError::Unknown(format!("XADD answered {other:?}"))),
    }
}

async fn run(
    service: RedisService,
    stream: String,
    max_len: u64,
    mut rx: mpsc::UnboundedReceiver<(Op, usize)>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch: Vec<(Op, usize)> = Vec::with_capacity(BATCH_OPS);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH_OPS {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let bytes: usize = batch.iter().map(|(_, s)| s).sum();
        // XADDs go in one pipeline (one key: one slot on a Cluster); session writes each on their
        // own, since their keys hash anywhere.
        let mut xadds = redis::pipe();
        let mut dones = Vec::new();
        let mut sessions = Vec::new();
        let mut flushes = Vec::new();
        for (op, _) in batch.iter_mut() {
            match op {
                Op::Xadd { fields, done } => {
                    xadds.add_command(xadd_cmd(&stream, max_len, fields));
                    dones.push(done.take());
                }
                Op::Flush(done) => {
                    let (tx, _) = oneshot::channel();
                    flushes.push(std::mem::replace(done, tx));
                }
                _ => sessions.extend(op_cmds(op, &stream, max_len)),
            }
        }
        if !dones.is_empty() {
            match service.query_pipeline(xadds).await {
                Ok(replies) => {
                    for (i, done) in dones.into_iter().enumerate() {
                        let r = replies
                            .get(i)
                            .map_or_else(|| Err(AdapterError::Unknown("XADD got no answer".to_owned())), entry_id);
                        if r.is_err() {
                            crate::metrics::inc(&crate::metrics::METRICS.streams_xadd_errors);
                        }
                        if let Some(d) = done {
                            let _ = d.send(r);
                        }
                    }
                }
                Err(e) => {
                    let reason = failure(&e);
                    tracing::warn!(count = dones.len(), error = %reason, "stream entries not (or maybe not) written");
                    crate::metrics::add(&crate::metrics::METRICS.streams_xadd_errors, dones.len() as u64);
                    for d in dones.into_iter().flatten() {
                        let _ = d.send(Err(reason.clone()));
                    }
                }
            }
        }
        let mut written = true;
        if !sessions.is_empty() {
            let results = if service.is_cluster() {
                let mut failed = None;
                for cmd in sessions {
                    if let Err(e) = service.query(cmd).await {
                        failed = Some(e);
                    }
                }
                failed.map_or(Ok(()), Err)
            } else {
                let mut pipe = redis::pipe();
                for cmd in sessions {
                    pipe.add_command(cmd);
                }
                service.query_pipeline(pipe).await.map(|_| ())
            };
            if let Err(e) = results {
                written = false;
                tracing::warn!(error = %Redacted(&e), "session writes failed; those sessions may not be recoverable");
            }
        }
        // A batch's session writes are all attempted before any flush in it answers, and batches
        // run in queue order: a flush sees every write queued before it.
        for done in flushes {
            let _ = done.send(written);
        }
        queued.fetch_sub(bytes, Ordering::AcqRel);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unsent_or_refused_xadd_counts_as_not_delivered() {
        let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(failure(&refused), AdapterError::Unavailable(_)));
        let wrongtype = redis::RedisError::from((redis::ErrorKind::ResponseError, "WRONGTYPE"));
        assert!(matches!(failure(&wrongtype), AdapterError::Unavailable(_)));
        let timeout = redis::RedisError::from((redis::ErrorKind::IoError, "command timed out"));
        assert!(matches!(failure(&timeout), AdapterError::Unknown(_)));
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(failure(&dropped), AdapterError::Unknown(_)));
        assert!(matches!(entry_id(&Value::BulkString(b"1-2".to_vec())), Ok(id) if id == "1-2"));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let w = Writer {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            limit: 200,
        };
        let op = || Op::Set {
            key: "k".into(),
            value: "v".repeat(100),
            px: 1,
        };
        assert!(w.send(op()));
        assert!(!w.send(op()), "past the limit the write is refused");
    }
}
