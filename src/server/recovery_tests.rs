//! Connection state recovery through the server with no network: connections are driven by hand
//! (messages in, outbox frames out), with an adapter whose restore answers later, as a remote
//! store's would.

use super::{Server, ServerConfig};
use crate::adapter::{
    Adapter, AdapterFactory, BoxFuture, BroadcastOptions, Restored, Session, SessionAwareAdapter, SessionEvent,
};
use crate::engineio::{CloseReason, Data, Frame, Str};
use crate::transport::outbox::{Outbox, OutboxLimits};
use crate::transport::{ConnHandler, EngineConn, EngineHandler, RequestInfo};
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

/// The in-memory recovering adapter, whose restore answers after 50 ms.
struct SlowRestore(SessionAwareAdapter);

impl Adapter for SlowRestore {
    fn recovery(&self) -> bool {
        true
    }
    fn deliver(
        &self,
        nsp: &crate::server::Namespace,
        packet: crate::socketio::Packet,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<(), crate::adapter::AdapterError>> {
        self.0.deliver(nsp, packet, opts)
    }
    fn persist_session(&self, session: Session, event: SessionEvent) {
        self.0.persist_session(session, event)
    }
    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>> {
        let restored = self.0.restore_session(pid, offset);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            restored.await
        })
    }
}

struct SlowFactory;

impl AdapterFactory for SlowFactory {
    fn create(&self, _nsp: &str) -> Arc<dyn Adapter> {
        Arc::new(SlowRestore(SessionAwareAdapter::new(Duration::from_secs(60), 1 << 20)))
    }
}

struct Client {
    outbox: Arc<Outbox>,
    handler: Box<dyn ConnHandler>,
}

impl Client {
    fn open(server: &Server, sid: &str) -> Client {
        let outbox = Arc::new(Outbox::with_limits(OutboxLimits::from_soft(1 << 20)));
        let conn = EngineConn::new(Arc::from(sid), outbox.clone(), Arc::new(AtomicU8::new(0)));
        let request = RequestInfo {
            headers: Arc::default(),
            query: "EIO=4&transport=websocket".into(),
            url: "/socket.io/?EIO=4&transport=websocket".into(),
            remote: "127.0.0.1:1".parse().expect("an address"),
            client: "127.0.0.1".parse().expect("an address"),
            secure: false,
        };
        let handler = server.on_open(conn, &request, Instant::now());
        Client { outbox, handler }
    }

    /// Feeds one Socket.IO packet (an Engine.IO message's data).
    fn send(&mut self, text: &str) {
        self.handler.on_message(Data::Text(Str::from(text)), Instant::now());
    }

    /// The Socket.IO packets (text frames without the Engine.IO `4`) queued so far.
    fn received(&self) -> Vec<String> {
        let mut out = Vec::new();
        let waker = futures_util::task::noop_waker_ref();
        self.outbox
            .drain(&mut std::task::Context::from_waker(waker), &mut out, usize::MAX);
        out.into_iter()
            .filter_map(|f| match f {
                Frame::Text(t) => t.get(1..).map(str::to_owned),
                Frame::Binary(_) => None,
            })
            .collect()
    }
}

fn reply(frames: &[String]) -> serde_json::Value {
    let connect = frames.iter().find(|f| f.starts_with("0{")).expect("a CONNECT reply");
    serde_json::from_str(&connect[1..]).expect("JSON")
}

