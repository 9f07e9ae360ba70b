// The Redis Streams adapter (REDIS_ADAPTER=streams, issue #17 items 3-7) on a real redis-server with
// stock clients and raw WebSockets: sessions written through survive a SIGKILLed instance and are
// restored by another one (same id, rooms, missed messages once and in order); an old socket still
// alive elsewhere is disconnected through the cluster; every bad input gives a fresh session; a
// failed XADD is never acknowledged; and interop with Node's socket.io 4.8 +
// @socket.io/redis-streams-adapter 0.3.1 on one Redis (broadcasts both ways, recovery both ways).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { clientPool, member, say } from "./lib/clients.mjs";
import { startServer, startWebhook, freePort, sleep, once, waitFor, fresh } from "./lib/server.mjs";
import { rawConnect, drain, terminateAll } from "./lib/raw.mjs";
import { startRedis, startRedisCluster, redisCli } from "./lib/redis.mjs";
import { post } from "./lib/webhook.mjs";
import { nodeInstance } from "./lib/node-cluster.mjs";

const PID = /^[A-Za-z0-9_-]{20}$/;
const STREAM = "socket.io";

let redis;
let b; // the instance that stays up
const cleanups = [];

/** One of our instances on the shared Redis, with the streams adapter. */
async function instance(env = {}) {
  const s = await startServer({ env: { REDIS_URL: redis.url, REDIS_ADAPTER: "streams", ...env } });
  cleanups.push(() => s.stop("SIGKILL"));
  return s;
}

async function kill9(s) {
  const exited = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGKILL");
  await exited;
}

const cli = (...args) => redisCli(["-p", String(redis.port), ...args]);

before(async () => {
  redis = await startRedis();
  b = await instance({ INSTANCE_ID: "b" });
});

after(async () => {
  terminateAll();
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await redis?.stop();
});

/** The texts of the chat `message` events among raw Socket.IO frames. */
const texts = (frames) =>
  frames
    .filter((m) => m.startsWith('42["message"'))
    .map((m) => JSON.parse(m.slice(2))[1].text);

/** A member of `room` on `url` that saw one message; its session, and the client. */
async function sessionOn(url, room, sender) {
  const pool = clientPool(() => url);
  const v = await member(pool, room, { transports: ["websocket"] });
  await say(sender, room, "seen");
  await waitFor(() => v.texts.includes("seen"), 4000, "the victim got its message");
  const session = { sid: v.id, pid: v._pid, offset: v._lastOffset };
  assert.match(session.pid, PID);
  assert.match(session.offset, /^\d+-\d+$/, "offsets are stream ids");
  return { v, pool, session };
}

