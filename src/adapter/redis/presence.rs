//! Presence: each instance's connection count in the Redis hashes `socket:clients:counts` and
//! `socket:clients:lastUpdate` (field = instance id), refreshed on change (coalesced) and by a
//! heartbeat every 2 s. An instance silent for 6 s is reported down; only its own graceful
//! shutdown removes its entries.

use super::service::RedisService;
use crate::time::now_ms;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Hash of connection counts by instance id.
pub const COUNTS_KEY: &str = "socket:clients:counts";
/// Hash of last-update times (unix ms) by instance id.
pub const LAST_UPDATE_KEY: &str = "socket:clients:lastUpdate";
/// Heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Silence after which an instance is down.
pub const DOWN_AFTER_MS: u64 = 6_000;
/// How often the count is checked for changes.
const CHECK: Duration = Duration::from_millis(250);

/// One instance in `/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStats {
    /// Instance id.
    pub instance_id: String,
    /// Its connection count.
    pub connections: u64,
    /// Its last heartbeat, unix ms.
    pub last_update: u64,
    /// Whether it sent a heartbeat in the last 6 s.
    pub alive: bool,
    /// `up` or `down`.
    pub status: &'static str,
}

/// Publishes this instance's presence and reads everyone's.
#[derive(Clone)]
pub struct PresenceTracker {
    service: RedisService,
    instance_id: Arc<str>,
}

impl PresenceTracker {
    /// A tracker for `instance_id`.
    pub fn new(service: RedisService, instance_id: &str) -> PresenceTracker {
        PresenceTracker {
            service,
            instance_id: Arc::from(instance_id),
        }
    }

    async fn write(&self, count: usize) -> redis::RedisResult<()> {
        self.service
            .hset(COUNTS_KEY, &self.instance_id, &count.to_string())
            .await?;
        self.service
            .hset(LAST_UPDATE_KEY, &self.instance_id, &now_ms().to_string())
            .await
    }

    /// Runs the heartbeat: writes when `count()` changes (checked every 250 ms) and every 2 s.
    pub fn spawn(&self, count: impl Fn() -> usize + Send + Sync + 'static) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last: Option<usize> = None;
            let mut last_write = tokio::time::Instant::now() - HEARTBEAT;
            let mut tick = tokio::time::interval(CHECK);
            loop {
                tick.tick().await;
                let n = count();
                if last != Some(n) || last_write.elapsed() >= HEARTBEAT {
                    match me.write(n).await {
                        Ok(()) => {
                            last = Some(n);
                            last_write = tokio::time::Instant::now();
                        }
                        Err(e) => tracing::debug!(error = %e, "presence heartbeat failed"),
                    }
                }
            }
        })
    }

    /// Removes this instance's entries (graceful shutdown only).
    pub async fn remove(&self) -> redis::RedisResult<()> {
        self.service.hdel(COUNTS_KEY, &self.instance_id).await?;
        self.service.hdel(LAST_UPDATE_KEY, &self.instance_id).await
    }

    /// Every instance known to the hashes.
    pub async fn read(&self) -> redis::RedisResult<Vec<InstanceStats>> {
        let counts = self.service.hgetall(COUNTS_KEY).await?;
        let updates = self.service.hgetall(LAST_UPDATE_KEY).await?;
        Ok(merge(&counts, &updates, now_ms()))
    }
}

/// Combines the two hashes into per-instance stats at time `now`.
pub fn merge(
    counts: &std::collections::HashMap<String, String>,
    updates: &std::collections::HashMap<String, String>,
    now: u64,
) -> Vec<InstanceStats> {
    let mut ids: Vec<&String> = counts.keys().chain(updates.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let last_update = updates.get(id).and_then(|v| v.parse().ok()).unwrap_or(0);
            let alive = now.saturating_sub(last_update) <= DOWN_AFTER_MS;
            InstanceStats {
                instance_id: id.clone(),
                connections: counts.get(id).and_then(|v| v.parse().ok()).unwrap_or(0),
                last_update,
                alive,
                status: if alive { "up" } else { "down" },
            }
        })
        .collect()
}

/// The connections of the instances up, summed with saturation (the counts come from peers).
pub fn total_connections(instances: &[InstanceStats]) -> u64 {
    instances
        .iter()
        .filter(|i| i.alive)
        .fold(0u64, |total, i| total.saturating_add(i.connections))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn merges_and_marks_silent_instances_down() {
        let counts: HashMap<String, String> = [("a", "3"), ("b", "5")].map(|(k, v)| (k.into(), v.into())).into();
        let updates: HashMap<String, String> = [("a", "10000"), ("b", "3000"), ("c", "9000")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let s = merge(&counts, &updates, 10_000);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].connections, s[0].alive, s[0].status), (3, true, "up"));
        assert_eq!((s[1].connections, s[1].alive, s[1].status), (5, false, "down"));
        assert_eq!((s[2].connections, s[2].alive), (0, true));
        assert_eq!(total_connections(&s), 3);
    }

    #[test]
    fn hostile_counts_saturate() {
        let max = u64::MAX.to_string();
        let counts: HashMap<String, String> = [("a", max.as_str()), ("b", max.as_str()), ("c", "x")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let updates: HashMap<String, String> = [("a", "10000"), ("b", "10000"), ("c", "10000")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let s = merge(&counts, &updates, 10_000);
        assert_eq!(s[2].connections, 0, "a count that is not a number counts 0");
        assert_eq!(total_connections(&s), u64::MAX);
    }
}
