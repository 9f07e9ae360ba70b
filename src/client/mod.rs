//! Our Socket.IO client: one persistent WebSocket connection to a Socket.IO server, sharing the
//! protocol core (Engine.IO packets, Socket.IO encoder and decoder). It reconnects with backoff,
//! answers pings, and emits events with acks. Used by the standalone webhook and by tools.
//!
//! An emit is either still queued (it can be cancelled, and then is never sent) or written to the
//! socket (then only the server's ack tells whether it was handled), so callers can tell "not
//! delivered" from "outcome unknown". The queue of emits not yet written is bounded in bytes.

use crate::engineio::{Frame, Packet as EioPacket, Str};
use crate::socketio::{Decoder, DecoderLimits, Packet, PacketType};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Most bytes of emits queued and not yet written to the socket; past it `emit` refuses.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Why an emit did not get its ack.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Not connected to the server right now (or the connection dropped before the event was
    /// written): the event was not sent.
    #[error("not connected to the Socket.IO server")]
    NotConnected,
    /// Too many bytes are queued for the connection: the event was not sent.
    #[error("the client's send queue is full")]
    QueueFull,
    /// Not written to the socket within the timeout: cancelled, the event was not sent.
    #[error("not sent within {0:?}")]
    Timeout(Duration),
    /// Written, but no ack within the timeout (the event may or may not have been handled).
    #[error("sent, but not acknowledged within {0:?}")]
    NoAck(Duration),
    /// The connection dropped after the event was written, before its ack arrived (the event may
    /// or may not have been handled).
    #[error("connection lost before the acknowledgement")]
    ConnectionLost,
}

impl ClientError {
    /// Whether the server may have handled the event anyway (it was written to the socket).
    pub fn maybe_sent(&self) -> bool {
        matches!(self, ClientError::NoAck(_) | ClientError::ConnectionLost)
    }
}

const QUEUED: u8 = 0;
const WRITTEN: u8 = 1;
const CANCELLED: u8 = 2;

struct Emit {
    /// The encoded EVENT packet without its ack id: `2[...]` (the id goes after the type digit).
    packet: String,
    state: Arc<AtomicU8>,
    ack: oneshot::Sender<Vec<Value>>,
}

/// An emitted event waiting for its ack; it can be cancelled while it is not written yet.
pub struct PendingAck {
    state: Arc<AtomicU8>,
    rx: oneshot::Receiver<Vec<Value>>,
}

impl PendingAck {
    /// Cancels the event if it has not been written to the socket yet. True when it will never be
    /// sent (cancelled now or before); false when it was already written.
    pub fn cancel(&self) -> bool {
        match self
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }

    /// Whether the event has been written to the socket.
    pub fn is_written(&self) -> bool {
        self.state.load(Ordering::Acquire) == WRITTEN
    }

    /// Waits for the server's ack arguments (no deadline of its own: wrap it in one).
    pub async fn wait(&mut self) -> Result<Vec<Value>, ClientError> {
        match (&mut self.rx).await {
            Ok(args) => Ok(args),
            Err(_) if self.is_written() => Err(ClientError::ConnectionLost),
            Err(_) => Err(ClientError::NotConnected),
        }
    }
}

/// A persistent Socket.IO client connection (namespace `/`).
#[derive(Clone)]
pub struct SioClient {
    connected: Arc<AtomicBool>,
    emits: mpsc::UnboundedSender<Emit>,
    queued_bytes: Arc<AtomicUsize>,
}

/// The WebSocket URL of a Socket.IO server URL (`http://host:port` → `ws://host:port/socket.io/…`).
pub fn websocket_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/socket.io/?EIO=4&transport=websocket")
}

impl SioClient {
    /// Starts connecting to `url` (e.g. `http://127.0.0.1:3000`) and keeps the connection up.
    pub fn connect(url: &str) -> SioClient {
        let (tx, rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(websocket_url(url), connected.clone(), rx, queued_bytes.clone()));
        SioClient {
            connected,
            emits: tx,
            queued_bytes,
        }
    }

    /// Whether the client is connected to the namespace right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Queues `event` with `args` (asking for an ack); the returned handle waits for the ack or
    /// cancels the event while it is not written yet.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> Result<PendingAck, ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        let mut packet = String::new();
        Packet::event("/", event, args).encode_text_into(&mut packet);
        let len = packet.len();
        if self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > MAX_QUEUED_BYTES {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(ClientError::QueueFull);
        }
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (ack, rx) = oneshot::channel();
        let emit = Emit {
            packet,
            state: state.clone(),
            ack,
        };
        if self.emits.send(emit).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(ClientError::NotConnected);
        }
        Ok(PendingAck { state, rx })
    }

    /// Emits `event` with `args` and waits up to `timeout` for the server's ack arguments. An event
    /// not written by then is cancelled ([`ClientError::Timeout`]: not sent).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, ClientError> {
        let mut pending = self.emit(event, args)?;
        match tokio::time::timeout(timeout, pending.wait()).await {
            Ok(result) => result,
            Err(_) if pending.cancel() => Err(ClientError::Timeout(timeout)),
            Err(_) => Err(ClientError::NoAck(timeout)),
        }
    }
}

