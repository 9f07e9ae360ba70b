// Redis Cluster failover under a steady stream (issue #15 items 1 and 2): a 6-node cluster (3
// masters, 3 replicas, cluster-node-timeout 2000), two sio-server instances, clients in rooms on
// every shard, a publisher at 20 messages/s per room, and `kill -9` of the master that serves the
// busiest channel. Measures the time from the promotion until delivery resumes, the lost and the
// duplicated messages (printed as `# ...` lines), and asserts the goals: delivery resumes within
// 3 s of the promotion, losses only inside the gap, /health answers within 1 s throughout (503 while
// Redis cannot serve, 200 once it can), /stats and presence keep working, the webhook in redis
// mode never answers a false 200, and the old master rejoining as a replica breaks nothing.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, startWebhook, once, sleep, waitFor } from "./lib/server.mjs";
import { startRedisCluster, redisCli } from "./lib/redis.mjs";

/** Messages per second sent to each room. */
const RATE = 20;
/** Clients of the busy room (on instance B). */
const BUSY_MEMBERS = 3;

let cluster;
before(async () => {
  cluster = await startRedisCluster({ replicas: 1 });
});
after(async () => {
  await cluster?.stop();
});

const channelOf = (room) => `socket.io#/#${room}#`;

/**
 * Room names whose channels live on each master: {busy, others}. `busyMaster` is the port of the
 * master whose room is the busy one (the one killed).
 */
async function roomsByShard(tag, busyMaster) {
  const topo = await cluster.topology();
  const masters = topo.filter((n) => n.role === "master" && !n.failed && n.slots.length).map((n) => n.port);
  const found = new Map();
  for (let i = 0; found.size < masters.length && i < 500; i++) {
    const room = `${tag}-${i}`;
    const m = await cluster.masterOf(channelOf(room));
    if (!found.has(m)) found.set(m, room);
  }
  assert.equal(found.size, 3, `rooms on every master: ${[...found]}`);
  return { busy: found.get(busyMaster), others: masters.filter((m) => m !== busyMaster).map((m) => found.get(m)) };
}

/** GET with a 1 s deadline: {ms, status} or {ms, status: "timeout"|"error"}. */
async function timedGet(url) {
  const t0 = Date.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.text();
    return { t: t0, ms: Date.now() - t0, status: res.status };
  } catch (e) {
    return { t: t0, ms: Date.now() - t0, status: e.name === "TimeoutError" ? "timeout" : "error" };
  }
}

