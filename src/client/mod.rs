//! Our Socket.IO client: one persistent WebSocket connection to a Socket.IO server, sharing the
//! protocol core (Engine.IO packets, Socket.IO encoder and decoder). It reconnects with backoff,
//! answers pings, and emits events with acks. Used by the standalone webhook and by tools.

use crate::engineio::{Frame, Packet as EioPacket, Str};
use crate::socketio::{Decoder, DecoderLimits, Packet, PacketType};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Why an emit did not get its ack.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Not connected to the server right now.
    #[error("not connected to the Socket.IO server")]
    NotConnected,
    /// No ack within the timeout.
    #[error("no acknowledgement within {0:?}")]
    Timeout(Duration),
    /// The connection dropped before the ack arrived (the event may or may not have been handled).
    #[error("connection lost before the acknowledgement")]
    ConnectionLost,
}

struct Emit {
    event: String,
    args: Vec<Value>,
    ack: oneshot::Sender<Vec<Value>>,
}

/// A persistent Socket.IO client connection (namespace `/`).
#[derive(Clone)]
pub struct SioClient {
    connected: Arc<AtomicBool>,
    emits: mpsc::UnboundedSender<Emit>,
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
        tokio::spawn(run(websocket_url(url), connected.clone(), rx));
        SioClient { connected, emits: tx }
    }

    /// Whether the client is connected to the namespace right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Emits `event` with `args` and waits up to `timeout` for the server's ack arguments.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        let (ack, rx) = oneshot::channel();
        self.emits
            .send(Emit {
                event: event.to_owned(),
                args,
                ack,
            })
            .map_err(|_| ClientError::NotConnected)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(ClientError::ConnectionLost),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }
}

async fn run(url: String, connected: Arc<AtomicBool>, mut emits: mpsc::UnboundedReceiver<Emit>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match session(&url, &connected, &mut emits).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(%url, error = %e, "socket.io client connection failed"),
        }
        connected.store(false, Ordering::Release);
        // Emits queued while disconnected would be delivered late: fail them now.
        while let Ok(e) = emits.try_recv() {
            drop(e.ack);
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
async fn session(url: &str, connected: &AtomicBool, emits: &mut mpsc::UnboundedReceiver<Emit>) -> Result<(), String> {
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
                let id = next_id;
                next_id += 1;
                let packet = Packet::event("/", &emit.event, emit.args).with_id(id);
                pending.insert(id, emit.ack);
                pending.retain(|_, tx| !tx.is_closed());
                let mut s = String::from("4");
                packet.encode_text_into(&mut s);
                ws.send(text(s)).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