#[tokio::test]
async fn a_restore_answered_later_connects_with_the_missed_packets_first() {
    let io = Server::with_adapter(ServerConfig::default(), Arc::new(SlowFactory));
    let mut first = Client::open(&io, "e1");
    first.send("0");
    let r = reply(&first.received());
    let (sid, pid) = (r["sid"].as_str().expect("sid"), r["pid"].as_str().expect("pid"));
    io.sockets().socket(sid).expect("connected").join("r").expect("joined");
    io.sockets().to("r").emit("a", 1).expect("emitted");
    assert_eq!(first.received(), [r#"2["a",1,"1"]"#]);
    first.handler.on_close(CloseReason::TransportClose);
    io.sockets().to("r").emit("b", 2).expect("emitted");

    let mut second = Client::open(&io, "e2");
    second.send(&format!(r#"0{{"pid":"{pid}","offset":"1"}}"#));
    assert_eq!(
        second.received(),
        Vec::<String>::new(),
        "nothing before the store answers"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = second.received();
    assert_eq!(got[0], r#"2["b",2,"2"]"#, "the missed packet first: {got:?}");
    assert_eq!(reply(&got), serde_json::json!({"sid": sid, "pid": pid}));
    let socket = io.sockets().socket(sid).expect("restored");
    assert!(socket.recovered());
    let mut rooms = vec![sid.to_owned(), "r".to_owned()];
    rooms.sort();
    assert_eq!(socket.rooms(), rooms);
    // The connection knows the namespace now: an event is dispatched, not a violation.
    second.send(r#"2["x"]"#);
    assert!(!second.outbox.close_requested());
    io.sockets().to("r").emit("c", 3).expect("emitted");
    assert_eq!(second.received(), [r#"2["c",3,"3"]"#]);
}

#[tokio::test]
async fn a_recovered_handshake_shows_no_pid_or_offset() {
    let io = Server::with_adapter(ServerConfig::default(), Arc::new(SlowFactory));
    let mut first = Client::open(&io, "e1");
    first.send(r#"0{"token":"t"}"#);
    let r = reply(&first.received());
    let (sid, pid) = (r["sid"].as_str().expect("sid"), r["pid"].as_str().expect("pid"));
    io.sockets().emit("a", 1).expect("emitted");
    first.handler.on_close(CloseReason::TransportClose);
    let mut second = Client::open(&io, "e2");
    second.send(&format!(r#"0{{"token":"t","pid":"{pid}","offset":"1"}}"#));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let socket = io.sockets().socket(sid).expect("restored");
    assert!(socket.recovered());
    assert_eq!(socket.handshake().auth, serde_json::json!({"token": "t"}));
    assert!(
        !serde_json::to_string(&socket.handshake().to_json())
            .expect("json")
            .contains(pid)
    );
}

#[tokio::test]
async fn an_emit_to_a_closed_socket_fails_with_recovery_on_too() {
    let io = Server::new(ServerConfig {
        recovery: true,
        ..ServerConfig::default()
    });
    let mut c = Client::open(&io, "e1");
    c.send("0");
    let sid = reply(&c.received())["sid"].as_str().expect("sid").to_owned();
    let socket = io.sockets().socket(&sid).expect("connected");
    assert!(socket.emit("a", 1).is_ok());
    c.handler.on_close(CloseReason::TransportClose);
    assert!(matches!(
        socket.emit("b", 2),
        Err(crate::server::EmitError::Disconnected)
    ));
}

#[tokio::test]
async fn an_async_middleware_holds_the_connect_reply_until_it_answers() {
    let io = Server::new(ServerConfig::default());
    io.of("/slow").use_async_middleware(|socket| {
        let ok = socket.handshake().auth.get("ok").is_some();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ok {
                Ok(())
            } else {
                Err(crate::server::ConnectError::new("nope"))
            }
        })
    });
    let mut c = Client::open(&io, "e1");
    c.send(r#"0/slow,{"ok":1}"#);
    assert_eq!(c.received(), Vec::<String>::new(), "nothing before it answers");
    c.send(r#"0/slow,{"ok":1}"#);
    assert!(
        c.outbox.close_requested() || c.outbox.is_closed(),
        "a second CONNECT meanwhile is a violation"
    );
    let mut d = Client::open(&io, "e2");
    d.send(r#"0/slow,{"ok":1}"#);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = d.received();
    assert!(got[0].starts_with(r#"0/slow,{"sid":"#), "{got:?}");
    assert_eq!(io.of("/slow").local_len(), 1);
    let mut e = Client::open(&io, "e3");
    e.send("0/slow,{}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.received(), [r#"4/slow,{"message":"nope"}"#]);
}