/** Polls `url` every 200 ms until stopped; returns {samples, stop()}. */
function poller(url, every = 200) {
  const samples = [];
  let running = true;
  const done = (async () => {
    while (running) {
      samples.push(await timedGet(url));
      await sleep(every);
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function member(url, room, received) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  await once(s, "connect", 5000);
  s.on("message", (m) => {
    if (m.roomId === room && typeof m.metadata?.seq === "number") received.push({ seq: m.metadata.seq, id: m.id, at: Date.now() });
  });
  const res = await s.timeout(5000).emitWithAck("join", room);
  assert.equal(res.ok, true, JSON.stringify(res));
  return s;
}

/** Sends `message` to `room` at RATE/s from `sender`, recording {seq, at, ok}. */
function stream(sender, room) {
  const sent = [];
  let seq = 0;
  let running = true;
  const timer = setInterval(() => {
    if (!running) return;
    const rec = { seq: ++seq, at: Date.now(), ok: null };
    sent.push(rec);
    sender
      .timeout(5000)
      .emitWithAck("message", { roomId: room, message: `m${rec.seq}`, seq: rec.seq })
      .then((a) => (rec.ok = a?.ok === true))
      .catch(() => (rec.ok = false));
  }, 1000 / RATE);
  return {
    sent,
    stop() {
      running = false;
      clearInterval(timer);
    },
  };
}

/**
 * Delivery of one room's stream to one member: lost (acked, never received), duplicates, and the
 * resume time: when the first message after the last loss arrived.
 */
function delivery(sent, received) {
  const counts = new Map();
  const dupAt = [];
  for (const r of received) {
    counts.set(r.seq, (counts.get(r.seq) ?? 0) + 1);
    if (counts.get(r.seq) === 2) dupAt.push(r.at);
  }
  const lost = sent.filter((s) => s.ok && !counts.has(s.seq));
  const duplicates = [...counts.values()].filter((n) => n > 1).length;
  const lastLost = lost.length ? lost[lost.length - 1].seq : 0;
  const after = received.filter((r) => r.seq > lastLost).sort((a, b) => a.at - b.at)[0];
  return { lost, duplicates, dupAt, resumedAt: after?.at, unacked: sent.filter((s) => s.ok !== true).length };
}

const fmt = (ms) => (ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`);

for (const adapter of ["classic", "sharded"]) {
  describe(`failover with REDIS_ADAPTER=${adapter}`, () => {
    const closers = [];
    after(async () => {
      for (const c of closers.reverse()) await c();
    });

    test("delivery resumes within 3 s of the promotion; /health answers within 1 s throughout", { timeout: 90000 }, async () => {
      await cluster.waitHealthy();
      const env = { REDIS_MODE: "cluster", REDIS_NODES: cluster.nodesJson, REDIS_ADAPTER: adapter, RUST_LOG: "warn" };
      const A = await startServer({ env: { ...env, INSTANCE_ID: `fo-${adapter}-a` } });
      closers.push(() => A.stop());
      const B = await startServer({ env: { ...env, INSTANCE_ID: `fo-${adapter}-b` } });
      closers.push(() => B.stop());
      // The master to kill. Sharded: the busy room's channel's master (SPUBLISH and SSUBSCRIBE
      // both go to its slot's master). Classic: PUBLISH is broadcast over the cluster bus, so what
      // dies with a node is the PSUBSCRIBE/SUBSCRIBE of the subscribers connected to it; both
      // instances keep theirs on one node (the first of REDIS_NODES, a master), found here with
      // CLIENT LIST, and the busy room is picked on that master so its publishes fail over too.
      let busyMaster;
      if (adapter === "classic") {
        await waitFor(async () => {
          for (const port of cluster.ports) {
            const clients = await redisCli(["-p", String(port), "client", "list"]);
            if ((clients.match(/ psub=1 /g) ?? []).length >= 2) busyMaster = port;
          }
          return busyMaster;
        }, 5000, "the classic subscribers' node");
        const role = (await cluster.topology()).find((n) => n.port === busyMaster)?.role;
        assert.equal(role, "master", `the classic subscribers sit on a master (:${busyMaster})`);
      } else {
        busyMaster = await cluster.masterOf(channelOf(`fo-${adapter}-0`));
      }
      const { busy, others } = await roomsByShard(`fo-${adapter}`, busyMaster);
      const hook = await startWebhook({ env: { ...env, WEBHOOK_MODE: "redis", RUST_LOG: "warn" } });
      closers.push(() => hook.stop());
      const logs = () => `--- A\n${A.logs().slice(-3000)}\n--- B\n${B.logs().slice(-3000)}\n--- webhook\n${hook.logs().slice(-2000)}`;

      const rooms = [busy, ...others];
      const received = new Map(rooms.map((r) => [r, []]));
      const busyReceived = Array.from({ length: BUSY_MEMBERS }, () => []);
      const sockets = [];
      for (const r of busyReceived) sockets.push(await member(B.url, busy, r));
      for (const r of others) sockets.push(await member(B.url, r, received.get(r)));
      // Sharded: a room on the busy master that its only member leaves while the master is down.
      const leaverRoom = adapter === "sharded" ? (await roomsByShard(`fo-${adapter}-leaver`, busyMaster)).busy : null;
      const leaver = leaverRoom ? await member(B.url, leaverRoom, []) : null;
      if (leaver) sockets.push(leaver);
      closers.push(() => sockets.forEach((s) => s.disconnect()));
      const sender = io(A.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
      closers.push(() => sender.disconnect());
      await once(sender, "connect", 5000);

      // Warm up: a message to every room crosses from A to B before the clock starts.
      await waitFor(async () => {
        await sender.timeout(2000).emitWithAck("message", { roomId: busy, message: "warm", seq: 0 });
        return busyReceived.every((r) => r.some((m) => m.seq === 0));
      }, 15000, () => `warm-up delivery A -> B\n${logs()}`);
      for (const r of busyReceived) r.length = 0;

      const health = [A, B].map((s) => poller(`${s.url}/health`));
      const hookHealth = poller(`${hook.url}/health`);
      const statsPoll = poller(`${B.url}/stats`, 500);
      const streams = new Map(rooms.map((r) => [r, stream(sender, r)]));
      // A failed assertion must not leave timers running: the file would never exit.
      closers.push(async () => {
        posting = false;
        for (const s of streams.values()) s.stop();
        for (const p of [...health, hookHealth, statsPoll]) await p.stop();
      });
      // Webhook posts into the busy room (the emitter publishes classic channels).
      const posts = [];
      let posting = true;
      const poster = (async () => {
        for (let i = 0; posting; i++) {
          const t0 = Date.now();
          let status, id;
          try {
            const res = await fetch(`${hook.url}/webhook`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ roomId: busy, message: `hook ${i}`, sender: "fo" }),
              signal: AbortSignal.timeout(8000),
            });
            status = res.status;
            id = (await res.json()).id;
          } catch (e) {
            status = e.name;
          }
          posts.push({ t: t0, status, id });
          await sleep(250);
        }
      })();
      const hookIds = new Set();
      sockets[0].on("message", (m) => m.metadata?.via === "webhook" && hookIds.add(m.id));

      await sleep(1500);
      const before = await cluster.topology();
      const standby = before.find((n) => n.masterId === before.find((m) => m.port === busyMaster)?.id)?.port;
      const shardNumSub = async (port, room = busy) => Number((await redisCli(["-p", String(port), "pubsub", "shardnumsub", channelOf(room)])).split("\n")[1]);
      const killedAt = Date.now();
      await cluster.kill(busyMaster);
      if (leaver && standby) {
        // Its subscription stands by on the replica; the leave must still end it there (the
        // subscribe had failed, so the room was never counted as subscribed).
        await waitFor(async () => (await shardNumSub(standby, leaverRoom)) === 1, 3000, "the leaver's room stood by on the replica");
        const left = await leaver.timeout(4000).emitWithAck("leave", leaverRoom);
        assert.equal(left.ok, true);
      }
      let promotedAt;
      let newMaster;
      let standbySubs = 0;
      await waitFor(async () => {
        // Counted only while the replica still says it is one (a node's view can lag the promotion).
        if (adapter === "sharded" && standby) {
          const subs = await shardNumSub(standby).catch(() => 0);
          const role = await redisCli(["-p", String(standby), "role"]).catch(() => "");
          if (role.startsWith("slave")) standbySubs = Math.max(standbySubs, subs);
        }
        newMaster = await cluster.masterOf(channelOf(busy));
        if (newMaster && newMaster !== busyMaster) promotedAt = Date.now();
        return promotedAt;
      }, 20000, "a replica was promoted");
      if (adapter === "sharded") {
        // While the master is down, B holds the busy room's subscription on its replica, which
        // keeps it when promoted: nothing published right after the promotion is missed.
        assert.ok(standby, "the busy master has a replica");
        assert.equal(standbySubs, 1, `B's subscription stood by on the replica :${standby} before the promotion`);
        const live = cluster.ports.filter((p) => p !== busyMaster);
        await waitFor(async () => {
          const counts = await Promise.all(live.map((p) => shardNumSub(p, leaverRoom).catch(() => NaN)));
          return counts.every((n) => n === 0);
        }, 3000, "the room left during the outage is subscribed nowhere after the promotion");
      }

      // Delivery must resume: wait until every busy member got a message sent after the promotion.
      const resumed = await waitFor(() => {
        const s = streams.get(busy).sent.find((m) => m.at > promotedAt + 200);
        return s && busyReceived.every((r) => r.some((m) => m.seq >= s.seq)) && Date.now();
      }, 15000, () => `busy-room delivery did not resume after the promotion\n${logs()}`);
      await sleep(2000);

      // The old master comes back; it rejoins as a replica of the promoted one.
      const restartAt = Date.now();
      await cluster.start(busyMaster);
      await cluster.waitHealthy(20000);
      const rejoinedAt = Date.now();
      const role = (await cluster.topology()).find((n) => n.port === busyMaster)?.role;
      await sleep(2500);
      for (const s of streams.values()) s.stop();
      posting = false;
      await poster;
      await sleep(1500);
      for (const p of [...health, hookHealth, statsPoll]) await p.stop();

      // ---- measurements
      const busyRuns = busyReceived.map((r) => delivery(streams.get(busy).sent, r));
      const otherRuns = others.map((room) => delivery(streams.get(room).sent, received.get(room)));
      const worst = busyRuns.reduce((a, b) => (b.lost.length > a.lost.length ? b : a));
      const resumeAfterPromotion = Math.max(...busyRuns.map((r) => (r.resumedAt ?? Infinity) - promotedAt));
      const sentBusy = streams.get(busy).sent.length;
      console.log(`# ${adapter}: killed master :${busyMaster}; replica :${newMaster} promoted ${fmt(promotedAt - killedAt)} after the kill; old master back as ${role} ${fmt(rejoinedAt - restartAt)} after its restart`);
      console.log(`# ${adapter}: busy room: ${sentBusy} sent, ${worst.unacked} not acked ok, lost ${busyRuns.map((r) => r.lost.length).join("/")} (per member), duplicates ${busyRuns.map((r) => r.duplicates).join("/")}; delivery resumed ${fmt(Math.max(...busyRuns.map((r) => r.resumedAt - killedAt)))} after the kill, ${fmt(resumeAfterPromotion)} after the promotion (first message after the last loss)`);
      const phase = (ts) => [ts.filter((t) => t < killedAt).length, ts.filter((t) => t >= killedAt && t < promotedAt).length, ts.filter((t) => t >= promotedAt && t < restartAt).length, ts.filter((t) => t >= restartAt).length].join("/");
      if (busyRuns[0].duplicates) console.log(`# ${adapter}: busy duplicates before kill/gap/after promotion/after restart: ${phase(busyRuns[0].dupAt)}`);
      console.log(`# ${adapter}: rooms on the other shards: lost ${otherRuns.map((r) => r.lost.length).join("/")}, duplicates ${otherRuns.map((r) => r.duplicates).join("/")}`);
      const allHealth = [...health[0].samples, ...health[1].samples];
      const slowest = Math.max(...allHealth.map((s) => s.ms));
      const codes = (samples) => {
        const out = [];
        for (const s of samples) if (out[out.length - 1]?.status !== s.status) out.push({ status: s.status, at: s.t - killedAt });
        return out.map((c) => `${c.status}@${fmt(c.at)}`).join(" ");
      };
      console.log(`# ${adapter}: /health slowest ${slowest} ms; A: ${codes(health[0].samples)}; B: ${codes(health[1].samples)}; webhook: ${codes(hookHealth.samples)}`);
      console.log(`# ${adapter}: /stats on B: ${codes(statsPoll.samples)}`);
      const hookCounts = {};
      for (const p of posts) hookCounts[p.status] = (hookCounts[p.status] ?? 0) + 1;
      const false200 = posts.filter((p) => p.status === 200 && !hookIds.has(p.id));
      console.log(`# ${adapter}: webhook posts ${JSON.stringify(hookCounts)}, 200 but not delivered: ${false200.length}`);

      if (process.env.FO_DEBUG) {
        for (const p of cluster.ports) console.log(`# dbg :${p} ${(await redisCli(["-p", String(p), "client", "list"])).split("\n").filter((l) => /ssub=[1-9]|psub=[1-9]/.test(l)).map((l) => l.replace(/.*( sub=\S+ psub=\S+ ssub=\S+).*/, "$1")).join(" | ")}`);
        console.log(`# dbg rooms busy=${busy}@${await cluster.masterOf(channelOf(busy))} others=${await Promise.all(others.map(async (r) => `${r}@${await cluster.masterOf(channelOf(r))}`))}`);
        console.log((await (await fetch(B.url + "/metrics")).text()).split("\n").filter((l) => /sio_redis/.test(l) && !l.startsWith("#")).map((l) => `# dbg B ${l}`).join("\n"));
        console.log(B.logs().split("\n").filter((l) => !/Failed to connect/.test(l)).slice(-30).map((l) => `# dbg ${l}`).join("\n"));
      }
      // ---- goals
      assert.equal(A.child.exitCode, null, "instance A still runs");
      assert.equal(B.child.exitCode, null, "instance B still runs");
      assert.ok(!/panicked/.test(A.logs() + B.logs() + hook.logs()), `no panic\n${logs()}`);
      assert.ok(resumeAfterPromotion <= 3000, `delivery resumed ${resumeAfterPromotion} ms after the promotion\n${logs()}`);
      assert.ok(resumed - promotedAt <= 3000 + 1000, `every busy member got post-promotion messages ${resumed - promotedAt} ms after it`);
      for (const r of busyRuns) {
        for (const l of r.lost) {
          assert.ok(l.at >= killedAt - 1000 && l.at <= r.resumedAt, `message ${l.seq} lost outside the gap (sent ${l.at - killedAt} ms after the kill)`);
        }
        assert.equal(r.duplicates, 0, "no duplicates in the busy room");
      }
      for (const r of otherRuns) {
        assert.equal(r.duplicates, 0, "no duplicates in the other rooms");
        for (const l of r.lost) assert.ok(l.at >= killedAt - 1000 && l.at <= resumed, `other-shard message ${l.seq} lost outside the gap`);
      }
      const late = allHealth.filter((s) => s.status === "timeout" || s.status === "error" || s.ms > 1000);
      assert.deepEqual(late, [], "/health answered within 1 s throughout");
      assert.ok(hookHealth.samples.every((s) => s.ms <= 1000 && typeof s.status === "number"), `webhook /health within 1 s: ${codes(hookHealth.samples)}`);
      const gap = (samples) => samples.filter((s) => s.t > killedAt + 500 && s.t < promotedAt - 300);
      for (const [name, p] of [["A", health[0]], ["B", health[1]]]) {
        assert.ok(gap(p.samples).some((s) => s.status === 503), `${name} /health answers 503 while the dead master's slots are not served: ${codes(p.samples)}`);
        const tail = p.samples.filter((s) => s.t > rejoinedAt);
        assert.ok(tail.length > 3 && tail.every((s) => s.status === 200), `${name} /health is 200 once the cluster serves again: ${codes(p.samples)}`);
        const backAt = p.samples.find((s) => s.t > promotedAt && s.status === 200);
        assert.ok(backAt && backAt.t - promotedAt <= 3000, `${name} /health back to 200 within 3 s of the promotion: ${codes(p.samples)}`);
      }
      assert.deepEqual(false200, [], "every webhook 200 was delivered");
      if (adapter === "classic") {
        assert.ok(posts.some((p) => p.status === 200 && p.t > rejoinedAt), `the webhook delivers again after the failover: ${JSON.stringify(hookCounts)}`);
      } else {
        // The webhook's redis mode is an @socket.io/redis-emitter (classic PUBLISH), which a
        // sharded server does not hear: PUBLISH reports no receiver and the webhook answers 503.
        assert.ok(posts.every((p) => p.status === 503), `sharded: the emitter's PUBLISH reaches no server, so 503: ${JSON.stringify(hookCounts)}`);
      }
      // The server gives up on Redis after 0.5 s; the rest of the budget is for a loaded 2-core machine.
      assert.ok(statsPoll.samples.every((s) => typeof s.status === "number" && s.ms <= 1500), `/stats answered within 1.5 s throughout: ${codes(statsPoll.samples)}`);
      const statsTail = statsPoll.samples.filter((s) => s.t > promotedAt + 3000);
      assert.ok(statsTail.length > 0 && statsTail.every((s) => s.status === 200), `/stats answers after the failover: ${codes(statsPoll.samples)}`);
      const stats = await (await fetch(`${B.url}/stats`)).json();
      const up = stats.instances.filter((i) => i.instanceId.startsWith(`fo-${adapter}-`) && i.status === "up");
      assert.equal(up.length, 2, `presence of both instances after the failover: ${JSON.stringify(stats)}`);
      assert.equal(role, "replica", "the old master rejoined as a replica");
      // After the rejoin, nothing is lost.
      for (const r of busyRuns) assert.ok(r.lost.every((l) => l.at < rejoinedAt), "no loss after the old master rejoined");
    });
  });
}

