// Several server processes sharing one Redis (ARCHITECTURE.md, "Redis adapter" and "Presence"):
// the testbed (examples/testbed.rs) and the chat app (sio-server) with the classic and sharded
// adapters, on standalone Redis and on a 3-master Redis Cluster, interop with Node's
// @socket.io/redis-adapter and @socket.io/redis-emitter, presence in /stats, and a Redis restart.
// Driven by the stock socket.io-client. Every describe starts and stops its own Redis and servers.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";
import { startServer, freePort, sleep, once, waitFor, fresh } from "./lib/server.mjs";
import { startRedis, startRedisCluster, redisCli } from "./lib/redis.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
/** How long to watch for deliveries that must not happen. */
const QUIET_MS = 300;



/**
 * A group of clients and server processes with one cleanup. `client()` connects a stock client
 * (websocket by default), records every event in `s.events`, and resolves once connected.
 */
function group() {
  const clients = [];
  const servers = [];
  return {
    clients,
    servers,
    async client(server, nsp = "/", opts = {}) {
      const s = io(`${server.url}${nsp}`, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
      clients.push(s);
      s.events = [];
      s.onAny((event, ...args) => s.events.push([event, ...args]));
      s.on("ping-ack", (_data, cb) => cb?.(s.label));
      await once(s, "connect", 5000);
      return s;
    },
    async server(opts) {
      const srv = await startServer(opts);
      servers.push(srv);
      return srv;
    },
    /** Starts one testbed per instance id, all with `env`. */
    testbeds(env, ids) {
      return Promise.all(ids.map((id) => this.server({ name: "testbed", env: { ...env, INSTANCE_ID: id } })));
    },
    async close() {
      for (const c of clients) c.disconnect();
      await Promise.all(servers.map((s) => s.stop()));
    },
    /** The last lines of every server's output, for failure messages. */
    logs(lines = 40) {
      return servers
        .map((s) => `--- server :${s.port}\n${s.logs().split("\n").slice(-lines).join("\n")}`)
        .join("\n");
    },
  };
}

/** The events named `event` that `s` recorded (their args). */
const got = (s, event) => s.events.filter(([e]) => e === event).map(([, ...args]) => args);

/** Waits until `s` recorded an `event` whose first arg deep-equals `data`. */
function received(s, event, data, ms = 3000) {
  return waitFor(
    () => got(s, event).some(([d]) => isDeepEqual(d, data)),
    ms,
    () => `${s.label ?? s.id} did not receive ${event} ${JSON.stringify(data)}; got ${JSON.stringify(s.events)}`,
  );
}

function isDeepEqual(a, b) {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Asserts that none of `sockets` records `event` (with first arg `data`, if given) for QUIET_MS. */
async function notReceived(sockets, event, data) {
  await sleep(QUIET_MS);
  for (const s of sockets) {
    const hits = got(s, event).filter(([d]) => data === undefined || isDeepEqual(d, data));
    assert.equal(hits.length, 0, `${s.label ?? s.id} must not receive ${event}: ${JSON.stringify(hits)}`);
  }
}

async function join(room, ...sockets) {
  for (const s of sockets) {
    const res = await s.timeout(3000).emitWithAck("join", room);
    assert.equal(res.ok, true, `join ${room}: ${JSON.stringify(res)}`);
  }
}

/** Waits until the testbed (via `s`) counts `n` servers in the namespace. */
async function serverCount(s, n, ms = 8000) {
  let last;
  await waitFor(async () => (last = await s.timeout(3000).emitWithAck("server-count")) === n, ms, () => `server-count is ${last}, expected ${n}`);
}

/** Waits until `PUBSUB NUMSUB socket.io-request#/#` on a standalone Redis shows `n` subscribers. */
async function requestSubscribers(redis, n, ms = 8000) {
  let last;
  await waitFor(async () => {
    last = await redisCli(["-p", String(redis.port), "pubsub", "numsub", "socket.io-request#/#"]);
    return last.split("\n")[1] === String(n);
  }, ms, () => `PUBSUB NUMSUB socket.io-request#/# answered ${JSON.stringify(last)}, expected ${n} (do the servers run the Redis adapter?)`);
}

/** Waits until the cluster counts `n` shard subscribers of `channel` (SHARDNUMSUB over all nodes). */
async function shardSubscribers(cluster, channel, n, ms = 5000) {
  let counts;
  await waitFor(async () => {
    counts = await Promise.all(
      cluster.ports.map(async (p) => Number((await redisCli(["-p", String(p), "pubsub", "shardnumsub", channel])).split("\n")[1]) || 0),
    );
    return counts.reduce((x, y) => x + y, 0) === n;
  }, ms, () => `SHARDNUMSUB ${channel} per node: ${JSON.stringify(counts)}, expected ${n} in all`);
}

/** SSUBSCRIBE + SUNSUBSCRIBE calls so far, summed over the cluster's nodes (INFO commandstats). */
async function shardCommandCalls(cluster) {
  let total = 0;
  for (const p of cluster.ports) {
    const stats = await redisCli(["-p", String(p), "info", "commandstats"]);
    for (const m of stats.matchAll(/^cmdstat_s(?:un)?subscribe:calls=(\d+)/gm)) total += Number(m[1]);
  }
  return total;
}

/** The shard channels matching `pattern` on every node of the cluster (PUBSUB SHARDCHANNELS). */
async function shardChannels(cluster, pattern) {
  const all = [];
  for (const p of cluster.ports) {
    const out = await redisCli(["-p", String(p), "pubsub", "shardchannels", pattern]);
    all.push(...out.split("\n").filter((l) => l.trim() !== ""));
  }
  return all;
}

async function getJson(url, ms = 7000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
  return { status: res.status, body: await res.json() };
}

const alive = (srv) => srv.child.exitCode === null && srv.child.signalCode === null;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Starts tests/js/fixtures/node-server.mjs (Node socket.io + @socket.io/redis-adapter). */
async function startNodeServer(redisUrl) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(here, "fixtures/node-server.mjs")], {
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`node fixture exited (${child.exitCode}): ${output}`);
    return output.includes("listening");
  }, 10000, () => `the node fixture did not print "listening": ${output}`);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    logs: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