describe("sessions survive a killed instance", () => {
  let sender;
  const pool = clientPool(() => b.url);
  before(async () => {
    sender = await pool.connected("/");
  });
  after(() => pool.disconnectAll());

  test("a client of a SIGKILLed instance recovers on another: same id and rooms, missed messages once and in order", async () => {
    const a = await instance({ INSTANCE_ID: "a" });
    const room = fresh("r");
    const { session } = await sessionOn(a.url, room, sender);
    await kill9(a);
    for (const t of ["m1", "m2", "m3"]) await say(sender, room, t);
    await sleep(200);
    const c = await rawConnect(b.url, { pid: session.pid, offset: session.offset });
    assert.equal(c.sid, session.sid, "same socket id");
    assert.equal(c.pid, session.pid);
    // Replayed before the CONNECT reply, or (the last ones, if this instance's reader had not read
    // them yet) delivered right after it: once each, in order.
    await say(sender, room, "m4");
    const got = [...texts(c.before), ...texts(await drain(c.raw, 500))];
    assert.deepEqual(got, ["m1", "m2", "m3", "m4"], "missed messages once, in order; rooms restored");
    assert.ok(texts(c.before).length >= 1, "the replay came before the CONNECT reply");
    await c.raw.close();
  });

  test("while the old socket still looks alive on its instance, it is disconnected there: one member", async () => {
    const a = await instance({ INSTANCE_ID: "a2" });
    const room = fresh("r");
    const { v, pool: poolA, session } = await sessionOn(a.url, room, sender);
    const gone = once(v, "disconnect", 8000);
    const c = await rawConnect(b.url, { pid: session.pid, offset: session.offset });
    assert.equal(c.sid, session.sid);
    await gone;
    await say(sender, room, "after");
    assert.deepEqual(texts(await drain(c.raw, 500)), ["after"]);
    assert.ok(!v.texts.includes("after"), "the old socket is out of the room");
    await c.raw.close();
    poolA.disconnectAll();
    await a.stop();
  });

  test("a join is acknowledged once the session store has it (an instance killed right after loses nothing)", async () => {
    const a = await instance({ INSTANCE_ID: "a4" });
    const pool = clientPool(() => a.url);
    try {
      const s = await pool.connected("/", { transports: ["websocket"] });
      const key = `sio:session:${s._pid}`;
      await waitFor(async () => Number(await cli("PTTL", key)) > 0, 4000, "the session written on connect");
      const room = fresh("r");
      // Writes wait 400 ms in Redis (reads go on): the join's session write is held up.
      assert.equal(await cli("CLIENT", "PAUSE", "400", "WRITE"), "OK");
      const t0 = Date.now();
      const ack = await s.timeout(4000).emitWithAck("join", room);
      const waited = Date.now() - t0;
      assert.equal(ack.ok, true, JSON.stringify(ack));
      // Node's value: base64 of a msgpack map whose rooms hold the name as raw bytes.
      const stored = async () => Buffer.from(await cli("GET", key), "base64").toString("latin1");
      assert.ok((await stored()).includes(room), `the acknowledged join is in the stored session (ack after ${waited} ms)`);
      assert.equal(await cli("CLIENT", "PAUSE", "400", "WRITE"), "OK");
      const left = await s.timeout(4000).emitWithAck("leave", room);
      assert.equal(left.ok, true);
      assert.ok(!(await stored()).includes(room), "the acknowledged leave too");
    } finally {
      pool.disconnectAll();
      await a.stop();
    }
  });

  test("the session key holds a TTL of the window, refreshed while the socket lives", async () => {
    const a = await instance({ INSTANCE_ID: "a3", RECOVERY_MAX_DISCONNECTION_MS: "1500" });
    const pool = clientPool(() => a.url);
    try {
      const s = await pool.connected("/", { transports: ["websocket"] });
      const key = `sio:session:${s._pid}`;
      await waitFor(async () => Number(await cli("PTTL", key)) > 0, 4000, "the session written on connect");
      assert.ok(Number(await cli("PTTL", key)) <= 1500);
      await sleep(3500); // more than twice the window
      assert.ok(Number(await cli("PTTL", key)) > 0, "still there while the socket lives");
      s.disconnect(); // a client disconnect is not recoverable: the session goes
      await waitFor(async () => Number(await cli("EXISTS", key)) === 0, 4000, "session deleted after a client disconnect");
    } finally {
      pool.disconnectAll();
      await a.stop();
    }
  });
});