describe("manual failover (CLUSTER FAILOVER) with REDIS_ADAPTER=sharded", () => {
  const closers = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  // The old master stays up and, as it becomes a replica, ends the channel's subscriptions with a
  // `sunsubscribe` push: the subscription must move to the new master. A replica also accepts
  // SSUBSCRIBE for its master's slots, so a subscription sent by a stale slot map lands on the
  // demoted master and hears the channel only once the new master counts it as a replica (up to
  // 1.6 s of losses seen); one sent again by a later map adds a second subscription (every message
  // twice). Where the subscription ends up is checked on the nodes themselves.
  test("the sunsubscribe push moves the room's subscription to the new master", { timeout: 60000 }, async () => {
    await cluster.waitHealthy();
    const env = { REDIS_MODE: "cluster", REDIS_NODES: cluster.nodesJson, REDIS_ADAPTER: "sharded", RUST_LOG: "warn" };
    const A = await startServer({ env: { ...env, INSTANCE_ID: "mf-a" } });
    closers.push(() => A.stop());
    const B = await startServer({ env: { ...env, INSTANCE_ID: "mf-b" } });
    closers.push(() => B.stop());
    const room = "mf-room";
    const master = await cluster.masterOf(channelOf(room));
    const topo = await cluster.topology();
    const replica = topo.find((n) => n.masterId === topo.find((m) => m.port === master).id && !n.failed)?.port;
    assert.ok(replica, `a replica of :${master}`);
    const received = [];
    const sock = await member(B.url, room, received);
    closers.push(() => sock.disconnect());
    const sender = io(A.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
    closers.push(() => sender.disconnect());
    await once(sender, "connect", 5000);
    await waitFor(async () => {
      await sender.timeout(2000).emitWithAck("message", { roomId: room, message: "warm", seq: 0 });
      return received.some((m) => m.seq === 0);
    }, 10000, "warm-up delivery");
    received.length = 0;
    const resubscribes = async () => Number((await (await fetch(`${B.url}/metrics`)).text()).match(/^sio_redis_resubscribes_total (\d+)/m)?.[1] ?? NaN);
    const before = await resubscribes();
    const s = stream(sender, room);
    closers.push(() => s.stop());
    await sleep(1000);
    const failoverAt = Date.now();
    assert.equal(await redisCli(["-p", String(replica), "cluster", "failover"]), "OK");
    await waitFor(async () => (await cluster.masterOf(channelOf(room))) === replica, 10000, "the replica took over");
    const promotedAt = Date.now();
    const shardNumSub = async (port) => Number((await redisCli(["-p", String(port), "pubsub", "shardnumsub", channelOf(room)])).split("\n")[1]);
    // Soon after the switch the one subscription is on the new master, and it stays there.
    await waitFor(async () => (await shardNumSub(replica)) === 1 && (await shardNumSub(master)) === 0, 2000, "the subscription moved to the new master");
    await sleep(3000);
    assert.deepEqual([await shardNumSub(replica), await shardNumSub(master)], [1, 0], "one subscription, on the new master (SHARDNUMSUB new, old)");
    s.stop();
    await sleep(1000);
    const run = delivery(s.sent, received);
    console.log(`# manual failover: ${s.sent.length} sent, lost ${run.lost.length} (sent ${run.lost.length ? `${run.lost[0].at - failoverAt}..${run.lost[run.lost.length - 1].at - failoverAt} ms` : "-"} after CLUSTER FAILOVER), duplicates ${run.duplicates}, resumed ${fmt(run.resumedAt - promotedAt)} after the switch`);
    assert.ok((await resubscribes()) > before, "the subscription was re-issued after the sunsubscribe push");
    // A publish pipeline cut by the switch is re-sent whole by the Redis client after MOVED, so a
    // message it had already published may arrive twice: only inside the switch.
    const twice = [...new Set(received.map((r) => r.seq).filter((q, i, all) => all.indexOf(q) !== i))];
    for (const q of twice) {
      const at = s.sent.find((m) => m.seq === q)?.at;
      assert.ok(at >= failoverAt - 500 && at <= promotedAt + 1500, `message ${q} duplicated outside the switch`);
    }
    for (const l of run.lost) assert.ok(l.at >= failoverAt - 500 && l.at <= promotedAt + 1500, `message ${l.seq} lost outside the switch`);
    assert.ok(run.resumedAt && run.resumedAt - promotedAt <= 3000, `delivery resumed within 3 s of the switch (${run.resumedAt - promotedAt} ms)`);
  });
});
