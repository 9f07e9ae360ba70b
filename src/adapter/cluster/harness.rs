//! A multi-server test harness: three [`Server`]s on the in-memory pub/sub bus, no network
//! sockets and no Redis. Clients attach through the server's Engine.IO handler with a bare
//! outbox (the sans-IO path a transport would drive), send Socket.IO packets as text and read
//! the frames the server queued. Each scenario runs for the classic and the sharded adapter.

use crate::adapter::pubsub::memory::MemoryBus;
use crate::adapter::redis::{AdapterKind, PubSubAdapterFactory};
use crate::engineio::{Data, Frame, Str};
use crate::server::{Server, ServerConfig};
use crate::transport::outbox::{Outbox, OutboxLimits};
use crate::transport::{ConnHandler, EngineConn, EngineHandler, RequestInfo};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

/// How long anything may take to arrive (generous: the machine may be loaded).
const DEADLINE: Duration = Duration::from_secs(10);

/// One client attached to one server without a transport.
struct Client {
    outbox: Arc<Outbox>,
    handler: Box<dyn ConnHandler>,
    /// The Socket.IO socket id of its `/` socket.
    id: String,
    /// Frames read but not yet matched.
    seen: Vec<String>,
}

impl Client {
    /// Opens a session on `server` and connects to `/`.
    async fn connect(server: &Server) -> Client {
        let outbox = Arc::new(Outbox::with_limits(OutboxLimits::from_soft(1 << 20)));
        let conn = EngineConn::new(
            Arc::from(crate::ids::token()),
            outbox.clone(),
            Arc::new(AtomicU8::new(1)),
        );
        let request = RequestInfo {
            headers: Arc::default(),
            query: "EIO=4&transport=websocket".into(),
            url: "/socket.io/?EIO=4&transport=websocket".into(),
            remote: "127.0.0.1:9".parse().expect("address"),
            client: "127.0.0.1".parse().expect("address"),
            secure: false,
        };
        let handler = server.on_open(conn, &request, Instant::now());
        let mut c = Client {
            outbox,
            handler,
            id: String::new(),
            seen: Vec::new(),
        };
        c.send("0");
        let reply = c.expect(|f| f.starts_with("40")).await;
        let v: Value = serde_json::from_str(&reply[2..]).expect("connect reply");
        c.id = v["sid"].as_str().expect("sid").to_owned();
        c
    }

    fn send(&mut self, packet: &str) {
        self.handler.on_message(Data::Text(Str::from(packet)), Instant::now());
    }

    fn read(&mut self) {
        let mut frames = Vec::new();
        self.outbox
            .drain(&mut Context::from_waker(Waker::noop()), &mut frames, usize::MAX);
        for f in frames {
            if let Frame::Text(t) = f {
                self.seen.push(t.as_str().to_owned());
            }
        }
    }

