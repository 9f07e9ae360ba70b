//! The bench's ceiling: a raw tokio-tungstenite fan-out server with no Socket.IO framing. A client
//! joins with `{"join":"room"}` (answered `{"joined":"room"}`); any other text frame carrying
//! `"roomId":"…"` is relayed, as the same shared bytes, to every member of that room.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The string value of `"key":"…"` in a JSON text (no escapes expected).
fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = text[at..].find('"')?;
    Some(&text[at..at + end])
}

/// Serves one connection: a writer task batching queued frames, and this reader.
async fn serve(stream: TcpStream, rooms: Rooms) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        if let Some(room) = text
            .strip_prefix("{\"join\":")
            .and_then(|_| string_field(&text, "join"))
        {
            rooms
                .lock()
                .unwrap()
                .entry(room.to_owned())
                .or_default()
                .push((id, tx.clone()));
            joined.push(room.to_owned());
            let _ = tx.send(Message::text(format!("{{\"joined\":\"{room}\"}}")));
        } else if let Some(room) = string_field(&text, "roomId") {
            let shared: Utf8Bytes = text.clone();
            if let Some(members) = rooms.lock().unwrap().get(room) {
                for (_, member) in members {
                    let _ = member.send(Message::Text(shared.clone()));
                }
            }
        }
    }
    let mut rooms = rooms.lock().unwrap();
    for room in joined {
        if let Some(members) = rooms.get_mut(&room) {
            members.retain(|(m, _)| *m != id);
        }
    }
    drop(rooms);
    writer.abort();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "3000".into());
    let listener = match TcpListener::bind(format!("127.0.0.1:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("raw-ws-server: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("raw-ws-server listening on 127.0.0.1:{port}");
    let rooms = Rooms::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, rooms.clone()));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::string_field;

    #[test]
    fn finds_string_fields() {
        assert_eq!(string_field(r#"{"join":"bench"}"#, "join"), Some("bench"));
        assert_eq!(string_field(r#"{"roomId":"r1","ts":1}"#, "roomId"), Some("r1"));
        assert_eq!(string_field(r#"{"ts":1}"#, "roomId"), None);
    }
}
