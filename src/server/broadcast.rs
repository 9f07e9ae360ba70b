//! The broadcast operator (`io.to(room).except(other).volatile.emit(…)`): immutable builders over a
//! namespace that deliver locally, encoded once, and hand the rest to the adapter.

use super::error::{AckError, EmitError};
use super::namespace::Namespace;
use super::rooms::Room;
use super::socket::{event_packet, to_value};
use crate::adapter::{BroadcastFlags, BroadcastOptions, RemoteAck, SocketInfo};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

/// Node's default ack timeout for broadcasts is effectively zero; we require one and default to 5 s.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

async fn recv_remote(remote: &mut Option<mpsc::UnboundedReceiver<RemoteAck>>) -> Option<RemoteAck> {
    match remote.as_mut() {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Targets sockets of a namespace for an emit or a cluster operation.
#[derive(Clone, Debug)]
pub struct BroadcastOperator {
    nsp: Namespace,
    opts: BroadcastOptions,
}

impl BroadcastOperator {
    pub(crate) fn new(nsp: Namespace) -> BroadcastOperator {
        BroadcastOperator {
            nsp,
            opts: BroadcastOptions::default(),
        }
    }

    /// Adds a room to target.
    pub fn to(mut self, room: &str) -> BroadcastOperator {
        let room = Room::from(room);
        if !self.opts.rooms.contains(&room) {
            self.opts.rooms.push(room);
        }
        self
    }

    /// Adds a room whose members are excluded.
    pub fn except(mut self, room: &str) -> BroadcastOperator {
        let room = Room::from(room);
        if !self.opts.except.contains(&room) {
            self.opts.except.push(room);
        }
        self
    }

    /// Lets the packet be dropped for clients not ready to receive it.
    pub fn volatile(mut self) -> BroadcastOperator {
        self.opts.flags.volatile = true;
        self
    }

    /// Limits the operation to this server.
    pub fn local(mut self) -> BroadcastOperator {
        self.opts.flags.local = true;
        self
    }

    /// Sets how long `emit_with_ack` waits for acks.
    pub fn timeout(mut self, d: Duration) -> BroadcastOperator {
        self.opts.flags.timeout = Some(d);
        self
    }

    /// The targeting options.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// The flags.
    pub fn flags(&self) -> BroadcastFlags {
        self.opts.flags
    }

    /// Emits `event` with one argument to every targeted socket in the cluster.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.emit_args(event, vec![to_value(data)?], Vec::new())
    }

    /// Emits `event` with several arguments and binary attachments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>, binary: Vec<Bytes>) -> Result<(), EmitError> {
        let packet = event_packet(self.nsp.name(), event, args, binary)?;
        let adapter = self.nsp.adapter();
        if adapter.recovery() {
            // The adapter assigns the offset; the delivery goes on if the future is dropped.
            drop(adapter.deliver(&self.nsp, packet, &self.opts));
            return Ok(());
        }
        self.nsp.local_broadcast(&packet, &self.opts);
        if !self.opts.flags.local {
            adapter.broadcast(&packet, &self.opts);
        }
        Ok(())
    }

    /// Like [`BroadcastOperator::emit_args`], resolving once the packet is durable: with
    /// connection state recovery, once the adapter has stored it (a Streams adapter: `XADD`
    /// answered), so an ack sent after it promises a recovering client will get the packet.
    /// Successive calls from one caller are delivered in call order, awaited or not.
    pub fn emit_durable(
        &self,
        event: &str,
        args: Vec<Value>,
        binary: Vec<Bytes>,
    ) -> impl Future<Output = Result<(), EmitError>> + Send + 'static {
        let delivery = match event_packet(self.nsp.name(), event, args, binary) {
            Err(e) => Err(e),
            Ok(packet) => Ok(self.nsp.adapter().deliver(&self.nsp, packet, &self.opts)),
        };
        async move { Ok(delivery?.await?) }
    }

    /// Emits `event` and collects every targeted client's ack (its first argument) until all have
    /// answered or the timeout passes; on timeout the error holds the answers that arrived.
    pub fn emit_with_ack(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<Vec<Value>, AckError>> + Send + 'static {
        let prepared = to_value(data).and_then(|v| event_packet(self.nsp.name(), event, vec![v], Vec::new()));
        let nsp = self.nsp.clone();
        let opts = self.opts.clone();
        async move {
            let timeout = opts.flags.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
            let deadline = tokio::time::Instant::now() + timeout;
            let id = nsp.next_ack_id();
            let packet = prepared?.with_id(id);
            let (tx, mut rx) = mpsc::unbounded_channel();
            let targets = nsp.local_broadcast_with_ack(&packet, &opts, &tx);
            drop(tx);
            let mut expected = targets.len();
            let (mut servers_left, mut remote) = if opts.flags.local {
                (0, None)
            } else {
                nsp.adapter().broadcast_with_ack(&packet, &opts).await
            };
            let mut responses = Vec::new();
            let mut local_open = true;
            let result = loop {
                if servers_left == 0 && responses.len() >= expected {
                    break Ok(responses);
                }
                tokio::select! {
                    v = rx.recv(), if local_open => match v {
                        Some(v) => responses.push(v),
                        None => local_open = false,
                    },
                    r = recv_remote(&mut remote), if remote.is_some() => match r {
                        Some(RemoteAck::ClientCount(n)) => {
                            // A peer's count: saturate rather than overflow on a hostile value.
                            expected = expected.saturating_add(n);
                            servers_left = servers_left.saturating_sub(1);
                        }
                        Some(RemoteAck::Ack(v)) => responses.push(v),
                        None => {
                            remote = None;
                            servers_left = 0;
                        }
                    },
                    _ = tokio::time::sleep_until(deadline) => break Err(AckError::Timeout(responses)),
                }
            };
            if result.is_err() {
                for s in &targets {
                    s.forget_ack(id);
                }
            }
            result
        }
    }

    /// The targeted sockets of the whole cluster.
    pub async fn fetch_sockets(&self) -> Vec<SocketInfo> {
        let mut out = Vec::new();
        self.nsp.for_each_local(&self.opts, |s| {
            out.push(SocketInfo {
                id: s.id().to_owned(),
                handshake: s.handshake().to_json(),
                rooms: s.rooms(),
                data: s.data(),
            })
        });
        if !self.opts.flags.local {
            out.extend(self.nsp.adapter().fetch_sockets(&self.opts).await);
        }
        out
    }

    /// Makes the targeted sockets join `rooms`.
    pub fn sockets_join(&self, rooms: &[&str]) {
        let rooms: Vec<Room> = rooms.iter().map(|r| Room::from(*r)).collect();
        self.nsp.local_add_sockets(&self.opts, &rooms);
        if !self.opts.flags.local {
            self.nsp.adapter().add_sockets(&self.opts, &rooms);
        }
    }

    /// Makes the targeted sockets leave `rooms`.
    pub fn sockets_leave(&self, rooms: &[&str]) {
        let rooms: Vec<Room> = rooms.iter().map(|r| Room::from(*r)).collect();
        self.nsp.local_del_sockets(&self.opts, &rooms);
        if !self.opts.flags.local {
            self.nsp.adapter().del_sockets(&self.opts, &rooms);
        }
    }

    /// Disconnects the targeted sockets (`close` closes their whole connections).
    pub fn disconnect_sockets(&self, close: bool) {
        self.nsp.local_disconnect_sockets(&self.opts, close);
        if !self.opts.flags.local {
            self.nsp.adapter().disconnect_sockets(&self.opts, close);
        }
    }
}