    /// Waits for (and takes) the first frame matching `pred`.
    async fn expect(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            self.read();
            if let Some(i) = self.seen.iter().position(|f| pred(f)) {
                return self.seen.remove(i);
            }
            assert!(Instant::now() < until, "no matching frame; got {:?}", self.seen);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Takes every frame matching `pred` that arrived so far.
    fn take(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.read();
        let (hit, rest) = std::mem::take(&mut self.seen).into_iter().partition(|f| pred(f));
        self.seen = rest;
        hit
    }
}

/// Waits until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < until, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three servers on one in-memory bus.
fn cluster(kind: AdapterKind) -> (MemoryBus, Vec<Server>) {
    let bus = MemoryBus::default();
    let servers = (0..3)
        .map(|_| {
            let adapters = PubSubAdapterFactory::memory(&bus, kind, "socket.io", Duration::from_secs(5));
            Server::with_adapter(ServerConfig::default(), Arc::new(adapters))
        })
        .collect();
    (bus, servers)
}

/// Whether `frame` is the event `name` (a Socket.IO EVENT, with or without an ack id).
fn is_event(frame: &str, name: &str) -> bool {
    let body = frame.strip_prefix("42").unwrap_or("");
    let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
    body.starts_with(&format!("[\"{name}\""))
}

async fn scenarios(kind: AdapterKind) {
    let (bus, s) = cluster(kind);
    // a (server 0) and c (server 2) in r1; b (server 1) and d (server 2) in no room.
    let mut a = Client::connect(&s[0]).await;
    let mut b = Client::connect(&s[1]).await;
    let mut c = Client::connect(&s[2]).await;
    let mut d = Client::connect(&s[2]).await;
    let nsp = |i: usize| s[i].sockets();
    nsp(0).socket(&a.id).expect("a").join("r1").expect("join");
    nsp(2).socket(&c.id).expect("c").join("r1").expect("join");

    // Broadcast to all: every client of every server, once.
    nsp(0).emit("all", 1).expect("emit");
    for cl in [&mut a, &mut b, &mut c, &mut d] {
        assert_eq!(cl.expect(|f| is_event(f, "all")).await, r#"42["all",1]"#);
    }

    // Broadcast to a room from a server with no member in it.
    nsp(1).to("r1").emit("room", 2).expect("emit");
    a.expect(|f| is_event(f, "room")).await;
    c.expect(|f| is_event(f, "room")).await;

    // Except: everyone outside r1.
    nsp(0).except("r1").emit("ex", 3).expect("emit");
    b.expect(|f| is_event(f, "ex")).await;
    d.expect(|f| is_event(f, "ex")).await;

    // fetch_sockets sees the sockets of every server, by room.
    let ids = |v: Vec<crate::adapter::SocketInfo>| v.into_iter().map(|s| s.id).collect::<BTreeSet<_>>();
    let in_r1 = ids(nsp(1).to("r1").fetch_sockets().await);
    assert_eq!(in_r1, BTreeSet::from([a.id.clone(), c.id.clone()]));
    let all = ids(nsp(0).broadcast().fetch_sockets().await);
    assert_eq!(all.len(), 4, "{all:?}");
    let remote = nsp(2).to(&b.id).fetch_sockets().await;
    assert_eq!(remote.len(), 1);
    assert!(remote[0].rooms.contains(&b.id), "{remote:?}");

    // socketsJoin / socketsLeave reach the other servers' sockets.
    nsp(1).to("r1").sockets_join(&["r2"]);
    let c_sock = nsp(2).socket(&c.id).expect("c");
    let a_sock = nsp(0).socket(&a.id).expect("a");
    eventually("c joined r2", || c_sock.rooms().contains(&"r2".to_owned())).await;
    eventually("a joined r2", || a_sock.rooms().contains(&"r2".to_owned())).await;
    // A room joined from another server is subscribed just after the join (the sharded
    // adapter's room channel, as in Node): wait for it before broadcasting there.
    let r2_subscribed = || kind == AdapterKind::Classic || bus.subscribers("socket.io#/#r2#", true) == 2;
    eventually("r2 subscribed on servers 0 and 2", r2_subscribed).await;
    nsp(1).to("r2").emit("r2", 4).expect("emit");
    a.expect(|f| is_event(f, "r2")).await;
    c.expect(|f| is_event(f, "r2")).await;
    nsp(0).to("r2").sockets_leave(&["r2"]);
    eventually("c left r2", || !c_sock.rooms().contains(&"r2".to_owned())).await;
    eventually("a left r2", || !a_sock.rooms().contains(&"r2".to_owned())).await;

    // serverSideEmit reaches the other servers' listeners, not the sender's.
    let heard = Arc::new(Mutex::new(Vec::new()));
    for (i, server) in s.iter().enumerate() {
        let heard = heard.clone();
        server.sockets().on_server_event("hi", move |args| {
            heard.lock().push((i, args.to_vec()));
        });
    }
    nsp(0).server_side_emit(&[json!("hi"), json!(5)]);
    let heard_by = || {
        let mut h: Vec<usize> = heard.lock().iter().map(|x| x.0).collect();
        h.sort_unstable();
        h
    };
    eventually("servers 1 and 2 heard", || heard_by() == [1, 2]).await;
    assert_eq!(heard.lock()[0].1, [json!(5)]);

    // Broadcast with acks: counts from the other servers, then every client's ack.
    let op = nsp(1).broadcast().timeout(DEADLINE);
    let acks = tokio::spawn(op.emit_with_ack("q", 6));
    for (n, cl) in [&mut a, &mut b, &mut c, &mut d].into_iter().enumerate() {
        let f = cl.expect(|f| is_event(f, "q")).await;
        let ack_id: String = f[2..].chars().take_while(char::is_ascii_digit).collect();
        assert!(!ack_id.is_empty(), "an ack id in {f}");
        cl.send(&format!("3{ack_id}[{n}]"));
    }
    let mut got = acks.await.expect("task").expect("every ack");
    got.sort_by_key(|v| v.as_u64());
    assert_eq!(got, [json!(0), json!(1), json!(2), json!(3)]);

    // disconnectSockets: the members of r1 on every server are disconnected.
    nsp(1).to("r1").disconnect_sockets(false);
    a.expect(|f| f == "41").await;
    c.expect(|f| f == "41").await;
    eventually("a and c gone", || {
        nsp(0).socket(&a.id).is_none() && nsp(2).socket(&c.id).is_none()
    })
    .await;
    assert!(nsp(2).socket(&d.id).is_some() && nsp(1).socket(&b.id).is_some());

    // Nothing arrived twice or where it should not have.
    for cl in [&mut a, &mut b, &mut c, &mut d] {
        let dupes = cl.take(|f| f.starts_with("42"));
        assert!(dupes.is_empty(), "{} got extra events {dupes:?}", cl.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_adapter_on_three_servers() {
    scenarios(AdapterKind::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_adapter_on_three_servers() {
    scenarios(AdapterKind::Sharded).await;
}