describe("bad input against the streams adapter gives a fresh session", () => {
  let sender;
  let a;
  const pool = clientPool(() => b.url);
  before(async () => {
    sender = await pool.connected("/");
    a = await instance({ INSTANCE_ID: "bad" });
  });
  after(() => pool.disconnectAll());

  async function fresh_(auth) {
    const c = await rawConnect(b.url, auth);
    assert.match(c.pid, PID);
    assert.deepEqual(c.before, [], "nothing replayed");
    return c;
  }

  async function assertNotInRoom(c, room) {
    await say(sender, room, "private");
    const got = await drain(c.raw);
    assert.ok(!texts(got).includes("private"), got.join("\n"));
    await c.raw.close();
  }

  /** A session on `a` whose transport was dropped (its key kept for the window). */
  async function victim(room) {
    const { v, pool: p, session } = await sessionOn(a.url, room, sender);
    v.io.engine.close();
    await sleep(200);
    p.disconnectAll();
    return session;
  }

  const cases = {
    "an unknown pid": (v) => ({ pid: "AAAAAAAAAAAAAAAAAAAA", offset: v.offset }),
    "a malformed pid": (v) => ({ pid: `${v.pid}\r\nFLUSHALL ${"x".repeat(5000)}`, offset: v.offset }),
    "an offset that is not a stream id": (v) => ({ pid: v.pid, offset: "abc" }),
    "a bare number offset (the in-memory adapter's kind)": (v) => ({ pid: v.pid, offset: "12" }),
    "an offset with a range trick": (v) => ({ pid: v.pid, offset: "-" }),
  };
  for (const [name, auth] of Object.entries(cases)) {
    test(name, async () => {
      const room = fresh("r");
      const v = await victim(room);
      const c = await fresh_(auth(v));
      assert.notEqual(c.sid, v.sid);
      await assertNotInRoom(c, room);
    });
  }

  test("an offset already trimmed from the stream", async () => {
    const room = fresh("r");
    const v = await victim(room);
    assert.equal(Number(await cli("XTRIM", STREAM, "MAXLEN", "0")) >= 1, true);
    const c = await fresh_({ pid: v.pid, offset: v.offset });
    assert.notEqual(c.sid, v.sid);
    await assertNotInRoom(c, room);
  });

  test("an already-used pid (restored once, then left)", async () => {
    const room = fresh("r");
    const v = await victim(room);
    const ok = await rawConnect(b.url, { pid: v.pid, offset: v.offset });
    assert.equal(ok.sid, v.sid);
    ok.raw.send("41"); // leaves the namespace: not recoverable, its session is deleted
    await sleep(300);
    await ok.raw.close();
    const again = await fresh_({ pid: v.pid, offset: v.offset });
    assert.notEqual(again.sid, v.sid, "single use");
    await assertNotInRoom(again, room);
  });

  test("a pid whose session belongs to another namespace (kept for it)", async () => {
    const room = fresh("r");
    const v = await victim(room);
    // Our session value, re-scoped to "/other": base64 msgpack {sid, pid, rooms, data, nsp, srv}.
    const str = (s) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const value = Buffer.concat([
      Buffer.from([0x86]),
      str("sid"), str(v.sid),
      str("pid"), str(v.pid),
      str("rooms"), Buffer.from([0x92]), str(v.sid), str(room),
      str("data"), Buffer.from([0xc0]),
      str("nsp"), str("/other"),
      str("srv"), str("x"),
    ]).toString("base64");
    const key = `sio:session:${v.pid}`;
    assert.equal(await cli("SET", key, value, "PX", "60000"), "OK");
    const c = await fresh_({ pid: v.pid, offset: v.offset });
    assert.notEqual(c.sid, v.sid);
    assert.equal(await cli("GET", key), value, "the session stays for its own namespace");
    await assertNotInRoom(c, room);
  });

  test("a Node session (no nsp) is not restored in a namespace with middlewares (admin), only in one without", async () => {
    const adm = await instance({ INSTANCE_ID: "adm", ADMIN_AUTH: "off" });
    const room = fresh("r");
    const v = await victim(room);
    // Node's session value: base64 msgpack {sid, pid, rooms, data}, no nsp.
    const str = (s) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const value = Buffer.concat([
      Buffer.from([0x84]),
      str("sid"), str(v.sid),
      str("pid"), str(v.pid),
      str("rooms"), Buffer.from([0x92]), str(v.sid), str(room),
      str("data"), Buffer.from([0xc0]),
    ]).toString("base64");
    const key = `sio:session:${v.pid}`;
    assert.equal(await cli("SET", key, value, "PX", "60000"), "OK");
    const c = await rawConnect(adm.url, { pid: v.pid, offset: v.offset }, "/admin");
    assert.notEqual(c.sid, v.sid, "a restore would skip the admin middleware");
    assert.equal(await cli("GET", key), value, "the session stays for a namespace without middlewares");
    await c.raw.close();
    const ok = await rawConnect(adm.url, { pid: v.pid, offset: v.offset });
    assert.equal(ok.sid, v.sid, "restored in / (no middlewares)");
    await ok.raw.close();
    await adm.stop();
  });

  test("an expired session (RECOVERY_MAX_DISCONNECTION_MS=800)", async () => {
    const short = await instance({ INSTANCE_ID: "short", RECOVERY_MAX_DISCONNECTION_MS: "800" });
    const room = fresh("r");
    const { v, pool: p, session } = await sessionOn(short.url, room, sender);
    await kill9(short);
    p.disconnectAll();
    await sleep(1500);
    const c = await fresh_({ pid: session.pid, offset: session.offset });
    assert.notEqual(c.sid, v.sid);
    await assertNotInRoom(c, room);
  });
});

