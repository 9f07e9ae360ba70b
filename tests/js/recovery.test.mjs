// Connection state recovery on one instance (issue #17 items 1, 2 and 7), with the stock
// socket.io-client and raw WebSockets: pid in the CONNECT reply, offsets on events, recovery after
// a transport drop (polling and WebSocket, closed or killed), missed packets in order exactly once,
// rooms restored, expiry after the window, every bad-input case, and RECOVERY=false unchanged.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { clientPool, member, say } from "./lib/clients.mjs";
import { startServer, sleep, once, waitFor, fresh } from "./lib/server.mjs";
import { terminateAll, rawConnect, drain } from "./lib/raw.mjs";

const PID = /^[A-Za-z0-9_-]{20}$/;

let server;
const pool = clientPool(() => server.url);
const { connected, disconnectAll } = pool;

before(async () => {
  server = await startServer();
});

after(async () => {
  disconnectAll();
  terminateAll();
  await server?.stop();
});

/** A client that had a session in `room`, then lost its transport: its pid and offset. */
async function victim(url, room) {
  const v = await member(pool, room);
  await say(v, room, "seen");
  await waitFor(() => v.texts.includes("seen"), 4000, "victim got its message");
  const session = { sid: v.id, pid: v._pid, offset: v._lastOffset };
  assert.match(session.pid, PID);
  assert.equal(typeof session.offset, "string");
  v.io.engine.close();
  return session;
}

describe("the protocol", () => {
  test("the CONNECT reply carries sid and pid; events carry their offset as last argument", async () => {
    const { raw, sid, pid, reply } = await rawConnect(server.url);
    assert.deepEqual(Object.keys(reply), ["sid", "pid"]);
    assert.match(pid, PID);
    assert.notEqual(pid, sid);
    // The private `welcome` goes through the adapter too and gets an offset.
    const welcome = JSON.parse((await raw.next()).slice(2));
    assert.equal(welcome[0], "welcome");
    assert.equal(welcome[1].socketId, sid);
    assert.equal(typeof welcome[2], "string");
    // An event with an ack id gets none: the echo ack is the arguments unchanged.
    raw.send('421["echo","x"]');
    assert.equal(await raw.next(), '431["x"]');
    await raw.close();
  });

  test("a pid is never logged", async () => {
    const { raw, pid } = await rawConnect(server.url);
    await raw.close();
    await sleep(200);
    assert.ok(!server.logs().includes(pid));
  });
});

