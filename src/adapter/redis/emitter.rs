//! Publishing into the cluster without being a Socket.IO server, like `@socket.io/redis-emitter`:
//! broadcasts with uid `"emitter"` on the classic adapter's channels. Used by the webhook's Redis
//! mode.

use super::codec::encode_broadcast;
use super::service::RedisService;
use crate::adapter::BroadcastOptions;
use crate::adapter::Room;
use crate::socketio::Packet;
use serde_json::Value;

/// The uid every emitter uses; adapters accept messages from it.
pub const EMITTER_UID: &str = "emitter";

/// Emits events to rooms through Redis.
#[derive(Clone)]
pub struct Emitter {
    service: RedisService,
    prefix: String,
}

impl Emitter {
    /// An emitter publishing with key prefix `prefix` (`socket.io`).
    pub fn new(service: RedisService, prefix: &str) -> Emitter {
        Emitter {
            service,
            prefix: prefix.to_owned(),
        }
    }

    /// The Redis service.
    pub fn service(&self) -> &RedisService {
        &self.service
    }

    /// Emits `event` with `args` to `room` of namespace `nsp`; returns how many subscribers
    /// Redis reports received it. On a Cluster, where `PUBLISH` counts only the subscribers of the
    /// node that took it (the cluster bus carries it to the others), this is the number of servers
    /// subscribed to the namespace's request channel on all nodes, counted before publishing: with
    /// none, nothing is published and 0 is returned.
    pub async fn emit_to_room(&self, nsp: &str, room: &str, event: &str, args: Vec<Value>) -> redis::RedisResult<i64> {
        let packet = Packet::event(nsp, event, args);
        let opts = BroadcastOptions {
            rooms: vec![Room::from(room)],
            ..BroadcastOptions::default()
        };
        let channel = format!("{}#{nsp}#{room}#", self.prefix);
        if self.service.is_cluster() {
            let request_channel = format!("{}-request#{nsp}#", self.prefix);
            let servers = self.service.numsub(&request_channel, false).await?;
            // Servers re-subscribe their request channel and their room pattern separately after
            // a node failure: a server counted above may not hear the room yet.
            if servers == 0 || self.service.numpat().await? == 0 {
                return Ok(0);
            }
            self.service
                .publish(&channel, &encode_broadcast(EMITTER_UID, &packet, &opts))
                .await?;
            return Ok(i64::try_from(servers).unwrap_or(i64::MAX));
        }
        self.service
            .publish(&channel, &encode_broadcast(EMITTER_UID, &packet, &opts))
            .await
    }
}