// ---------------------------------------------------------------------------------------------

describe("testbed x2 on standalone Redis (classic adapter)", () => {
  const g = group();
  let redis, A, B;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url };
    [A, B] = await g.testbeds(env, ["tb-a", "tb-b"]);
    await requestSubscribers(redis, 2);
  });

  after(async () => {
    await g.close();
    await redis?.stop();
  });

  test("room broadcasts cross instances both ways; server-count is 2; fetch sees both", async () => {
    const room = fresh("r2");
    const a = await g.client(A);
    const b = await g.client(B);
    a.label = "a";
    b.label = "b";
    await join(room, a, b);
    assert.equal(await a.emitWithAck("server-count"), 2);
    assert.equal(await b.emitWithAck("server-count"), 2);

    assert.deepEqual(await a.emitWithAck("to-room", { room, event: "news", data: { from: "a" } }), { ok: true });
    await received(b, "news", { from: "a" });
    assert.deepEqual(await b.emitWithAck("to-room", { room, event: "news", data: { from: "b" } }), { ok: true });
    await received(a, "news", { from: "b" });
    // `socket.to(room)` excludes the sender, on every instance.
    await notReceived([a], "news", { from: "a" });
    await notReceived([b], "news", { from: "b" });

    assert.deepEqual(await a.emitWithAck("fetch", room), [a.id, b.id].sort());
    assert.deepEqual(await b.emitWithAck("fetch", room), [a.id, b.id].sort());
  });
});