describe("a failed XADD is never acknowledged", () => {
  test("the chat ack says ok:false and the webhook answers 503 'not delivered'; both work again once Redis does", async () => {
    const a = await instance({ INSTANCE_ID: "x" });
    const webhook = await startWebhook({ env: { SOCKETIO_URL: a.url } });
    cleanups.push(() => webhook.stop());
    const pool = clientPool(() => a.url);
    try {
      const room = fresh("r");
      const m = await member(pool, room);
      await waitFor(async () => (await post(webhook.url, "/webhook", { roomId: room, message: "ok1" })).status === 200, 10_000, "webhook ready");
      // The stream key becomes a string: every XADD fails with WRONGTYPE.
      await cli("DEL", STREAM);
      await cli("SET", STREAM, "not a stream");
      const ack = await m.timeout(8000).emitWithAck("message", { roomId: room, message: "lost" });
      assert.equal(ack.ok, false, JSON.stringify(ack));
      assert.equal(ack.error.code, "not_delivered");
      const r = await post(webhook.url, "/webhook", { roomId: room, message: "lost2" });
      assert.equal(r.status, 503, r.text);
      assert.match(r.text, /not delivered/);
      await cli("DEL", STREAM);
      await waitFor(async () => (await post(webhook.url, "/webhook", { roomId: room, message: "ok2" })).status === 200, 15_000, "delivering again");
      await waitFor(() => m.texts.includes("ok2"), 8000, () => `the member got ${m.texts}`);
      assert.ok(!m.texts.includes("lost") && !m.texts.includes("lost2"), "an unacknowledged message is not delivered");
    } finally {
      pool.disconnectAll();
      await webhook.stop();
      await a.stop();
    }
  });
});

describe("RECOVERY=false with the streams adapter", () => {
  test("no pid, no offsets, and broadcasts still cross instances exactly once", async () => {
    const env = { RECOVERY: "false" };
    const x = await instance({ ...env, INSTANCE_ID: "nx" });
    const y = await instance({ ...env, INSTANCE_ID: "ny" });
    const px = clientPool(() => x.url);
    const py = clientPool(() => y.url);
    try {
      const room = fresh("r");
      const { raw, reply } = await rawConnect(x.url);
      assert.deepEqual(Object.keys(reply), ["sid"]);
      raw.send(`420${JSON.stringify(["join", room])}`);
      const sender = await member(py, room);
      const local = await member(px, room);
      await say(sender, room, "one");
      await waitFor(() => local.texts.includes("one") && sender.texts.includes("one"), 4000, "delivered on both");
      const frames = (await drain(raw, 500)).filter((m) => m.startsWith('42["message"'));
      assert.equal(frames.length, 1, frames.join("\n"));
      assert.equal(JSON.parse(frames[0].slice(2)).length, 2, "no offset argument");
      await sleep(300);
      assert.deepEqual(local.texts, ["one"]);
      assert.deepEqual(sender.texts, ["one"]);
      await raw.close();
    } finally {
      px.disconnectAll();
      py.disconnectAll();
      await x.stop();
      await y.stop();
    }
  });
});

describe("a Redis restart (data lost)", () => {
  test("the readers resume, broadcasts flow again and live sessions are written back within a third of the window", async () => {
    const own = await startRedis();
    const env = { REDIS_URL: own.url, REDIS_ADAPTER: "streams", RECOVERY_MAX_DISCONNECTION_MS: "3000" };
    const x = await startServer({ env: { ...env, INSTANCE_ID: "rx" } });
    const y = await startServer({ env: { ...env, INSTANCE_ID: "ry" } });
    const px = clientPool(() => x.url);
    const py = clientPool(() => y.url);
    try {
      const room = fresh("r");
      const m = await member(px, room, { transports: ["websocket"] });
      const sender = await member(py, room, { transports: ["websocket"] });
      await say(sender, room, "before");
      await waitFor(() => m.texts.includes("before"), 4000, "delivered before the restart");
      const key = `sio:session:${m._pid}`;
      await own.restart();
      assert.equal(await redisCli(["-p", String(own.port), "EXISTS", key]), "0", "the restart lost everything");
      // Acks may say not_delivered while the connections come back; then it flows again.
      await waitFor(async () => {
        const ack = await sender.timeout(4000).emitWithAck("message", { roomId: room, message: "after" }).catch(() => null);
        return ack?.ok === true;
      }, 20_000, "a message acknowledged after the restart");
      await waitFor(() => m.texts.includes("after"), 8000, () => `the member got ${m.texts}`);
      await waitFor(async () => Number(await redisCli(["-p", String(own.port), "PTTL", key])) > 0, 5000, "the live session written back");
    } finally {
      px.disconnectAll();
      py.disconnectAll();
      await x.stop();
      await y.stop();
      await own.stop();
    }
  });
});