/// Takes an emit off the queue: true when it may be written (it was not cancelled).
fn take(emit: &Emit, queued: &AtomicUsize, next: u8) -> bool {
    queued.fetch_sub(emit.packet.len(), Ordering::AcqRel);
    emit.state
        .compare_exchange(QUEUED, next, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

async fn run(
    url: String,
    connected: Arc<AtomicBool>,
    mut emits: mpsc::UnboundedReceiver<Emit>,
    queued: Arc<AtomicUsize>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match session(&url, &connected, &mut emits, &queued).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(%url, error = %e, "socket.io client connection failed"),
        }
        connected.store(false, Ordering::Release);
        // Emits queued while disconnected would be delivered late: cancel them now (not sent).
        while let Ok(e) = emits.try_recv() {
            take(&e, &queued, CANCELLED);
        }
        if emits.is_closed() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn text(s: String) -> Message {
    Message::Text(s.into())
}

/// One connection: handshake, CONNECT to `/`, then emits, acks and heartbeats until it drops.
async fn session(
    url: &str,
    connected: &AtomicBool,
    emits: &mut mpsc::UnboundedReceiver<Emit>,
    queued: &AtomicUsize,
) -> Result<(), String> {
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new(DecoderLimits::default());
    let mut pending: HashMap<u64, oneshot::Sender<Vec<Value>>> = HashMap::new();
    let mut next_id = 0u64;
    let mut heartbeat = Duration::from_secs(45);
    let mut sio_connected = false;
    ws.send(text("40".into())).await.map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            msg = tokio::time::timeout(heartbeat, ws.next()) => {
                let msg = match msg {
                    Err(_) => return Err("no ping from the server in time".into()),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(Some(Ok(m))) => m,
                };
                let frame = match msg {
                    Message::Text(t) => Frame::Text(Str::from(t.as_str())),
                    Message::Binary(b) => Frame::Binary(b),
                    Message::Close(_) => return Ok(()),
                    _ => continue,
                };
                match frame.decode().map_err(|e| e.to_string())? {
                    EioPacket::Open(json) => {
                        let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
                        let ms = v["pingInterval"].as_u64().unwrap_or(25_000) + v["pingTimeout"].as_u64().unwrap_or(20_000);
                        heartbeat = Duration::from_millis(ms + 1000);
                    }
                    EioPacket::Ping(_) => ws.send(text("3".into())).await.map_err(|e| e.to_string())?,
                    EioPacket::Close => return Ok(()),
                    EioPacket::Message(data) => {
                        let decoded = match data {
                            crate::engineio::Data::Text(s) => decoder.add_text(&s),
                            crate::engineio::Data::Binary(b) => decoder.add_binary(b),
                        };
                        let Some(p) = decoded.map_err(|e| e.to_string())? else { continue };
                        match p.ty {
                            PacketType::Connect if p.nsp == "/" => {
                                sio_connected = true;
                                connected.store(true, Ordering::Release);
                                tracing::info!(%url, "socket.io client connected");
                            }
                            PacketType::ConnectError => return Err(format!("connection refused: {:?}", p.data)),
                            PacketType::Ack | PacketType::BinaryAck => {
                                if let Some(tx) = p.id.and_then(|id| pending.remove(&id)) {
                                    let _ = tx.send(p.args().to_vec());
                                }
                            }
                            PacketType::Disconnect => return Ok(()),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            emit = emits.recv(), if sio_connected => {
                let Some(emit) = emit else { return Ok(()) };
                if !take(&emit, queued, WRITTEN) {
                    continue; // its caller gave up before it was written: never sent
                }
                let id = next_id;
                next_id += 1;
                pending.insert(id, emit.ack);
                pending.retain(|_, tx| !tx.is_closed());
                // "4" (Engine.IO message) + type digit + ack id + the JSON array.
                let (ty, data) = emit.packet.split_at(1);
                ws.send(text(format!("4{ty}{id}{data}"))).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_id_goes_after_the_type_digit() {
        let args = vec![serde_json::json!({"roomId": "r", "message": "hi"})];
        let mut queued = String::new();
        Packet::event("/", "message", args.clone()).encode_text_into(&mut queued);
        let (ty, data) = queued.split_at(1);
        let spliced = format!("{ty}{}{data}", 17);
        assert_eq!(spliced, Packet::event("/", "message", args).with_id(17).encode_text());
    }

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:3000"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            websocket_url("https://chat.example/"),
            "wss://chat.example/socket.io/?EIO=4&transport=websocket"
        );
    }
}