for (const transports of [["polling"], ["websocket"]]) {
  describe(`recovery after a transport drop (${transports})`, () => {
    test("same id, recovered, rooms kept, missed messages once and in order before new ones", async () => {
      const room = fresh("r");
      const a = await member(pool, room, { transports });
      const b = await member(pool, room);
      await say(b, room, "m0");
      await waitFor(() => a.texts.includes("m0"), 4000, "a got m0");
      const id = a.id;
      assert.equal(a.recovered, false);
      const dropped = once(a, "disconnect"); // emitted within close()
      a.io.engine.close();
      await dropped;
      for (let i = 1; i <= 5; i++) await say(b, room, `m${i}`);
      a.connect();
      await once(a, "connect");
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      await say(b, room, "m6"); // the room was restored: no rejoin
      await waitFor(() => a.texts.includes("m6"), 4000, () => `a got ${a.texts}`);
      await sleep(100);
      assert.deepEqual(a.texts, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    });
  });
}

describe("bad networks", () => {
  test("a killed TCP connection (WebSocket) recovers by itself with reconnection on", async () => {
    const room = fresh("r");
    const a = await member(pool, room, { transports: ["websocket"], reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300 });
    const b = await member(pool, room);
    const id = a.id;
    const dropped = once(a, "disconnect");
    a.io.engine.transport.ws._socket.destroy();
    await dropped;
    await say(b, room, "during");
    await once(a, "connect", 10000);
    assert.equal(a.recovered, true);
    assert.equal(a.id, id);
    await say(b, room, "after");
    await waitFor(() => a.texts.includes("after"), 4000, () => `a got ${a.texts}`);
    assert.deepEqual(a.texts, ["during", "after"]);
  });

  test("a client back before its old socket was noticed dead: the old one is closed, one member", async () => {
    const room = fresh("r");
    const a = await member(pool, room, { transports: ["websocket"] });
    const b = await member(pool, room);
    await say(b, room, "m0");
    await waitFor(() => a.texts.length === 1, 4000, "a got m0");
    // The same session resumed on a second connection while the first is still open.
    const { raw, sid, before } = await rawConnect(server.url, { pid: a._pid, offset: a._lastOffset });
    assert.equal(sid, a.id);
    assert.deepEqual(before, []);
    await once(a, "disconnect", 4000); // its connection was closed by the server
    await say(b, room, "m1");
    const got = (await drain(raw)).filter((m) => m.includes('"m1"'));
    assert.equal(got.length, 1, "the resumed socket gets m1 once");
    assert.deepEqual(a.texts, ["m0"]);
    await raw.close();
  });
});

describe("bad input gives a fresh session, recovered=false, never someone else's rooms", () => {
  async function freshSession(auth) {
    const c = await rawConnect(server.url, auth);
    assert.match(c.pid, PID);
    assert.deepEqual(c.before, [], "nothing replayed");
    return c;
  }

  async function assertNotInRoom(c, room) {
    const sender = await connected("/");
    await sender.timeout(4000).emitWithAck("message", { roomId: room, message: "private" });
    const got = await drain(c.raw);
    assert.ok(!got.some((m) => m.includes('"private"')), got.join("\n"));
    sender.disconnect();
    await c.raw.close();
  }

  const cases = {
    "an unknown pid": (v) => ({ pid: "AAAAAAAAAAAAAAAAAAAA", offset: v.offset }),
    "a malformed pid": (v) => ({ pid: `${v.pid}/../${"x".repeat(5000)}`, offset: v.offset }),
    "a non-string pid": (v) => ({ pid: { $ne: null }, offset: v.offset }),
    "a non-string offset": (v) => ({ pid: v.pid, offset: Number(v.offset) }),
    "an offset that is not an offset": (v) => ({ pid: v.pid, offset: "abc" }),
    "an offset never issued": (v) => ({ pid: v.pid, offset: "99999999999" }),
    "a pid without offset": (v) => ({ pid: v.pid }),
  };
  for (const [name, auth] of Object.entries(cases)) {
    test(name, async () => {
      const room = fresh("r");
      const v = await victim(server.url, room);
      await sleep(100);
      const c = await freshSession(auth(v));
      assert.notEqual(c.sid, v.sid);
      await assertNotInRoom(c, room);
    });
  }

  test("an already-used pid (burnt by a failed try, or restored then left)", async () => {
    const room = fresh("r");
    const v = await victim(server.url, room);
    await sleep(100);
    const failed = await freshSession({ pid: v.pid, offset: "abc" });
    const retry = await freshSession({ pid: v.pid, offset: v.offset });
    assert.notEqual(retry.sid, v.sid, "single use");
    await failed.raw.close();
    await assertNotInRoom(retry, room);

    const w = await victim(server.url, room);
    await sleep(100);
    const ok = await rawConnect(server.url, { pid: w.pid, offset: w.offset });
    assert.equal(ok.sid, w.sid);
    ok.raw.send("41"); // leaves the namespace: not recoverable
    await sleep(100);
    await ok.raw.close();
    const again = await freshSession({ pid: w.pid, offset: w.offset });
    assert.notEqual(again.sid, w.sid);
    await assertNotInRoom(again, room);
  });

  test("an expired session (RECOVERY_MAX_DISCONNECTION_MS=500)", async () => {
    const small = await startServer({ env: { RECOVERY_MAX_DISCONNECTION_MS: "500" } });
    const pool = clientPool(() => small.url);
    try {
      const a = await pool.connected("/", { transports: ["websocket"] });
      await a.timeout(4000).emitWithAck("join", fresh("r"));
      const id = a.id;
      a.io.engine.close();
      await sleep(1200);
      a.connect();
      await once(a, "connect");
      assert.equal(a.recovered, false);
      assert.notEqual(a.id, id);
    } finally {
      pool.disconnectAll();
      await small.stop();
    }
  });

  test("an offset already swept from the log (RECOVERY_LOG_BYTES=4000)", async () => {
    const small = await startServer({ env: { RECOVERY_LOG_BYTES: "4000" } });
    const pool = clientPool(() => small.url);
    try {
      const room = fresh("r");
      const a = await pool.connected("/", { transports: ["websocket"] });
      await a.timeout(4000).emitWithAck("join", room);
      const id = a.id;
      const dropped = once(a, "disconnect"); // emitted within close()
      a.io.engine.close();
      await dropped;
      // 100 messages of ~300 bytes push the client's offset out of a 4000-byte log.
      const b = await pool.connected("/");
      for (let i = 0; i < 100; i++) {
        await b.timeout(4000).emitWithAck("message", { roomId: room, message: "y".repeat(200) });
      }
      a.connect();
      await once(a, "connect");
      assert.equal(a.recovered, false);
      assert.notEqual(a.id, id);
    } finally {
      pool.disconnectAll();
      await small.stop();
    }
  });

  test("a pid from another namespace", async () => {
    const suite = await startServer({ args: ["client-suite"] });
    try {
      const pool = clientPool(() => suite.url);
      const foo = await pool.connected("/foo");
      await foo.timeout(4000).emitWithAck("getId"); // an ack: no offset
      const main = await pool.connected("/");
      const seen = once(main, "hi");
      main.emit("hi");
      await seen;
      const offset = main._lastOffset;
      assert.equal(typeof offset, "string");
      const pid = foo._pid;
      assert.match(pid, PID);
      foo.io.engine.close(); // its session is kept, in /foo only
      await sleep(100);
      const c = await rawConnect(suite.url, { pid, offset });
      assert.notEqual(c.sid, foo.id);
      assert.deepEqual(c.before, []);
      await c.raw.close();
      pool.disconnectAll();
    } finally {
      await suite.stop();
    }
  });
});

describe("RECOVERY=false", () => {
  test("the CONNECT reply has no pid and events carry no offset", async () => {
    const off = await startServer({ env: { RECOVERY: "false" } });
    try {
      const { raw, sid, reply } = await rawConnect(off.url);
      assert.deepEqual(Object.keys(reply), ["sid"]);
      const welcome = JSON.parse((await raw.next()).slice(2));
      assert.deepEqual(welcome, ["welcome", { instanceId: welcome[1].instanceId, socketId: sid }]);
      // A stale pid is ignored.
      const again = await rawConnect(off.url, { pid: "AAAAAAAAAAAAAAAAAAAA", offset: "1" });
      assert.deepEqual(Object.keys(again.reply), ["sid"]);
      await raw.close();
      await again.raw.close();
    } finally {
      await off.stop();
    }
  });

  test("a bad RECOVERY value is refused with the variable named", async () => {
    await assert.rejects(startServer({ env: { RECOVERY: "maybe" } }), /RECOVERY/);
  });
});
