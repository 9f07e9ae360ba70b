//! The socketioxide reference server for `scripts/bench`: the benchmark's event contract
//! (`welcome`, `join`, `leave`, `message`, `echo`) on stock `socketioxide` 0.18 + axum 0.8 defaults,
//! so `sio-server` can be compared against it. Logs only one startup line.

use std::future::IntoFuture;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Router, http::header, routing::get};
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use serde_json::{Map, Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};

/// This instance's id (env `INSTANCE_ID`, default `sx-1`).
static INSTANCE_ID: OnceLock<String> = OnceLock::new();
/// Random low bits of every message id, drawn once at startup.
static ID_SEED: OnceLock<u64> = OnceLock::new();
/// Per-process message id counter.
static ID_COUNTER: AtomicU32 = AtomicU32::new(0);

/// All the arguments of an event, received and sent back as-is (a variadic Socket.IO tuple).
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Collects every element of the argument sequence.
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut args = Vec::new();
                while let Some(v) = seq.next_element()? {
                    args.push(v);
                }
                Ok(Args(args))
            }
        }
        d.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(self.0.len())?;
        for v in &self.0 {
            tuple.serialize_element(v)?;
        }
        tuple.end()
    }
}

/// The instance id set at startup.
fn instance_id() -> &'static str {
    INSTANCE_ID.get().map_or("sx-1", String::as_str)
}

/// The `{"ok":false,...}` ack for a missing or empty field.
fn required(field: &str) -> Value {
    json!({"ok": false, "error": {"field": field, "code": "required"}})
}

/// The room of a `join`/`leave` argument (a string or `{"roomId": string}`), if non-empty.
fn room_of(arg: &Value) -> Option<String> {
    let room = match arg {
        Value::Object(o) => o.get("roomId")?,
        v => v,
    };
    room.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Takes `key` out of `fields` (keeping the others' order) if it is a non-empty string.
fn take_str(fields: &mut Map<String, Value>, key: &str) -> Option<String> {
    match fields.shift_remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A unique 26-char Crockford base32 id: 48-bit millis, 32-bit counter, 48-bit random seed.
fn new_id(ms: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let count = ID_COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    let seed = *ID_SEED.get().unwrap_or(&0) as u128 & 0xFFFF_FFFF_FFFF;
    let v = ((ms as u128 & 0xFFFF_FFFF_FFFF) << 80) | (count << 48) | seed;
    (0..26)
        .rev()
        .map(|i| ALPHABET[(v >> (i * 5)) as usize & 31] as char)
        .collect()
}

/// Unix milliseconds as ISO-8601 UTC with millis, like JavaScript's `toISOString()`.
fn iso8601(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date, counting eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// Registers the event handlers and greets the new socket.
async fn on_connect(socket: SocketRef) {
    socket.on(
        "join",
        async |s: SocketRef, TryData(a): TryData<Value>, ack: AckSender| membership(&s, a.ok(), ack, true),
    );
    socket.on(
        "leave",
        async |s: SocketRef, TryData(a): TryData<Value>, ack: AckSender| membership(&s, a.ok(), ack, false),
    );
    socket.on("message", on_message);
    socket.on("echo", async |Data(args): Data<Args>, ack: AckSender| {
        drop(ack.send(&args))
    });
    let welcome = json!({"instanceId": instance_id(), "socketId": socket.id.to_string()});
    let _ = socket.emit("welcome", &welcome);
}

/// `join`/`leave`: adds the socket to or removes it from the room, and acks.
fn membership(socket: &SocketRef, arg: Option<Value>, ack: AckSender, join: bool) {
    let reply = match arg.as_ref().and_then(room_of) {
        Some(room) if join => {
            socket.join(room.clone());
            json!({"ok": true, "roomId": room, "instanceId": instance_id()})
        }
        Some(room) => {
            socket.leave(room.clone());
            json!({"ok": true, "roomId": room})
        }
        None => required("roomId"),
    };
    let _ = ack.send(&reply);
}

/// `message`: validates, builds the delivered message and broadcasts it to the room.
async fn on_message(io: SocketIo, TryData(arg): TryData<Value>, ack: AckSender) {
    let Ok(Value::Object(mut fields)) = arg else {
        return drop(ack.send(&required("roomId")));
    };
    let Some(room) = take_str(&mut fields, "roomId") else {
        return drop(ack.send(&required("roomId")));
    };
    let Some(text) = take_str(&mut fields, "message") else {
        return drop(ack.send(&required("message")));
    };
    let sender = take_str(&mut fields, "sender").unwrap_or_else(|| "Anonymous".into());
    fields.insert("type".into(), "text".into());
    let ms = now_ms();
    let id = new_id(ms);
    let parts = [
        ("id", Value::from(id.clone())),
        ("text", text.into()),
        ("sender", sender.into()),
        ("timestamp", iso8601(ms).into()),
        ("roomId", room.clone().into()),
        ("metadata", fields.into()),
    ];
    let msg = Map::from_iter(parts.map(|(k, v)| (k.to_owned(), v)));
    let _ = io.to(room).emit("message", &msg).await;
    let _ = ack.send(&json!({"ok": true, "id": id}));
}

/// `GET /health`: readiness probe.
async fn health() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"ok":true}"#)
}

/// The port: `--port N`, else env `PORT`, else 3000.
fn port() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    let cli = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let raw = cli
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "3000".into());
    raw.parse().unwrap_or_else(|_| {
        eprintln!("bench-socketioxide: invalid port {raw:?}");
        std::process::exit(2)
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = port();
    let _ = INSTANCE_ID.set(std::env::var("INSTANCE_ID").unwrap_or_else(|_| "sx-1".into()));
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let _ = ID_SEED.set(u64::from_le_bytes(seed));
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = Router::new().route("/health", get(health)).layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bench-socketioxide listening on 127.0.0.1:{port}");
    tokio::select! {
        res = axum::serve(listener, app).into_future() => res,
        () = shutdown() => Ok(()),
    }
}