describe("testbed x3 on standalone Redis (classic adapter)", () => {
  const g = group();
  let redis, emitterClient, emitter, A, B, C;
  /** a1 on A, b1 on B, c1 (polling) on C, all in `room`; b2, c2 not in it. */
  let a1, b1, b2, c1, c2;
  const room = fresh("r3");

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url };
    [A, B, C] = await g.testbeds(env, ["tb-a", "tb-b", "tb-c"]);
    await requestSubscribers(redis, 3);
    a1 = await g.client(A);
    b1 = await g.client(B);
    b2 = await g.client(B);
    c1 = await g.client(C, "/", { transports: ["polling"] });
    c2 = await g.client(C);
    Object.assign(a1, { label: "a1" });
    Object.assign(b1, { label: "b1" });
    Object.assign(b2, { label: "b2" });
    Object.assign(c1, { label: "c1" });
    Object.assign(c2, { label: "c2" });
    assert.equal(c1.io.engine.transport.name, "polling");
    await join(room, a1, b1, c1);
    emitterClient = createClient({ url: redis.url });
    await emitterClient.connect();
    emitter = new Emitter(emitterClient);
  });

  after(async () => {
    await emitterClient?.quit().catch(() => {});
    await g.close();
    await redis?.stop();
  });

  test("server-count is 3 on every instance", async () => {
    for (const s of [a1, b1, c1]) assert.equal(await s.timeout(3000).emitWithAck("server-count"), 3);
  });

  test("to-room from each instance reaches the members on the two others (polling client included)", async () => {
    for (const [sender, others] of [[a1, [b1, c1]], [b1, [a1, c1]], [c1, [a1, b1]]]) {
      const data = { from: sender.label, n: 3 };
      assert.deepEqual(await sender.emitWithAck("to-room", { room, event: "news", data }), { ok: true });
      for (const o of others) await received(o, "news", data);
    }
    await notReceived([b2, c2], "news");
    for (const s of [a1, b1, c1]) {
      assert.equal(got(s, "news").length, 2, `${s.label}: ${JSON.stringify(got(s, "news"))}`);
    }
  });

  test("except (a room and a socket id) is respected across instances", async () => {
    const excluded = fresh("ex");
    await join(excluded, b1);
    const data1 = { except: "room" };
    await a1.emitWithAck("to-room", { room, except: excluded, event: "except-test", data: data1 });
    await received(c1, "except-test", data1);
    await notReceived([b1, b2, c2, a1], "except-test", data1);

    const data2 = { except: "id" };
    await b1.emitWithAck("to-room", { room, except: c1.id, event: "except-test", data: data2 });
    await received(a1, "except-test", data2);
    await notReceived([c1, b1, b2, c2], "except-test", data2);
  });

  test("namespaces are respected: / broadcasts skip /dyn-1 sockets and vice versa", async () => {
    const db = await g.client(B, "/dyn-1");
    const dc = await g.client(C, "/dyn-1");
    db.label = "dyn-1@B";
    dc.label = "dyn-1@C";
    await received(db, "hello", "/dyn-1");
    await received(dc, "hello", "/dyn-1");

    // `broadcast` on / from A: everyone on / but the sender, on all instances; nobody on /dyn-1.
    assert.equal(await a1.emitWithAck("broadcast", { event: "nsp-check", data: "root" }), true);
    for (const s of [b1, b2, c1, c2]) await received(s, "nsp-check", "root");
    await notReceived([db, dc, a1], "nsp-check");

    // An emitter broadcast on /dyn-1 reaches the /dyn-1 sockets on B and C, not those on /.
    // (The namespace, hence its Redis subscription, is created by the first connection: retry
    // until it is subscribed, then check nothing leaked into /.)
    await waitFor(async () => {
      emitter.of("/dyn-1").emit("nsp-check", "dyn");
      await sleep(150);
      return got(db, "nsp-check").length > 0 && got(dc, "nsp-check").length > 0;
    }, 5000, () => `the /dyn-1 sockets did not get the emitter broadcast: ${JSON.stringify([db.events, dc.events])}`);
    await notReceived([a1, b1, b2, c1, c2], "nsp-check", "dyn");
    for (const s of [db, dc]) for (const [d] of got(s, "nsp-check")) assert.equal(d, "dyn");
  });

  test("fetch (fetch_sockets) returns the sockets of all instances", async () => {
    const expected = [a1.id, b1.id, c1.id].sort();
    for (const s of [a1, b2, c2]) assert.deepEqual(await s.timeout(6000).emitWithAck("fetch", room), expected);
    // A socket id is a room too.
    assert.deepEqual(await a1.timeout(6000).emitWithAck("fetch", c2.id), [c2.id]);
  });

  test("make-join (sockets_join) on a socket of another instance, then a to-room reaches it", async () => {
    const target = fresh("mj");
    assert.equal(await a1.emitWithAck("make-join", { target: b2.id, room: target }), true);
    await waitFor(async () => isDeepEqual(await a1.timeout(6000).emitWithAck("fetch", target), [b2.id]), 5000, "b2 did not join remotely");
    await a1.emitWithAck("to-room", { room: target, event: "joined-remotely", data: 1 });
    await received(b2, "joined-remotely", 1);
    await notReceived([b1, c1, c2], "joined-remotely");
  });

  test("kick (disconnect_sockets) of a socket on another instance disconnects it", async () => {
    const victim = await g.client(C);
    victim.label = "victim";
    const reason = once(victim, "disconnect", 5000);
    assert.equal(await a1.emitWithAck("kick", { target: victim.id }), true);
    assert.equal((await reason)[0], "io server disconnect");
    // The others are untouched.
    for (const s of [a1, b1, b2, c1, c2]) assert.equal(s.connected, true, `${s.label} was disconnected`);
  });

  test("room-acks collects the acks of clients on all instances", async () => {
    const res = await a1.timeout(6000).emitWithAck("room-acks", { room, timeout: 2000 });
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.deepEqual([...res.answers].sort(), ["a1", "b1", "c1"]);
    const res2 = await c2.timeout(6000).emitWithAck("room-acks", { room, timeout: 2000 });
    assert.equal(res2.ok, true, JSON.stringify(res2));
    assert.deepEqual([...res2.answers].sort(), ["a1", "b1", "c1"]);
  });

  test("server-emit from A is received by B and C (server-events), not by A", async () => {
    assert.equal(await a1.emitWithAck("server-emit", "test-event", 1, "two", { three: 3 }), true);
    const expected = [1, "two", { three: 3 }];
    for (const s of [b1, c1]) {
      await waitFor(async () => (await s.emitWithAck("server-events")).some((e) => isDeepEqual(e, expected)), 3000, `${s.label}'s server did not record the event`);
    }
    await sleep(QUIET_MS);
    assert.deepEqual(await a1.emitWithAck("server-events"), []);
  });
});

// ---------------------------------------------------------------------------------------------

