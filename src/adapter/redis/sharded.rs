//! The sharded Redis adapter, compatible with `@socket.io/redis-adapter`'s
//! `createShardedAdapter`: socket.io-adapter's `ClusterAdapter` messages (written once in
//! [`crate::adapter::cluster::ClusterAdapter`]) over Redis ≥ 7 sharded pub/sub. This file is only
//! the [`ClusterBus`]: `{type, data, uid, nsp}` on `prefix#nsp#`, one channel per public room
//! (`prefix#nsp#room#`, the default "dynamic" mode) for plain broadcasts to one room, and
//! responses on `prefix#nsp#<requester uid>#`; servers counted with `PUBSUB SHARDNUMSUB`.

use crate::adapter::cluster::{ClusterAdapter, ClusterBus, MessageType, Outbound};
use crate::adapter::pubsub::{PubSub, PubSubMessage, Routed};
use crate::adapter::{BoxFuture, Room};
use std::sync::Arc;
use std::time::Duration;

/// Whether a room name looks like a socket id (Node: a 20-character string).
fn looks_like_socket_id(room: &str) -> bool {
    room.chars().count() == 20
}

/// How the sharded adapter's messages travel over sharded pub/sub.
pub struct ShardedBus {
    driver: Arc<dyn PubSub>,
    channel: String,
}

impl ShardedBus {
    fn room_channel(&self, room: &str) -> String {
        format!("{}{room}#", self.channel)
    }
}

impl ClusterBus for ShardedBus {
    fn publish(&self, to: Outbound<'_>, payload: Vec<u8>) {
        let channel = match to.rooms {
            [room] if to.ty == MessageType::Broadcast && !to.is_request && !looks_like_socket_id(room) => {
                self.room_channel(room)
            }
            _ => self.channel.clone(),
        };
        self.driver.spublish(channel, payload);
    }

    fn publish_response(&self, requester: &str, payload: Vec<u8>) {
        self.driver.spublish(format!("{}{requester}#", self.channel), payload);
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let count = self.driver.shardnumsub(&self.channel);
        Box::pin(async move { count.await.unwrap_or(1).max(1) })
    }

    fn is_healthy(&self) -> bool {
        self.driver.is_healthy()
    }

    fn on_room_created(&self, room: &Room) {
        self.driver.ssubscribe(self.room_channel(room));
    }

    fn on_room_deleted(&self, room: &Room) {
        // A no-op for rooms never subscribed (socket ids).
        self.driver.sunsubscribe(&self.room_channel(room));
    }
}

/// Routes the messages of one namespace's channels to its adapter.
pub struct ShardedRoute {
    adapter: Arc<ClusterAdapter>,
    channel: String,
    response_channel: String,
}

impl Routed for ShardedRoute {
    fn route(&self, msg: &PubSubMessage) -> Option<usize> {
        msg.channel.starts_with(&self.channel).then_some(self.channel.len())
    }

    fn deliver(&self, msg: PubSubMessage) {
        self.adapter
            .on_pubsub(&msg.channel, &msg.payload, &self.response_channel);
    }
}

/// The sharded adapter of namespace `nsp` with channel prefix `prefix` over `driver`, and the
/// route to register with the driver's hub. Its two fixed channels are subscribed.
pub fn sharded_adapter(
    nsp: &str,
    prefix: &str,
    driver: Arc<dyn PubSub>,
    requests_timeout: Duration,
) -> (Arc<ClusterAdapter>, Arc<ShardedRoute>) {
    let channel = format!("{prefix}#{nsp}#");
    let bus = Arc::new(ShardedBus {
        driver: driver.clone(),
        channel: channel.clone(),
    });
    let adapter = Arc::new(ClusterAdapter::new(nsp, bus, requests_timeout));
    let response_channel = format!("{channel}{}#", adapter.uid());
    // One channel per command (on a Cluster they hash to different slots).
    driver.ssubscribe(channel.clone());
    driver.ssubscribe(response_channel.clone());
    let route = Arc::new(ShardedRoute {
        adapter: adapter.clone(),
        channel,
        response_channel,
    });
    (adapter, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::adapter::pubsub::incoming_queue;
    use crate::adapter::pubsub::memory::MemoryBus;

    #[test]
    fn socket_id_rooms_use_the_base_channel() {
        assert!(looks_like_socket_id("AbCdEfGhIjKlMnOpQrSt"));
        assert!(!looks_like_socket_id("room-1"));
    }

    #[tokio::test]
    async fn plain_broadcasts_to_one_room_use_its_channel() {
        let bus = MemoryBus::default();
        let (tx, mut rx) = incoming_queue(1 << 20);
        let listener = bus.connect(tx);
        for c in ["p#/#", "p#/#r#", "p#/#AbCdEfGhIjKlMnOpQrSt#", "p#/#u9#"] {
            listener.ssubscribe(c.into());
        }
        let (tx2, _rx2) = incoming_queue(1 << 20);
        let sb = ShardedBus {
            driver: Arc::new(bus.connect(tx2)),
            channel: "p#/#".into(),
        };
        fn out(ty: MessageType, rooms: &[Room], is_request: bool) -> Outbound<'_> {
            Outbound { ty, rooms, is_request }
        }
        let r = [Room::from("r")];
        let sid = [Room::from("AbCdEfGhIjKlMnOpQrSt")];
        let two = [Room::from("r"), Room::from("s")];
        sb.publish(out(MessageType::Broadcast, &r, false), b"1".to_vec());
        sb.publish(out(MessageType::Broadcast, &r, true), b"2".to_vec());
        sb.publish(out(MessageType::Broadcast, &sid, false), b"3".to_vec());
        sb.publish(out(MessageType::Broadcast, &two, false), b"4".to_vec());
        sb.publish(out(MessageType::SocketsJoin, &r, false), b"5".to_vec());
        sb.publish_response("u9", b"6".to_vec());
        let mut got = Vec::new();
        for _ in 0..6 {
            let m = rx.recv().await.expect("message");
            got.push(format!("{} {}", m.channel, String::from_utf8_lossy(&m.payload)));
        }
        assert_eq!(got, ["p#/#r# 1", "p#/# 2", "p#/# 3", "p#/# 4", "p#/# 5", "p#/#u9# 6"]);
    }
}
