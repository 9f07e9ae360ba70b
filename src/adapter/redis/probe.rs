//! The health probe: a background task that asks Redis every [`EVERY`] whether it can serve, with
//! a short deadline ([`DEADLINE`]), and keeps the verdict for `/health` and the webhook, which
//! therefore answer at once whatever Redis does. On a Cluster "can serve" means every hash slot
//! has a master that answers: the probe reads `CLUSTER SLOTS` and sends a cheap keyed read
//! (`EXISTS`) into the first slot of every range, so a dead master counts until its replica is
//! promoted, and a stale slot map in the client is corrected (MOVED) by the probe itself. Also
//! here: [`key_slot`], the Cluster's hash slot of a key.

use super::service::RedisService;
use crate::metrics::{self, METRICS};
use parking_lot::Mutex;
use redis::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the probe runs.
pub const EVERY: Duration = Duration::from_millis(500);
/// How long one probe may take before it counts as a failure.
pub const DEADLINE: Duration = Duration::from_millis(800);
/// A verdict older than this (the probe task stalled) counts as a failure.
const STALE: Duration = Duration::from_secs(3);
/// Number of hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// The probe's last verdict.
#[derive(Default)]
pub struct ProbeState(Mutex<Option<(Instant, Result<(), String>)>>);

impl ProbeState {
    fn set(&self, verdict: Result<(), String>) {
        *self.0.lock() = Some((Instant::now(), verdict));
    }

    /// `Ok` when the last probe, at most 3 s old, succeeded (or none ran yet: the service has just
    /// connected); otherwise why not.
    pub fn verdict(&self) -> Result<(), String> {
        match &*self.0.lock() {
            None => Ok(()),
            Some((at, _)) if at.elapsed() > STALE => Err("the redis health probe is stalled".into()),
            Some((_, v)) => v.clone(),
        }
    }
}

/// The Cluster hash slot of `key`: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has
/// a non-empty one, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    (crc16(tagged.unwrap_or(key)) as usize % SLOTS) as u16
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A key in `slot` (found once by trying `sio:probe:<n>`, then remembered).
fn probe_key(cache: &Mutex<HashMap<u16, String>>, slot: u16) -> String {
    let mut cache = cache.lock();
    cache
        .entry(slot)
        .or_insert_with(|| {
            (0u64..)
                .map(|n| format!("sio:probe:{n}"))
                .find(|k| key_slot(k.as_bytes()) == slot)
                .unwrap_or_default()
        })
        .clone()
}

/// The first slot of every range in a `CLUSTER SLOTS` reply, and how many slots the ranges cover.
fn slot_ranges(reply: &Value) -> (Vec<u16>, usize) {
    let Value::Array(ranges) = reply else {
        return (Vec::new(), 0);
    };
    let mut starts = Vec::new();
    let mut covered = 0usize;
    for range in ranges {
        let Value::Array(fields) = range else { continue };
        let bound = |i: usize| fields.get(i).and_then(|v| redis::from_redis_value::<u16>(v).ok());
        if let (Some(lo), Some(hi)) = (bound(0), bound(1))
            && lo <= hi
        {
            starts.push(lo);
            covered = covered.saturating_add(usize::from(hi - lo) + 1);
        }
    }
    (starts, covered)
}

/// One probe: `PING` on a standalone server; on a Cluster, every slot range's master answers.
async fn probe_once(service: &RedisService, keys: &Mutex<HashMap<u16, String>>) -> Result<(), String> {
    let Some(mut conn) = service.cluster_conn() else {
        return service.ping().await.map_err(|e| e.to_string());
    };
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    let (starts, covered) = slot_ranges(&reply);
    if covered < SLOTS {
        return Err(format!("the cluster serves {covered} of {SLOTS} slots"));
    }
    let checks = starts.into_iter().map(|slot| {
        let key = probe_key(keys, slot);
        let mut c = conn.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<Value>(&mut c)
                .await
                .map_err(|e| format!("slot {slot}: {e}"))
        }
    });
    for result in futures_util::future::join_all(checks).await {
        result?;
    }
    Ok(())
}

/// Starts the probe task; it ends when the service is dropped.
pub fn spawn(service: &RedisService) {
    let weak = service.downgrade();
    tokio::spawn(async move {
        let keys = Mutex::new(HashMap::new());
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_ok = true;
        loop {
            tick.tick().await;
            let Some(service) = RedisService::upgrade(&weak) else {
                return;
            };
            let verdict = tokio::time::timeout(DEADLINE, probe_once(&service, &keys))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} ms", DEADLINE.as_millis())))
                .map_err(|e| super::service::redact(&e));
            match (&verdict, was_ok) {
                (Err(e), true) => {
                    metrics::inc(&METRICS.redis_probe_failures);
                    tracing::warn!(error = %e, "redis cannot serve; /health answers 503");
                }
                (Err(_), false) => metrics::inc(&METRICS.redis_probe_failures),
                (Ok(()), false) => tracing::info!("redis serves again; /health answers 200"),
                (Ok(()), true) => {}
            }
            was_ok = verdict.is_ok();
            service.probe_state().set(verdict);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"foo{}{bar}"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"{a"), key_slot(b"{a"));
    }

    #[test]
    fn probe_keys_land_in_their_slot() {
        let cache = Mutex::new(HashMap::new());
        for slot in [0u16, 5461, 10923, 16383] {
            assert_eq!(key_slot(probe_key(&cache, slot).as_bytes()), slot);
        }
    }

    #[test]
    fn ranges_and_coverage() {
        let range = |lo: i64, hi: i64| Value::Array(vec![Value::Int(lo), Value::Int(hi), Value::Array(vec![])]);
        let (starts, covered) = slot_ranges(&Value::Array(vec![range(0, 5460), range(5461, 16383)]));
        assert_eq!((starts, covered), (vec![0, 5461], 16384));
        let (_, covered) = slot_ranges(&Value::Array(vec![range(0, 100), Value::Nil, range(9, 3)]));
        assert_eq!(covered, 101, "malformed ranges count nothing");
        assert_eq!(slot_ranges(&Value::Nil), (vec![], 0));
    }

    #[test]
    fn verdicts() {
        let p = ProbeState::default();
        assert_eq!(p.verdict(), Ok(()));
        p.set(Err("down".into()));
        assert_eq!(p.verdict(), Err("down".into()));
        p.set(Ok(()));
        assert_eq!(p.verdict(), Ok(()));
    }
}