describe("sio-server (chat app) x2 on standalone Redis: messages and presence", () => {
  const g = group();
  let redis, S1, S2;

  before(async () => {
    redis = await startRedis();
    [S1, S2] = await Promise.all([
      g.server({ env: { REDIS_URL: redis.url, INSTANCE_ID: "chat-1" } }),
      g.server({ env: { REDIS_URL: redis.url, INSTANCE_ID: "chat-2" } }),
    ]);
    await requestSubscribers(redis, 2);
  });

  after(async () => {
    await g.close();
    await redis?.stop();
  });

  test("a message from instance 1 reaches a client of instance 2 in the room (typed event and message)", async () => {
    const room = fresh("chat");
    const u1 = await g.client(S1);
    const u2 = await g.client(S2);
    const outsider = await g.client(S2);
    await join(room, u1, u2);

    const ack = await u1.timeout(3000).emitWithAck("message", { roomId: room, message: "hello from 1", sender: "u1" });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const [[text]] = await waitFor(() => got(u2, "message").length && got(u2, "message"), 3000, () => JSON.stringify(u2.events));
    assert.equal(text.id, ack.id);
    assert.equal(text.text, "hello from 1");
    assert.equal(text.sender, "u1");
    assert.equal(text.roomId, room);
    assert.equal(text.metadata.type, "text");

    u2.events = [];
    const loc = { roomId: room, latitude: 10.5, longitude: 106.7, address: "Saigon", sender: "u1" };
    const ack2 = await u1.timeout(3000).emitWithAck("message:location", loc);
    assert.equal(ack2.ok, true, JSON.stringify(ack2));
    await waitFor(() => got(u2, "message:location").length && got(u2, "message").length, 3000, () => JSON.stringify(u2.events));
    const [[typed]] = got(u2, "message:location");
    const [[generic]] = got(u2, "message");
    for (const m of [typed, generic]) {
      assert.equal(m.id, ack2.id);
      assert.equal(m.text, "Saigon");
      assert.equal(m.roomId, room);
      assert.equal(m.metadata.type, "location");
      assert.equal(m.metadata.latitude, 10.5);
      assert.equal(m.metadata.longitude, 106.7);
    }
    await notReceived([outsider], "message");
    await notReceived([outsider], "message:location");

    // And the other way round.
    const ack3 = await u2.timeout(3000).emitWithAck("message", { roomId: room, message: "hello from 2" });
    assert.equal(ack3.ok, true);
    await waitFor(() => got(u1, "message").some(([m]) => m.id === ack3.id && m.text === "hello from 2" && m.sender === "Anonymous"), 3000, () => JSON.stringify(u1.events));
    for (const s of [u1, u2, outsider]) s.disconnect();
  });

  test("cross-instance delivery latency (client timestamp in the payload)", async () => {
    const room = fresh("latency");
    const tx = await g.client(S1);
    const rx = await g.client(S2);
    await join(room, tx, rx);
    const latencies = [];
    const N = 200;
    for (let i = 0; i < N; i++) {
      const arrived = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`message ${i} not delivered within 2 s`)), 2000);
        const onMessage = (m) => {
          if (m.text !== `lat-${i}`) return;
          clearTimeout(t);
          rx.off("message", onMessage);
          resolve(m);
        };
        rx.on("message", onMessage);
      });
      tx.emit("message", { roomId: room, message: `lat-${i}`, ts: performance.timeOrigin + performance.now() });
      const m = await arrived;
      assert.equal(typeof m.metadata.ts, "number", `the client timestamp is kept in metadata: ${JSON.stringify(m)}`);
      latencies.push(performance.timeOrigin + performance.now() - m.metadata.ts);
    }
    latencies.sort((x, y) => x - y);
    const fmt = (v) => `${v.toFixed(2)} ms`;
    console.log(
      `cross-instance latency over ${N} messages (sio-server A -> Redis -> sio-server B): ` +
        `p50 ${fmt(percentile(latencies, 50))}, p99 ${fmt(percentile(latencies, 99))}, max ${fmt(latencies.at(-1))}`,
    );
    assert.ok(latencies.at(-1) < 2000);
    tx.disconnect();
    rx.disconnect();
  });

  test("GET /stats on either instance lists both instances, up, with their connection counts", async () => {
    await sleep(100);
    const on1 = [await g.client(S1), await g.client(S1)];
    const on2 = [await g.client(S2)];
    const expect = { "chat-1": 2, "chat-2": 1 };
    for (const srv of [S1, S2]) {
      let last;
      await waitFor(async () => {
        last = (await getJson(`${srv.url}/stats`)).body;
        const ids = last.instances?.map((i) => i.instanceId).sort();
        return isDeepEqual(ids, ["chat-1", "chat-2"]) && last.instances.every((i) => i.connections === expect[i.instanceId]);
      }, 5000, () => `/stats on :${srv.port}: ${JSON.stringify(last)}`);
      const { status, body } = await getJson(`${srv.url}/stats`);
      assert.equal(status, 200);
      for (const inst of body.instances) {
        assert.equal(inst.alive, true, JSON.stringify(inst));
        assert.equal(inst.status, "up", JSON.stringify(inst));
        assert.equal(inst.connections, expect[inst.instanceId]);
        assert.equal(typeof inst.lastUpdate, "number");
        assert.ok(Math.abs(Date.now() - inst.lastUpdate) < 5000, `lastUpdate ${inst.lastUpdate} is recent`);
      }
      assert.equal(body.totalConnections, 3);
    }
    for (const s of [...on1, ...on2]) s.disconnect();
  });

  test("an instance stopped gracefully (SIGTERM) removes its /stats entry", async () => {
    const S3 = await startServer({ env: { REDIS_URL: redis.url, INSTANCE_ID: "chat-3" } });
    try {
      const c3 = await g.client(S3);
      let last;
      await waitFor(async () => {
        last = (await getJson(`${S1.url}/stats`)).body;
        return last.instances?.some((i) => i.instanceId === "chat-3" && i.connections === 1 && i.alive);
      }, 5000, () => `chat-3 not listed: ${JSON.stringify(last)}`);
      c3.disconnect();
      await S3.stop("SIGTERM");
      assert.notEqual(S3.child.signalCode, "SIGKILL", "SIGTERM stopped it within 5 s");
      await waitFor(async () => {
        last = (await getJson(`${S1.url}/stats`)).body;
        return last.instances && !last.instances.some((i) => i.instanceId === "chat-3");
      }, 3000, () => `chat-3 still listed after SIGTERM: ${JSON.stringify(last)}\n${S3.logs()}`);
      assert.deepEqual(last.instances.map((i) => i.instanceId).sort(), ["chat-1", "chat-2"]);
    } finally {
      await S3.stop("SIGKILL");
    }
  });

  test("an instance killed (SIGKILL) is reported down within 10 s and keeps its entry", async () => {
    const keep = await g.client(S2);
    let last;
    await waitFor(async () => {
      last = (await getJson(`${S1.url}/stats`)).body;
      return last.instances?.some((i) => i.instanceId === "chat-2" && i.connections === 1);
    }, 5000, () => `chat-2 with 1 connection not listed: ${JSON.stringify(last)}`);
    await S2.stop("SIGKILL");
    const killedAt = Date.now();
    let entry;
    await waitFor(async () => {
      last = (await getJson(`${S1.url}/stats`)).body;
      entry = last.instances?.find((i) => i.instanceId === "chat-2");
      return entry && entry.alive === false;
    }, 10000, () => `chat-2 not reported down: ${JSON.stringify(last)}`);
    const observedAt = Date.now();
    assert.equal(entry.status, "down");
    assert.equal(entry.connections, 1, "the entry keeps its last count");
    assert.ok(observedAt - entry.lastUpdate > 6000, `down only after 6 s of silence (${observedAt - entry.lastUpdate} ms)`);
    console.log(`SIGKILLed instance reported down ${observedAt - killedAt} ms after the kill`);
    const me = last.instances.find((i) => i.instanceId === "chat-1");
    assert.equal(me?.alive, true);
    assert.equal(me?.status, "up");
    // Still kept a while later (only a graceful shutdown removes an entry).
    await sleep(500);
    const later = (await getJson(`${S1.url}/stats`)).body;
    assert.ok(later.instances.some((i) => i.instanceId === "chat-2" && i.status === "down"), JSON.stringify(later));
    keep.disconnect();
  });
});

