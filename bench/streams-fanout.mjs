// Fan-out of the streams adapter against our classic adapter and Node's socket.io 4.8 +
// @socket.io/redis-streams-adapter 0.3.1 (issue #17): 3 instances on one redis-server, C stock
// clients in one room spread over them, one sender per instance posting chat messages (acked, at
// most W in flight each) for T seconds. Prints one JSON line per setup: messages acked per second,
// deliveries per second (messages × receivers that arrived), and Redis CPU (INFO cpu, user+sys)
// per 1,000 messages. Everything it starts is stopped by PID; every wait has a deadline.
//
//   node bench/streams-fanout.mjs [--setups streams,classic,node-streams] [--clients 30]
//                                 [--seconds 5] [--window 20] [--out FILE]
//   node bench/streams-fanout.mjs --redis cluster --setups streams,sharded
//        the same on a 3-master Redis Cluster (ours only): Redis CPU per 1,000 messages is then
//        given per master (the stream's master carries every XADD and XREAD)
//   node bench/streams-fanout.mjs --loadgen [--receivers 1000] ...
//        the load from target/release/sio-bench (cargo build --release -p sio-bench) instead of
//        stock clients in this process, which saturate first: its fanout scenario with R
//        receivers over the 3 instances, 6 senders, 32 messages in flight each, 2 s warm-up.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { startServer, freePort, waitFor, sleep } from "../tests/js/lib/server.mjs";
import { startRedis, startRedisCluster, redisCli } from "../tests/js/lib/redis.mjs";
import { nodeInstance } from "../tests/js/lib/node-cluster.mjs";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const argv = process.argv.slice(2);
const option = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const SETUPS = option("--setups", "streams,classic,node-streams").split(",");
const CLIENTS = Number(option("--clients", 30));
const SECONDS = Number(option("--seconds", 5));
const WINDOW = Number(option("--window", 20));
const OUT = option("--out", null);
const LOADGEN = argv.includes("--loadgen");
const CLUSTER = option("--redis", "standalone") === "cluster";

/** A standalone redis-server, or a 3-master Cluster behind the same interface: ports, env, stop. */
async function redisSetup() {
  if (CLUSTER) {
    const rc = await startRedisCluster();
    return { ports: rc.ports, env: { REDIS_MODE: "cluster", REDIS_NODES: rc.nodesJson }, stop: () => rc.stop() };
  }
  const r = await startRedis();
  return { ports: [r.port], url: r.url, env: { REDIS_URL: r.url }, stop: () => r.stop(), pid: () => r.pid(), port: r.port };
}
const RECEIVERS = Number(option("--receivers", 1000));

async function redisCpu(port) {
  const info = await redisCli(["-p", String(port), "INFO", "cpu"]);
  const v = (k) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return v("used_cpu_user") + v("used_cpu_sys");
}

async function startInstances(setup, redis) {
  const stops = [];
  const urls = [];
  const pids = [];
  for (let i = 1; i <= 3; i++) {
    if (setup === "node-streams") {
      const port = await freePort();
      const child = await nodeInstance(redis.url, port, `n${i}`);
      urls.push(`http://127.0.0.1:${port}`);
      pids.push(child.pid);
      stops.push(async () => {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      });
    } else {
      const s = await startServer({
        env: { ...redis.env, REDIS_ADAPTER: setup, INSTANCE_ID: `s${i}`, RUST_LOG: "error" },
      });
      urls.push(s.url);
      stops.push(() => s.stop("SIGKILL"));
      pids.push(s.child.pid);
    }
  }
  return { urls, pids, stop: () => Promise.all(stops.map((f) => f())) };
}