describe("interop with Node's socket.io 4.8 + @socket.io/redis-streams-adapter 0.3.1", () => {
  /** A Node instance on the shared Redis; its URL. */
  async function node(id) {
    const port = await freePort();
    const child = await nodeInstance(redis.url, port, id);
    const stop = async (signal = "SIGKILL") => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
    };
    cleanups.push(() => stop());
    return { url: `http://127.0.0.1:${port}`, stop };
  }

  test("broadcasts both ways", async () => {
    const n = await node("n1");
    const pn = clientPool(() => n.url);
    const pb = clientPool(() => b.url);
    try {
      const room = fresh("r");
      const cn = await member(pn, room);
      const cb = await member(pb, room);
      await say(cb, room, "from rust");
      await say(cn, room, "from node");
      await waitFor(() => cn.texts.includes("from rust") && cb.texts.includes("from node"), 8000, () => `node got ${cn.texts}, ours got ${cb.texts}`);
      assert.deepEqual(cn.texts, ["from rust", "from node"]);
      assert.deepEqual(cb.texts, ["from rust", "from node"]);
    } finally {
      pn.disconnectAll();
      pb.disconnectAll();
      await n.stop();
    }
  });

  /** A client on `from` that saw a message in `room`, moved to `to` when `from` stops gracefully. */
  async function move(from, to, stopFrom, room) {
    const s = io(from.url, { forceNew: true, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 });
    s.texts = [];
    s.on("message", (m) => s.texts.push(m.text));
    await once(s, "connect", 8000);
    assert.equal((await s.timeout(4000).emitWithAck("join", room)).ok, true);
    const sender = io(to.url, { forceNew: true });
    await once(sender, "connect", 8000);
    await say(sender, room, "before");
    await waitFor(() => s.texts.includes("before"), 8000, "the client got a message (an offset)");
    const id = s.id;
    s.io.uri = to.url; // its reconnection goes to the other server
    await stopFrom("SIGTERM");
    await waitFor(() => s.connected && s.id !== undefined, 15_000, "reconnected");
    await say(sender, room, "after");
    await waitFor(() => s.texts.includes("after"), 8000, () => `the client got ${s.texts}`);
    const result = { recovered: s.recovered, sameId: s.id === id, texts: s.texts };
    s.disconnect();
    sender.disconnect();
    return result;
  }

  test("a client recovers from a Node instance onto ours (graceful stop)", async () => {
    const n = await node("n2");
    const r = await move(n, b, n.stop, fresh("r"));
    assert.deepEqual(r, { recovered: true, sameId: true, texts: ["before", "after"] });
  });

  test("a client recovers from ours onto a Node instance (graceful stop)", async () => {
    const n = await node("n3");
    const a = await instance({ INSTANCE_ID: "to-node" });
    const r = await move(a, n, (sig) => a.stop(sig), fresh("r"));
    assert.deepEqual(r, { recovered: true, sameId: true, texts: ["before", "after"] });
    await n.stop();
  });
});

describe("on a Redis Cluster (the stream is one key on one shard, as in Node)", () => {
  test("broadcasts between instances, and a client of a SIGKILLed instance recovers on another", async () => {
    const rc = await startRedisCluster();
    const env = { REDIS_MODE: "cluster", REDIS_NODES: rc.nodesJson, REDIS_ADAPTER: "streams" };
    const x = await startServer({ env: { ...env, INSTANCE_ID: "cx" } });
    const y = await startServer({ env: { ...env, INSTANCE_ID: "cy" } });
    const px = clientPool(() => x.url);
    const py = clientPool(() => y.url);
    try {
      const room = fresh("r");
      const sender = await member(py, room);
      const { session } = await sessionOn(x.url, room, sender);
      await waitFor(() => sender.texts.includes("seen"), 4000, "the sender got its own message");
      await kill9(x);
      await say(sender, room, "missed");
      const c = await rawConnect(y.url, { pid: session.pid, offset: session.offset });
      assert.equal(c.sid, session.sid);
      // The replay, or the reader right after the CONNECT reply: slack for a loaded 3-node cluster.
      // It failed twice in full runs (never alone, nor under a CPU hog): say what y saw if again.
      const got = [...texts(c.before), ...texts(await drain(c.raw, 5000))];
      const why = async () => `${(await (await fetch(`${y.url}/metrics`)).text()).split("\n").filter((l) => /stream|restore|recover/.test(l) && !l.startsWith("#")).join("\n")}\n${y.logs().slice(-4000)}`;
      assert.deepEqual(got, ["missed"], got.length === 1 && got[0] === "missed" ? "" : await why());
      await c.raw.close();
    } finally {
      px.disconnectAll();
      py.disconnectAll();
      await x.stop("SIGKILL");
      await y.stop();
      await rc.stop();
    }
  });
});
