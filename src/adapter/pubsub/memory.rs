//! A process-local pub/sub broker with Redis's semantics, for running several servers in one
//! process (tests, the multi-server harness): plain channels, glob patterns (`*` and `?`; no
//! `[...]` classes, which no adapter uses), and sharded channels, which like Redis's are a
//! separate space (`PUBLISH` never reaches `SSUBSCRIBE` and the reverse). Each connection's
//! messages go to its byte-bounded incoming queue in publish order; a publisher receives its
//! own messages when subscribed, as with Redis.

use super::{PubSub, PubSubMessage};
use crate::adapter::BoxFuture;
use crate::adapter::redis::queue::QueueSender;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
struct Subscriptions {
    channels: HashMap<String, usize>,
    patterns: HashMap<String, usize>,
    sharded: HashMap<String, usize>,
}

struct Conn {
    subs: Subscriptions,
    sink: QueueSender<PubSubMessage>,
}

#[derive(Default)]
struct Broker {
    conns: HashMap<u64, Conn>,
    next: u64,
}

/// The broker (cheap to clone); [`MemoryBus::connect`] opens a connection on it.
#[derive(Clone, Default)]
pub struct MemoryBus(Arc<Mutex<Broker>>);

impl MemoryBus {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Broker> {
        self.0.lock()
    }

    /// A connection whose received messages go to `sink`; closed when dropped.
    pub fn connect(&self, sink: QueueSender<PubSubMessage>) -> MemoryPubSub {
        let mut b = self.lock();
        let id = b.next;
        b.next += 1;
        b.conns.insert(
            id,
            Conn {
                subs: Subscriptions::default(),
                sink,
            },
        );
        MemoryPubSub { bus: self.clone(), id }
    }

    fn deliver(&self, channel: &str, payload: Vec<u8>, sharded: bool) {
        let payload = Bytes::from(payload);
        let b = self.lock();
        for conn in b.conns.values() {
            let s = &conn.subs;
            let copies = if sharded {
                usize::from(s.sharded.contains_key(channel))
            } else {
                usize::from(s.channels.contains_key(channel))
                    + s.patterns
                        .keys()
                        .filter(|p| glob_match(p.as_bytes(), channel.as_bytes()))
                        .count()
            };
            for _ in 0..copies {
                conn.sink.push(PubSubMessage {
                    channel: channel.to_owned(),
                    payload: payload.clone(),
                });
            }
        }
    }

    /// How many connections subscribe to `channel` (a sharded channel when `sharded`).
    pub fn subscribers(&self, channel: &str, sharded: bool) -> usize {
        let b = self.lock();
        b.conns
            .values()
            .filter(|c| {
                if sharded {
                    c.subs.sharded.contains_key(channel)
                } else {
                    c.subs.channels.contains_key(channel)
                }
            })
            .count()
    }
}

/// One connection on a [`MemoryBus`].
pub struct MemoryPubSub {
    bus: MemoryBus,
    id: u64,
}

impl MemoryPubSub {
    fn change(&self, pick: fn(&mut Subscriptions) -> &mut HashMap<String, usize>, name: &str, up: bool) {
        let mut b = self.bus.lock();
        let Some(conn) = b.conns.get_mut(&self.id) else { return };
        let map = pick(&mut conn.subs);
        if up {
            *map.entry(name.to_owned()).or_insert(0) += 1;
        } else if let Some(n) = map.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                map.remove(name);
            }
        }
    }
}

impl Drop for MemoryPubSub {
    fn drop(&mut self) {
        self.bus.lock().conns.remove(&self.id);
    }
}

impl PubSub for MemoryPubSub {
    fn publish(&self, channel: String, payload: Vec<u8>) {
        self.bus.deliver(&channel, payload, false);
    }

    fn spublish(&self, channel: String, payload: Vec<u8>) {
        self.bus.deliver(&channel, payload, true);
    }

    fn subscribe(&self, channel: String) {
        self.change(|s| &mut s.channels, &channel, true);
    }

    fn unsubscribe(&self, channel: &str) {
        self.change(|s| &mut s.channels, channel, false);
    }

    fn psubscribe(&self, pattern: String) {
        self.change(|s| &mut s.patterns, &pattern, true);
    }

    fn punsubscribe(&self, pattern: &str) {
        self.change(|s| &mut s.patterns, pattern, false);
    }

    fn ssubscribe(&self, channel: String) {
        self.change(|s| &mut s.sharded, &channel, true);
    }

    fn sunsubscribe(&self, channel: &str) {
        self.change(|s| &mut s.sharded, channel, false);
    }

    fn numsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>> {
        let n = self.bus.subscribers(channel, false);
        Box::pin(async move { Ok(n) })
    }

    fn shardnumsub(&self, channel: &str) -> BoxFuture<'static, Result<usize, String>> {
        let n = self.bus.subscribers(channel, true);
        Box::pin(async move { Ok(n) })
    }
}

/// Redis-style glob matching of `*` (any run) and `?` (any one byte), iterative (the last `*`
/// is backtracked to, so it runs in O(pattern × text) at worst without recursion).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::pubsub::incoming_queue;

    #[test]
    fn globs() {
        assert!(glob_match(b"socket.io#/#*", b"socket.io#/#"));
        assert!(glob_match(b"socket.io#/#*", b"socket.io#/#room#"));
        assert!(!glob_match(b"socket.io#/#*", b"socket.io#/chat#"));
        assert!(glob_match(b"a?c*z", b"abcxyz"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"**", b""));
    }

    #[tokio::test]
    async fn channels_patterns_and_shards_are_separate() {
        let bus = MemoryBus::default();
        let (tx_a, mut rx_a) = incoming_queue(1 << 20);
        let (tx_b, mut rx_b) = incoming_queue(1 << 20);
        let a = bus.connect(tx_a);
        let b = bus.connect(tx_b);
        a.subscribe("c".into());
        a.subscribe("c".into());
        b.psubscribe("c*".into());
        b.ssubscribe("c".into());
        assert_eq!(a.numsub("c").await, Ok(1));
        assert_eq!(a.shardnumsub("c").await, Ok(1));
        a.publish("c".into(), b"1".to_vec());
        a.spublish("c".into(), b"2".to_vec());
        a.unsubscribe("c");
        assert_eq!(a.numsub("c").await, Ok(1), "still wanted once");
        a.unsubscribe("c");
        assert_eq!(a.numsub("c").await, Ok(0));
        a.publish("c".into(), b"3".to_vec());
        drop(b);
        a.spublish("c".into(), b"4".to_vec());
        assert_eq!(a.shardnumsub("c").await, Ok(0), "a dropped connection unsubscribes");
        assert_eq!(&rx_a.recv().await.unwrap().payload[..], b"1");
        let got: Vec<Bytes> = [rx_b.recv().await, rx_b.recv().await, rx_b.recv().await]
            .into_iter()
            .map(|m| m.unwrap().payload)
            .collect();
        assert_eq!(got, [&b"1"[..], b"2", b"3"]);
        drop(a);
        assert!(rx_a.recv().await.is_none(), "nothing else reached a");
    }
}