// ---------------------------------------------------------------------------------------------

describe("interop: Node socket.io + @socket.io/redis-adapter and a testbed on one Redis", () => {
  const g = group();
  let redis, node, T, emitterClient, emitter, nc, rc;
  const room = fresh("interop");

  before(async () => {
    redis = await startRedis();
    [node, T] = await Promise.all([startNodeServer(redis.url), g.server({ name: "testbed", env: { REDIS_URL: redis.url, INSTANCE_ID: "tb-interop" } })]);
    await requestSubscribers(redis, 2);
    nc = await g.client(node);
    rc = await g.client(T);
    nc.label = "node-client";
    rc.label = "rust-client";
    const nres = await nc.timeout(3000).emitWithAck("join", room);
    assert.deepEqual(nres, { ok: true, roomId: room, instanceId: "node" });
    await join(room, rc);
    emitterClient = createClient({ url: redis.url });
    await emitterClient.connect();
    emitter = new Emitter(emitterClient);
  });

  after(async () => {
    await emitterClient?.quit().catch(() => {});
    await g.close();
    await node?.stop();
    await redis?.stop();
  });

  test("server-count is 2 on both servers", async () => {
    assert.equal(await nc.timeout(3000).emitWithAck("server-count"), 2);
    assert.equal(await rc.timeout(3000).emitWithAck("server-count"), 2);
  });

  test("room messages flow Node -> Rust (with a Buffer) and Rust -> Node", async () => {
    const bin = Buffer.from([0, 1, 2, 250, 255]);
    await nc.emitWithAck("to-room", { room, event: "interop", data: { from: "node", bin, list: [1, "x", null] } });
    const [[fromNode]] = await waitFor(() => got(rc, "interop").length && got(rc, "interop"), 3000, () => JSON.stringify(rc.events));
    assert.equal(fromNode.from, "node");
    assert.deepEqual(fromNode.list, [1, "x", null]);
    assert.ok(Buffer.isBuffer(fromNode.bin), `a Buffer arrives as binary: ${JSON.stringify(fromNode.bin)}`);
    assert.deepEqual([...fromNode.bin], [...bin]);

    assert.deepEqual(await rc.emitWithAck("to-room", { room, event: "interop", data: { from: "rust", n: 1.5 } }), { ok: true });
    await received(nc, "interop", { from: "rust", n: 1.5 });
  });

  test("Node's fetchSockets sees the Rust socket, the testbed's fetch sees the Node socket", async () => {
    const both = [nc.id, rc.id].sort();
    assert.deepEqual(await nc.timeout(6000).emitWithAck("fetch", room), both);
    assert.deepEqual(await rc.timeout(6000).emitWithAck("fetch", room), both);
  });

  test("room acks are collected across the two implementations", async () => {
    const fromNode = await nc.timeout(6000).emitWithAck("room-acks", { room, timeout: 2000 });
    assert.equal(fromNode.ok, true, JSON.stringify(fromNode));
    assert.deepEqual([...fromNode.answers].sort(), ["node-client", "rust-client"]);
    const fromRust = await rc.timeout(6000).emitWithAck("room-acks", { room, timeout: 2000 });
    assert.equal(fromRust.ok, true, JSON.stringify(fromRust));
    assert.deepEqual([...fromRust.answers].sort(), ["node-client", "rust-client"]);
  });

  test("@socket.io/redis-emitter reaches the Rust client in a room, Buffer included", async () => {
    const bin = Buffer.from("emitted");
    emitter.to(room).emit("from-emitter", { hi: "there" }, bin);
    const [[data, buf]] = await waitFor(() => got(rc, "from-emitter").length && got(rc, "from-emitter"), 3000, () => JSON.stringify(rc.events));
    assert.deepEqual(data, { hi: "there" });
    assert.ok(Buffer.isBuffer(buf));
    assert.equal(buf.toString(), "emitted");
    await received(nc, "from-emitter", { hi: "there" });
  });

  test("@socket.io/redis-emitter serverSideEmit is recorded by the testbed", async () => {
    emitter.serverSideEmit("test-event", 1);
    await waitFor(async () => (await rc.emitWithAck("server-events")).some((e) => isDeepEqual(e, [1])), 3000, "the testbed did not record [1]");
  });
});

