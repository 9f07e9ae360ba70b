// Room-aware delivery, counted (issue #15 item 4): three sio-server instances (the chat app) on
// Redis, a room with members on one instance, a chat message sent through another. Every broadcast
// Redis hands an instance shows in /metrics as sio_adapter_broadcasts_in_total{outcome}:
// delivered (reached a local socket), unused (reached none) or echo (the instance's own). The
// classic adapter sends every broadcast to every instance; the sharded one only to the instances
// subscribed to the room's channel. bench/rooms.mjs measures the same at 3,000 rooms.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { io } from "socket.io-client";
import { startServer, once, sleep, waitFor, fresh } from "./lib/server.mjs";
import { startRedis, startRedisCluster, redisCli } from "./lib/redis.mjs";

/** How long to watch for counts that must not move. */
const QUIET_MS = 500;

async function counters(server) {
  const text = await (await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const get = (name) => {
    const m = new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m").exec(text);
    assert.ok(m, `/metrics of :${server.port} lacks ${name}`);
    return Number(m[1]);
  };
  return {
    delivered: get('sio_adapter_broadcasts_in_total{outcome="delivered"}'),
    unused: get('sio_adapter_broadcasts_in_total{outcome="unused"}'),
    echo: get('sio_adapter_broadcasts_in_total{outcome="echo"}'),
    in: get("sio_adapter_messages_in_total"),
  };
}

const snapshot = (servers) => Promise.all(servers.map(counters));
const minus = (a, b) => ({ delivered: a.delivered - b.delivered, unused: a.unused - b.unused, echo: a.echo - b.echo });

/** Waits until each server's change since `before` equals `expected` (in order), then checks it stays. */
async function expectDeltas(servers, before, expected) {
  let deltas;
  await waitFor(async () => {
    deltas = (await snapshot(servers)).map((c, i) => minus(c, before[i]));
    return isDeepStrictEqual(deltas, expected);
  }, 5000, () => `counter changes ${JSON.stringify(deltas)}, expected ${JSON.stringify(expected)}`);
  await sleep(QUIET_MS);
  deltas = (await snapshot(servers)).map((c, i) => minus(c, before[i]));
  assert.deepEqual(deltas, expected, "a late broadcast moved the counters");
}

function suite(name, startRedisFor, adapter) {
  describe(name, () => {
    let redis, env;
    const servers = [];
    const clients = [];
    const client = async (server) => {
      const s = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
      clients.push(s);
      await once(s, "connect", 5000);
      return s;
    };
    const join = async (s, room) => assert.equal((await s.timeout(5000).emitWithAck("join", room)).ok, true);
    const shardSubscribers = (room) => Promise.all(redis.ports.map(async (p) =>
      Number((await redisCli(["-p", String(p), "pubsub", "shardnumsub", `socket.io#/#${room}#`])).split("\n")[1]) || 0,
    )).then((n) => n.reduce((a, b) => a + b, 0));

    before(async () => {
      ({ redis, env } = await startRedisFor());
      for (const id of ["ra-1", "ra-2", "ra-3"]) {
        servers.push(await startServer({ env: { ...env, REDIS_ADAPTER: adapter, INSTANCE_ID: id } }));
      }
    });
    after(async () => {
      for (const c of clients) c.disconnect();
      await Promise.all(servers.map((s) => s.stop()));
      await redis?.stop();
    });

    test("members on one instance: who receives the broadcast, and who throws it away", async () => {
      const [A, B, C] = servers;
      const room = fresh("ra");
      const member = await client(B);
      await join(member, room);
      if (adapter === "sharded") await waitFor(async () => (await shardSubscribers(room)) === 1, 5000, "B never subscribed the room's channel");
      const sender = await client(A);
      const before = await snapshot(servers);
      const got = once(member, "message", 5000);
      assert.equal((await sender.timeout(5000).emitWithAck("message", { roomId: room, message: "hi" })).ok, true);
      assert.equal((await got)[0].text, "hi");
      if (adapter === "classic") {
        // Everyone gets it: B uses it, C has no member, A published it.
        await expectDeltas(servers, before, [{ delivered: 0, unused: 0, echo: 1 }, { delivered: 1, unused: 0, echo: 0 }, { delivered: 0, unused: 1, echo: 0 }]);
        // C's copy is a message from another server, though it never decoded the packet.
        assert.ok((await counters(C)).in > before[2].in, "C's unused broadcast is not in sio_adapter_messages_in_total");
      } else {
        await expectDeltas(servers, before, [{ delivered: 0, unused: 0, echo: 0 }, { delivered: 1, unused: 0, echo: 0 }, { delivered: 0, unused: 0, echo: 0 }]);
      }
    });

    test("members on the sender's instance too: its own copy comes back as an echo", async () => {
      const [A, B] = servers;
      const room = fresh("ra");
      const onA = await client(A);
      const onB = await client(B);
      await join(onA, room);
      await join(onB, room);
      if (adapter === "sharded") await waitFor(async () => (await shardSubscribers(room)) === 2, 5000, "A and B never both subscribed");
      const before = await snapshot(servers);
      const got = [once(onA, "message", 5000), once(onB, "message", 5000)];
      assert.equal((await onA.timeout(5000).emitWithAck("message", { roomId: room, message: "both" })).ok, true);
      for (const [m] of await Promise.all(got)) assert.equal(m.text, "both");
      const third = adapter === "classic" ? { delivered: 0, unused: 1, echo: 0 } : { delivered: 0, unused: 0, echo: 0 };
      await expectDeltas(servers, before, [{ delivered: 0, unused: 0, echo: 1 }, { delivered: 1, unused: 0, echo: 0 }, third]);
    });
  });
}

suite("classic adapter, standalone Redis", async () => {
  const redis = await startRedis();
  return { redis, env: { REDIS_URL: redis.url } };
}, "classic");

suite("sharded adapter, 3-master Redis Cluster", async () => {
  const redis = await startRedisCluster();
  return { redis, env: { REDIS_MODE: "cluster", REDIS_NODES: redis.nodesJson } };
}, "sharded");
