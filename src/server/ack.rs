//! Pending acknowledgements: what waits for a client's ACK packet.

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// The arguments of an ACK.
#[derive(Clone, Debug, PartialEq)]
pub struct AckReply {
    /// JSON arguments (binary attachments appear as placeholders).
    pub args: Vec<Value>,
    /// Binary attachments.
    pub binary: Vec<Bytes>,
}

/// Who waits for an ACK with a given id.
#[derive(Debug)]
pub(crate) enum AckWaiter {
    /// `emit_with_ack` on one socket.
    One(oneshot::Sender<AckReply>),
    /// A broadcast with acks: collects each client's first argument.
    Many(mpsc::UnboundedSender<Value>),
}

impl AckWaiter {
    pub(crate) fn complete(self, reply: AckReply) {
        match self {
            AckWaiter::One(tx) => {
                let _ = tx.send(reply);
            }
            AckWaiter::Many(tx) => {
                let _ = tx.send(reply.args.into_iter().next().unwrap_or(Value::Null));
            }
        }
    }
}