// ---------------------------------------------------------------------------------------------

describe("Redis Cluster (3 masters)", () => {
  let cluster;

  before(async () => {
    cluster = await startRedisCluster();
  });

  after(async () => {
    await cluster?.stop();
  });

  describe("testbed x2, classic adapter", () => {
    const g = group();
    let A, B;
    before(async () => {
      const env = { REDIS_MODE: "cluster", REDIS_NODES: cluster.nodesJson, REDIS_ADAPTER: "classic" };
      [A, B] = await g.testbeds(env, ["cl-a", "cl-b"]);
    });
    after(() => g.close());

    test("a room broadcast crosses instances; server-count is 2", async () => {
      const a = await g.client(A);
      const b = await g.client(B);
      await serverCount(a, 2);
      assert.equal(await b.timeout(3000).emitWithAck("server-count"), 2);
      const room = fresh("cl");
      await join(room, a, b);
      await a.emitWithAck("to-room", { room, event: "cl-news", data: "a->b" });
      await received(b, "cl-news", "a->b");
      await b.emitWithAck("to-room", { room, event: "cl-news", data: "b->a" });
      await received(a, "cl-news", "b->a");
    });
  });

  describe("testbed x2, sharded adapter", () => {
    const g = group();
    let A, B;
    before(async () => {
      const env = { REDIS_MODE: "cluster", REDIS_NODES: cluster.nodesJson, REDIS_ADAPTER: "sharded" };
      [A, B] = await g.testbeds(env, ["sh-a", "sh-b"]);
    });
    after(() => g.close());

    test("room broadcasts (single-room channel and multi-room) cross both ways; fetch; server-count", async () => {
      const a = await g.client(A);
      const b = await g.client(B);
      a.label = "a";
      b.label = "b";
      await serverCount(a, 2);
      assert.equal(await b.timeout(3000).emitWithAck("server-count"), 2);
      const room = fresh("sh");
      await join(room, a, b);
      // Joining creates the room, which SSUBSCRIBEs its channel asynchronously (as Node's
      // sharded adapter does): wait until both servers subscribe to it.
      await shardSubscribers(cluster, `socket.io#/#${room}#`, 2);
      // A single room: published on the per-room channel socket.io#/#<room>#.
      await a.emitWithAck("to-room", { room, event: "sh-news", data: "a->b" });
      await received(b, "sh-news", "a->b");
      await b.emitWithAck("to-room", { room, event: "sh-news", data: "b->a" });
      await received(a, "sh-news", "b->a");
      // Everyone but the sender: the namespace channel.
      await a.emitWithAck("broadcast", { event: "sh-all", data: "from a" });
      await received(b, "sh-all", "from a");
      await b.emitWithAck("broadcast", { event: "sh-all", data: "from b" });
      await received(a, "sh-all", "from b");
      await notReceived([a], "sh-news", "a->b");
      assert.deepEqual(await a.timeout(6000).emitWithAck("fetch", room), [a.id, b.id].sort());
      assert.deepEqual(await b.timeout(6000).emitWithAck("fetch", room), [a.id, b.id].sort());
    });

    test("join/leave storms end in the right subscriptions; id-rooms are never (un)subscribed", async () => {
      const a = await g.client(A);
      const b = await g.client(B);
      a.label = "a";
      b.label = "b";
      await serverCount(a, 2);
      const rooms = [fresh("storm"), fresh("storm"), fresh("storm")];
      for (const room of rooms) await join(room, a);
      for (const room of rooms) await shardSubscribers(cluster, `socket.io#/#${room}#`, 1);
      const before = await shardCommandCalls(cluster);
      // 50 join/leave pairs per room, fired without waiting, then a last join: B must end subscribed.
      for (let i = 0; i < 50; i++) {
        for (const room of rooms) {
          b.emit("join", room);
          b.emit("leave", room);
        }
      }
      await join(rooms[0], b);
      await join(rooms[1], b);
      await join(rooms[2], b);
      for (const room of rooms) await shardSubscribers(cluster, `socket.io#/#${room}#`, 2);
      await sleep(QUIET_MS);
      for (const room of rooms) await shardSubscribers(cluster, `socket.io#/#${room}#`, 2, 100);
      for (const room of rooms) {
        await a.emitWithAck("to-room", { room, event: "storm-news", data: room });
        await received(b, "storm-news", room);
      }
      const storm = (await shardCommandCalls(cluster)) - before;
      console.log(`(S)SUBSCRIBE/SUNSUBSCRIBE commands for 3 rooms x 50 join/leave pairs: ${storm}`);
      // One command per change would be 300 (the count before coalescing); typically 5-25 now.
      assert.ok(storm < 150, `a storm is coalesced into few commands, got ${storm}`);
      // A storm ending in a leave leaves B unsubscribed; once A leaves too, nothing is left.
      for (let i = 0; i < 20; i++) {
        b.emit("leave", rooms[0]);
        b.emit("join", rooms[0]);
      }
      await b.timeout(3000).emitWithAck("leave", rooms[0]);
      await shardSubscribers(cluster, `socket.io#/#${rooms[0]}#`, 1);
      for (const room of rooms) {
        await b.timeout(3000).emitWithAck("leave", room);
        await a.timeout(3000).emitWithAck("leave", room);
      }
      for (const room of rooms) await shardSubscribers(cluster, `socket.io#/#${room}#`, 0);
      let leaked;
      await waitFor(async () => (leaked = await shardChannels(cluster, "socket.io#/#storm-*")).length === 0, 5000, () => `room channels left after everyone left: ${leaked}`);
      // Socket ids are rooms but never channels: connecting and disconnecting sends no (un)subscribe.
      const quiet = await shardCommandCalls(cluster);
      const extra = [];
      for (let i = 0; i < 10; i++) extra.push(await g.client(i % 2 ? A : B));
      assert.deepEqual(await shardChannels(cluster, `socket.io#/#${"?".repeat(20)}#`), [], "no id-room channel");
      for (const s of extra) s.disconnect();
      await sleep(QUIET_MS);
      assert.equal((await shardCommandCalls(cluster)) - quiet, 0, "connects and disconnects send no SSUBSCRIBE/SUNSUBSCRIBE");
      assert.deepEqual(await shardChannels(cluster, `socket.io#/#${"?".repeat(20)}#`), [], "no id-room channel");
    });
  });

  describe("sio-server x2 in cluster mode", () => {
    const g = group();
    let S1, S2;
    before(async () => {
      const env = { REDIS_MODE: "cluster", REDIS_NODES: cluster.nodesJson };
      [S1, S2] = await Promise.all([
        g.server({ env: { ...env, INSTANCE_ID: "clchat-1" } }),
        g.server({ env: { ...env, INSTANCE_ID: "clchat-2" } }),
      ]);
    });
    after(() => g.close());

    test("/stats shows both instances (presence hashes on Cluster); a message crosses", async () => {
      const u1 = await g.client(S1);
      const u2 = await g.client(S2);
      const u3 = await g.client(S2);
      for (const srv of [S1, S2]) {
        let last;
        await waitFor(async () => {
          last = (await getJson(`${srv.url}/stats`)).body;
          const by = Object.fromEntries((last.instances ?? []).map((i) => [i.instanceId, i]));
          return by["clchat-1"]?.connections === 1 && by["clchat-2"]?.connections === 2 && by["clchat-1"].alive && by["clchat-2"].alive;
        }, 6000, () => `/stats on :${srv.port}: ${JSON.stringify(last)}`);
        assert.equal(last.instances.length, 2);
        assert.ok(last.instances.every((i) => i.status === "up"));
        assert.equal(last.totalConnections, 3);
      }
      const room = fresh("clchat");
      await join(room, u1, u2);
      await sleep(200);
      const ack = await u1.timeout(3000).emitWithAck("message", { roomId: room, message: "over the cluster" });
      assert.equal(ack.ok, true);
      await waitFor(() => got(u2, "message").some(([m]) => m.id === ack.id), 3000, () => JSON.stringify(u2.events));
      await notReceived([u3], "message");
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("Redis killed and restarted under two sio-server instances", () => {
  const g = group();
  let redis, S1, S2;

  before(async () => {
    redis = await startRedis();
    [S1, S2] = await Promise.all([
      g.server({ env: { REDIS_URL: redis.url, INSTANCE_ID: "rs-1", RUST_LOG: process.env.RUST_LOG ?? "sio_server=info" } }),
      g.server({ env: { REDIS_URL: redis.url, INSTANCE_ID: "rs-2", RUST_LOG: process.env.RUST_LOG ?? "sio_server=info" } }),
    ]);
    await requestSubscribers(redis, 2);
  });

  after(async () => {
    await g.close();
    await redis?.stop();
  });

  test("local delivery survives the outage, /health says 503, and the cluster heals after a restart", async () => {
    const room = fresh("outage");
    const x1 = await g.client(S1);
    const x2 = await g.client(S2);
    const l1 = await g.client(S1);
    const l2 = await g.client(S1);
    await join(room, x1, x2, l1, l2);
    x1.label = "x1";
    x2.label = "x2";
    l2.label = "l2";

    let n = 0;
    /** x1 (on S1) sends a message; resolves true when x2 (on S2) gets it within `ms`. */
    const crossOnce = async (from, to, ms) => {
      const text = `probe-${++n}`;
      from.emit("message", { roomId: room, message: text });
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (got(to, "message").some(([m]) => m.text === text)) return true;
        await sleep(20);
      }
      return false;
    };
    assert.ok(await crossOnce(x1, x2, 3000), "cross-instance delivery before the outage");
    assert.equal((await getJson(`${S1.url}/health`)).status, 200);

    await redis.kill();
    for (const srv of [S1, S2]) {
      let last;
      await waitFor(async () => {
        last = await getJson(`${srv.url}/health`);
        return last.status === 503;
      }, 8000, () => `/health on :${srv.port} while Redis is down: ${JSON.stringify(last)}`);
      assert.notEqual(last.body.redis, "connected");
      assert.notEqual(last.body.redis?.status, "connected", JSON.stringify(last.body));
    }

    // Two clients on the same instance in one room: local delivery does not need Redis.
    const localText = "local while redis is down";
    const sentAt = Date.now();
    l1.emit("message", { roomId: room, message: localText });
    await waitFor(() => got(l2, "message").some(([m]) => m.text === localText), 3000, () => `local delivery during the outage failed; l2 got ${JSON.stringify(l2.events)}\n${g.logs()}`);
    console.log(`local delivery during the Redis outage took ${Date.now() - sentAt} ms`);

    await redis.start();
    const restartedAt = Date.now();
    await waitFor(() => crossOnce(x1, x2, 500), 15000, () => `no cross-instance delivery S1 -> S2 after the Redis restart\n${g.logs()}`);
    console.log(`cross-instance delivery back ${Date.now() - restartedAt} ms after the Redis restart`);
    await waitFor(() => crossOnce(x2, x1, 500), Math.max(1000, 15000 - (Date.now() - restartedAt)), () => `no cross-instance delivery S2 -> S1 after the Redis restart\n${g.logs()}`);
    for (const srv of [S1, S2]) {
      let last;
      await waitFor(async () => (last = await getJson(`${srv.url}/health`)).status === 200, Math.max(1000, 15000 - (Date.now() - restartedAt)), () => `/health on :${srv.port} after the restart: ${JSON.stringify(last)}`);
      assert.equal(last.body.redis, "connected");
    }
    assert.ok(alive(S1) && alive(S2), "both server processes are still running");
    for (const s of [x1, x2, l1, l2]) assert.equal(s.connected, true, `${s.label} stayed connected`);
  });
});

// ---------------------------------------------------------------------------------------------

/** Resident memory of a process, in MiB (Linux /proc). */
function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]) / 1024;
}

/** The value of one sample line of a /metrics text (0 when absent). */
async function metric(srv, line) {
  const text = await (await fetch(`${srv.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const hit = text.split("\n").find((l) => l.startsWith(`${line} `));
  return hit ? Number(hit.slice(line.length + 1)) : 0;
}

describe("Redis stalled (SIGSTOP) under a large-message publisher", () => {
  const g = group();
  let redis, S1, S2;
  const QUEUE = 4 << 20;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, REDIS_QUEUE_BYTES: String(QUEUE), RUST_LOG: "sio_server=warn" };
    [S1, S2] = await Promise.all([
      g.server({ env: { ...env, INSTANCE_ID: "stall-1" } }),
      g.server({ env: { ...env, INSTANCE_ID: "stall-2" } }),
    ]);
    await requestSubscribers(redis, 2);
  });

  after(async () => {
    try {
      process.kill(redis.pid(), "SIGCONT");
    } catch {}
    await g.close();
    await redis?.stop();
  });

  test("the publish queue stays within REDIS_QUEUE_BYTES, drops the oldest (counted, logged), and heals", async () => {
    const room = fresh("stall");
    const tx = await g.client(S1);
    const rx = await g.client(S2);
    await join(room, tx, rx);
    const rssBefore = rssMiB(S1.child.pid);
    process.kill(redis.pid(), "SIGSTOP");
    const stalledAt = Date.now();
    // 150 messages of 400 KB, each published twice (typed event + message): ~120 MB for a 4 MiB queue.
    const big = "x".repeat(400_000);
    for (let i = 0; i < 150; i++) {
      const ack = await tx.timeout(5000).emitWithAck("message", { roomId: room, message: `${i}:${big}` });
      assert.equal(ack.ok, true, JSON.stringify(ack).slice(0, 200));
    }
    const dropped = await metric(S1, 'sio_redis_queue_dropped_total{queue="publish"}');
    const rss = rssMiB(S1.child.pid);
    console.log(`Redis stalled: RSS ${rssBefore.toFixed(0)} -> ${rss.toFixed(0)} MiB after ~120 MB of publishes; ${dropped} publishes dropped`);
    assert.ok(dropped > 0, "the oldest publishes are dropped and counted");
    assert.ok(rss - rssBefore < 60, `memory stays bounded while Redis stalls: ${rssBefore} -> ${rss} MiB`);
    await waitFor(() => S1.logs().includes("redis queue full"), 3000, () => `no drop warning logged:\n${g.logs()}`);
    const warnings = S1.logs().split("\n").filter((l) => l.includes("redis queue full")).length;
    const allowed = 1 + Math.floor((Date.now() - stalledAt) / 10_000);
    assert.ok(warnings <= allowed && warnings < dropped, `drop warnings are rate-limited (one per 10 s): ${warnings} for ${dropped} drops`);

    process.kill(redis.pid(), "SIGCONT");
    const healed = `after the stall ${Date.now()}`;
    await waitFor(async () => {
      tx.emit("message", { roomId: room, message: healed });
      await sleep(300);
      return got(rx, "message").some(([m]) => m.text === healed);
    }, 20000, () => `no cross-instance delivery after SIGCONT\n${g.logs()}`);
    assert.ok(alive(S1) && alive(S2));
  });
});

// ---------------------------------------------------------------------------------------------

describe("hostile counts from Redis peers", () => {
  const g = group();
  let redis, S;

  before(async () => {
    redis = await startRedis();
    S = await g.server({ env: { REDIS_URL: redis.url, INSTANCE_ID: "sat-1" } });
  });

  after(async () => {
    await g.close();
    await redis?.stop();
  });

  test("presence counts of u64::MAX from two 'instances' saturate in /stats instead of overflowing", async () => {
    const now = String(Date.now() + 60_000);
    const max = "18446744073709551615";
    const cli = (...args) => redisCli(["-p", String(redis.port), ...args]);
    await cli("hset", "socket:clients:counts", "evil-1", max, "evil-2", max);
    await cli("hset", "socket:clients:lastUpdate", "evil-1", now, "evil-2", now);
    const { status, body } = await getJson(`${S.url}/stats`);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.totalConnections, Number(max), JSON.stringify(body));
    assert.ok(alive(S));
    assert.equal((await getJson(`${S.url}/health`)).status, 200);
  });
});