async function connect(url) {
  const s = io(url, { forceNew: true, transports: ["websocket"], reconnection: false });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no connect to ${url}`)), 10_000);
    s.once("connect", () => (clearTimeout(t), resolve()));
  });
  return s;
}

/** One sio-bench fanout run against the 3 instances; its JSON result with Redis CPU added. */
async function runLoadgen(setup) {
  const redis = await redisSetup();
  const inst = await startInstances(setup, redis);
  try {
    const bin = new URL("../target/release/sio-bench", import.meta.url).pathname;
    const servers = inst.urls.map((u) => u.replace("http://", "")).join(",");
    const cpu0 = await redisCpu(redis.ports[0]);
    const out = execFileSync(bin, [
      "fanout", "--label", setup, "--servers", servers, "--pids", inst.pids.join(","),
      "--receivers", String(RECEIVERS), "--senders", "6", "--window", "32", "--warmup", "2",
      "--duration", String(SECONDS), "--drain", "5",
    ], { timeout: 120_000, maxBuffer: 16 << 20 }).toString().trim().split("\n").at(-1);
    const cpu1 = await redisCpu(redis.ports[0]);
    const r = JSON.parse(out);
    const sent = r.messages_sent ?? null;
    const result = { bench: "streams-fanout-loadgen", setup, at: new Date().toISOString(), redisCpuSeconds: Math.round((cpu1 - cpu0) * 1000) / 1000, ...r };
    if (sent) result.redisCpuMsPer1000 = Math.round(((cpu1 - cpu0) * 1e9) / sent) / 1000;
    console.log(JSON.stringify(result));
    if (OUT) appendFileSync(OUT, `${JSON.stringify(result)}\n`);
  } finally {
    await inst.stop();
    await redis.stop();
  }
}

async function run(setup) {
  if (LOADGEN) return runLoadgen(setup);
  const redis = await redisSetup();
  const inst = await startInstances(setup, redis);
  const clients = [];
  try {
    const room = `fanout-${setup}`;
    let received = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const c = await connect(inst.urls[i % 3]);
      const ack = await c.timeout(5000).emitWithAck("join", room);
      if (!ack?.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
      c.on("message", () => received++);
      clients.push(c);
    }
    const senders = await Promise.all(inst.urls.map(connect));
    clients.push(...senders);
    // Warm-up: one message reaches everyone.
    await senders[0].timeout(5000).emitWithAck("message", { roomId: room, message: "warm" });
    await waitFor(() => received >= CLIENTS, 10_000, "warm-up delivered");
    await sleep(300);
    received = 0;
    for (const p of redis.ports) await redisCli(["-p", String(p), "CONFIG", "RESETSTAT"]);
    const cpu0 = await Promise.all(redis.ports.map(redisCpu));
    let acked = 0;
    let failed = 0;
    const until = Date.now() + SECONDS * 1000;
    const started = Date.now();
    await Promise.all(
      senders.map(async (s) => {
        const lane = async () => {
          while (Date.now() < until) {
            try {
              const a = await s.timeout(10_000).emitWithAck("message", { roomId: room, message: "x" });
              if (a?.ok) acked++;
              else failed++;
            } catch {
              failed++;
            }
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, lane));
      }),
    );
    const sendSeconds = (Date.now() - started) / 1000;
    // Deliveries still in flight: wait until the count stops growing (at most 10 s).
    let last = -1;
    const settleUntil = Date.now() + 10_000;
    while (received !== last && Date.now() < settleUntil) {
      last = received;
      await sleep(500);
    }
    const cpu1 = await Promise.all(redis.ports.map(redisCpu));
    const perNode = cpu1.map((c, k) => (acked ? Math.round(((c - cpu0[k]) * 1e9) / acked) / 1000 : null));
    // Where Redis spent its time: calls and µs per command, the top 5.
    const stats = (await redisCli(["-p", String(redis.ports[0]), "INFO", "commandstats"]))
      .split("\n")
      .map((l) => /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(l.trim()))
      .filter(Boolean)
      .map(([, cmd, calls, usec]) => ({ cmd, calls: Number(calls), usec: Number(usec) }))
      .sort((x, y) => y.usec - x.usec)
      .slice(0, 5);
    const result = {
      bench: "streams-fanout",
      setup,
      at: new Date().toISOString(),
      clients: CLIENTS,
      seconds: SECONDS,
      window: WINDOW,
      acked,
      failed,
      messagesPerSec: Math.round(acked / sendSeconds),
      deliveries: received,
      expected: acked * CLIENTS,
      deliveriesPerSec: Math.round(received / sendSeconds),
      redis: CLUSTER ? "cluster" : "standalone",
      redisCpuMsPer1000: perNode.reduce((a, b) => a + b, 0),
      ...(CLUSTER ? { redisCpuMsPer1000PerMaster: perNode } : { redisTop: stats }),
    };
    console.log(JSON.stringify(result));
    if (OUT) appendFileSync(OUT, `${JSON.stringify(result)}\n`);
    return result;
  } finally {
    for (const c of clients) c.disconnect();
    await inst.stop();
    await redis.stop();
  }
}

for (const setup of SETUPS) await run(setup);
process.exit(0);
