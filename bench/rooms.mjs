// Room-aware delivery at scale (issue #15 item 4): 3 sio-server instances, N rooms whose members
// all sit on one instance each, and chat messages to every room from a client on another instance
// (so every message crosses Redis). For each adapter it measures, from each instance's /metrics,
// how many broadcasts Redis delivered there and how many reached no local socket (or were the
// instance's own, echoed back), and the CPU of Redis (utime+stime of every redis-server process,
// from /proc) and of the 3 servers per 1,000 messages, net of their rate in an idle window.
//
//   node bench/rooms.mjs                 3,000 rooms, 5 messages per room, 3 rounds per setup
//   node bench/rooms.mjs --smoke         30 rooms, 1 message each, 1 round, classic-standalone and
//                                        sharded-cluster only: checks the counts, measures nothing
//   node bench/rooms.mjs --out FILE      also appends one JSON line per round to FILE
//
// Setups (--setups): ADAPTER-REDIS with ADAPTER classic or sharded and REDIS standalone (one
// redis-server) or cluster (3 masters, no replicas); all four by default. SIO_SERVER_BIN picks the server binary (default target/debug/sio-server).
// Everything it starts is stopped by PID; every wait has a deadline; the whole run is bounded.
import { createRequire } from "node:module";
import { readFileSync, appendFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { startServer, waitFor, sleep } from "../tests/js/lib/server.mjs";
import { startRedis, startRedisCluster, redisCli } from "../tests/js/lib/redis.mjs";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, dflt) => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  return v;
};
const smoke = flag("--smoke");
const ROOMS = Number(option("--rooms", smoke ? 30 : 3000));
const PER_ROOM = Number(option("--messages-per-room", smoke ? 1 : 5));
const ROUNDS = Number(option("--rounds", smoke ? 1 : 3));
const OUT = option("--out", null);
const SETUPS = option("--setups", smoke ? "classic-standalone,sharded-cluster"
  : "classic-standalone,sharded-standalone,classic-cluster,sharded-cluster").split(",");
const INSTANCES = 3;
const ROOMS_PER_SOCKET = 20;
// Messages in flight per sender, each until its member received it (not just until the ack).
// 1 by default (the published rows). The smoke run keeps 16 in flight, so queued publishes to
// different slots share a batch: on a Redis Cluster that once failed whole with CrossSlot and
// lost acked messages (BENCHMARKS.md); the smoke's lost = 0 check guards it.
const WINDOW = Number(option("--window", smoke ? 16 : 1));
// Instances holding members of each room (1: the setup; 2: a message reaches two
// instances, never the sender's, which isolates what one more receiving instance costs).
const SPREAD = Number(option("--spread", 1));
const RUN_DEADLINE_MS = smoke ? 120_000 : 900_000;
for (const [name, v] of [["--rooms", ROOMS], ["--messages-per-room", PER_ROOM], ["--rounds", ROUNDS], ["--window", WINDOW], ["--spread", SPREAD]]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
}
if (ROOMS % INSTANCES !== 0) throw new Error(`--rooms must be a multiple of ${INSTANCES}`);
if (SPREAD >= INSTANCES) throw new Error(`--spread must be below ${INSTANCES}: the sender's instance holds no member`);

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
const roomName = (i) => `rooms-bench-${i}`;
const ownerOf = (i) => i % INSTANCES;

/** utime+stime of a process, in ms (fields 14 and 15 of /proc/PID/stat, after the comm field). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}
const totalCpuMs = (pids) => pids.reduce((s, p) => s + cpuMs(p), 0);

async function redisPid(port) {
  const info = await redisCli(["-p", String(port), "info", "server"]);
  const m = /process_id:(\d+)/.exec(info);
  if (!m) throw new Error(`no process_id in INFO of redis on port ${port}: ${info.slice(0, 200)}`);
  return Number(m[1]);
}

/** The adapter counters of one instance's /metrics. */
async function adapterCounters(url) {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url}/metrics answered ${res.status}`);
  const text = await res.text();
  const get = (re) => {
    const m = re.exec(text);
    if (!m) throw new Error(`${url}/metrics lacks ${re}`);
    return Number(m[1]);
  };
  return {
    delivered: get(/^sio_adapter_broadcasts_in_total\{outcome="delivered"\} (\d+)$/m),
    unused: get(/^sio_adapter_broadcasts_in_total\{outcome="unused"\} (\d+)$/m),
    echo: get(/^sio_adapter_broadcasts_in_total\{outcome="echo"\} (\d+)$/m),
  };
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, timeout: 10000 });
    const t = setTimeout(() => reject(new Error(`connect to ${url} timed out`)), 15000);
    s.once("connect", () => (clearTimeout(t), resolve(s)));
    s.once("connect_error", (e) => (clearTimeout(t), reject(e)));
  });
}

/** Starts Redis for a setup; resolves to {env, pids, stop}. */
async function startRedisFor(setup) {
  const [adapter, kind] = setup.split("-");
  if (!["classic", "sharded"].includes(adapter) || !["standalone", "cluster"].includes(kind)) {
    throw new Error(`unknown setup ${setup}: expected (classic|sharded)-(standalone|cluster)`);
  }
  if (kind === "standalone") {
    const r = await startRedis();
    return { env: { REDIS_URL: r.url, REDIS_ADAPTER: adapter }, pids: [r.pid()], ports: [r.port], stop: () => r.stop() };
  }
  const c = await startRedisCluster();
  const pids = await Promise.all(c.ports.map(redisPid));
  return {
    env: { REDIS_MODE: "cluster", REDIS_NODES: c.nodesJson, REDIS_ADAPTER: adapter },
    pids,
    ports: c.ports,
    stop: () => c.stop(),
  };
}

/** Shard channels of the bench's rooms subscribed across the cluster's nodes. */
async function roomShardChannels(ports) {
  let n = 0;
  for (const p of ports) {
    const out = await redisCli(["-p", String(p), "pubsub", "shardchannels", "socket.io#/#rooms-bench-*"]);
    n += out ? out.split("\n").filter(Boolean).length : 0;
  }
  return n;
}

/** One setup: Redis, 3 instances, members joined; then ROUNDS measured rounds. */
async function runSetup(setup) {
  const redis = await startRedisFor(setup);
  const servers = [];
  const sockets = [];
  try {
    for (let i = 0; i < INSTANCES; i++) {
      servers.push(await startServer({ env: { ...redis.env, INSTANCE_ID: `rooms-${i + 1}` } }));
    }
    // Members: each instance's rooms are shared by sockets on that instance only.
    const received = new Map();
    const waiting = new Map(); // message key -> resolves when its member received it
    for (let k = 0; k < INSTANCES; k++) {
      // Room r's members sit on instances r % 3, r % 3 + 1, …, SPREAD of them.
      const owned = [];
      for (let r = 0; r < ROOMS; r++) if ((k - ownerOf(r) + INSTANCES) % INSTANCES < SPREAD) owned.push(r);
      for (let j = 0; j < owned.length; j += ROOMS_PER_SOCKET) {
        const s = await connect(servers[k].url);
        sockets.push(s);
        s.on("message", (m) => {
          received.set(m.roomId, (received.get(m.roomId) ?? 0) + 1);
          waiting.get(m.metadata?.key)?.();
        });
        for (const r of owned.slice(j, j + ROOMS_PER_SOCKET)) {
          const ack = await s.timeout(10000).emitWithAck("join", roomName(r));
          if (!ack?.ok) throw new Error(`join ${roomName(r)} refused: ${JSON.stringify(ack)}`);
        }
      }
    }
    // The sharded adapter subscribes each room's channel asynchronously after the join.
    if (setup.startsWith("sharded")) {
      await waitFor(async () => (await roomShardChannels(redis.ports)) >= ROOMS, 30000,
        async () => `only ${await roomShardChannels(redis.ports)} of ${ROOMS} room channels subscribed`);
      // PUBSUB SHARDCHANNELS lists a channel once however many instances subscribe: let the rest land.
      if (SPREAD > 1) await sleep(2000);
    }
    // Senders: one per instance; the one on instance j writes to the rooms owned by j+1.
    const senders = [];
    for (let j = 0; j < INSTANCES; j++) {
      const s = await connect(servers[j].url);
      sockets.push(s);
      senders.push(s);
    }
    const results = [];
    for (let round = 1; round <= ROUNDS; round++) {
      results.push(await measureRound(setup, round, servers, senders, redis.pids, received, waiting));
    }
    return results;
  } finally {
    for (const s of sockets) s.disconnect();
    for (const s of servers) await s.stop();
    await redis.stop();
  }
}

async function measureRound(setup, round, servers, senders, redisPids, received, waiting) {
  const before = await Promise.all(servers.map((s) => adapterCounters(s.url)));
  received.clear();
  // Idle window first: what Redis burns with the servers connected and nothing sent.
  const serverPids = servers.map((s) => s.child.pid);
  const idleStart = totalCpuMs(redisPids);
  const idleServerStart = totalCpuMs(serverPids);
  const idleT0 = performance.now();
  await sleep(smoke ? 300 : 2000);
  const idleSeconds = (performance.now() - idleT0) / 1000;
  const idleMsPerS = (totalCpuMs(redisPids) - idleStart) / idleSeconds;
  const idleServerMsPerS = (totalCpuMs(serverPids) - idleServerStart) / idleSeconds;

  const cpu0 = totalCpuMs(redisPids);
  const serverCpu0 = totalCpuMs(serverPids);
  const t0 = performance.now();
  let refused = 0;
  await Promise.all(senders.map(async (s, j) => {
    const target = (j + 1) % INSTANCES;
    const queue = [];
    for (let m = 0; m < PER_ROOM; m++) for (let r = target; r < ROOMS; r += INSTANCES) queue.push([r, m]);
    let next = 0;
    const worker = async () => {
      while (next < queue.length) {
        const [r, m] = queue[next++];
        const key = `${round}.${r}.${m}`;
        let arrived;
        const delivered = new Promise((resolve) => (arrived = resolve));
        waiting.set(key, arrived);
        const ack = await s.timeout(10000).emitWithAck("message", { roomId: roomName(r), message: `m${m}`, sender: "bench", key });
        if (!ack?.ok) refused++;
        // At most 5 s per message: a lost one is counted below, not waited for forever.
        let timer;
        await Promise.race([delivered, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
        clearTimeout(timer);
        waiting.delete(key);
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
  }));
  const messages = ROOMS * PER_ROOM;
  const expected = messages * SPREAD;
  const count = () => [...received.values()].reduce((a, b) => a + b, 0);
  // Drain: at most 10 s for the last deliveries.
  const drainDeadline = Date.now() + 10000;
  while (count() < expected && Date.now() < drainDeadline) await sleep(20);
  const seconds = (performance.now() - t0) / 1000;
  const redisCpu = totalCpuMs(redisPids) - cpu0;
  const serverCpu = totalCpuMs(serverPids) - serverCpu0;
  // Late duplicates would show as count() > messages.
  await sleep(smoke ? 200 : 500);
  const after = await Promise.all(servers.map((s) => adapterCounters(s.url)));
  const perInstance = after.map((a, i) => {
    const d = { delivered: a.delivered - before[i].delivered, unused: a.unused - before[i].unused, echo: a.echo - before[i].echo };
    const inbound = d.delivered + d.unused + d.echo;
    return { ...d, received: inbound, wasted_share: inbound ? (d.unused + d.echo) / inbound : 0 };
  });
  const totals = perInstance.reduce((t, p) => ({ received: t.received + p.received, wasted: t.wasted + p.unused + p.echo }), { received: 0, wasted: 0 });
  const delivered = count();
  const netCpu = Math.max(0, redisCpu - idleMsPerS * seconds);
  const netServerCpu = Math.max(0, serverCpu - idleServerMsPerS * seconds);
  const line = {
    scenario: "rooms",
    setup,
    adapter: setup.split("-")[0],
    redis: setup.endsWith("cluster") ? "cluster-3-masters" : "standalone",
    round,
    rooms: ROOMS,
    window: WINDOW,
    messages,
    refused,
    delivered,
    spread: SPREAD,
    lost: Math.max(0, expected - delivered),
    duplicates: Math.max(0, delivered - expected),
    per_instance: perInstance,
    redis_messages_in: totals.received,
    wasted_share: totals.received ? totals.wasted / totals.received : 0,
    seconds: Number(seconds.toFixed(2)),
    redis_cpu_ms: Number(redisCpu.toFixed(1)),
    redis_idle_cpu_ms_per_s: Number(idleMsPerS.toFixed(2)),
    redis_cpu_ms_per_1000: Number(((netCpu * 1000) / messages).toFixed(2)),
    server_cpu_ms: Number(serverCpu.toFixed(1)),
    server_cpu_ms_per_1000: Number(((netServerCpu * 1000) / messages).toFixed(2)),
    server_bin: process.env.SIO_SERVER_BIN ?? "target/debug/sio-server",
    clk_tck: CLK_TCK,
  };
  console.error(`   ${setup} round ${round}: ${messages} messages, delivered ${delivered}, Redis delivered ${totals.received} ` +
    `(${(line.wasted_share * 100).toFixed(1)}% unused or echo), Redis CPU ${line.redis_cpu_ms_per_1000} ms/1,000 msgs, ` +
    `servers ${line.server_cpu_ms_per_1000} ms/1,000 msgs`);
  if (OUT) appendFileSync(OUT, JSON.stringify(line) + "\n");
  return line;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (x) => `${(x * 100).toFixed(1)}%`;

/** The markdown table of BENCHMARKS.md's "Room-aware delivery" section. */
function table(all) {
  const rows = [
    "| adapter | Redis | messages | Redis → instances | per instance: delivered / unused / echo (share wasted) | lost | Redis CPU per 1,000 messages (median; runs) | 3 servers' CPU per 1,000 messages (median) |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const [setup, lines] of all) {
    const last = lines[lines.length - 1];
    const inst = last.per_instance.map((p) => `${p.delivered} / ${p.unused} / ${p.echo} (${pct(p.wasted_share)})`).join(" · ");
    const cpu = lines.map((l) => l.redis_cpu_ms_per_1000.toFixed(1)).join(", ");
    rows.push(`| ${last.adapter} | ${last.redis} | ${last.messages.toLocaleString("en")} to ${last.rooms.toLocaleString("en")} rooms | ` +
      `${last.redis_messages_in.toLocaleString("en")} (${pct(last.wasted_share)} wasted) | ${inst} | ${lines.reduce((s, l) => s + l.lost, 0)} | ` +
      `${median(lines.map((l) => l.redis_cpu_ms_per_1000)).toFixed(1)} ms (${cpu}) | ` +
      `${median(lines.map((l) => l.server_cpu_ms_per_1000)).toFixed(1)} ms |`);
  }
  return rows.join("\n");
}

/** --smoke checks: counts only (robust on a loaded machine), never speed. */
function check(all) {
  const failures = [];
  for (const [setup, lines] of all) {
    for (const l of lines) {
      if (l.refused) failures.push(`${setup}: ${l.refused} messages refused`);
      if (l.lost || l.duplicates) failures.push(`${setup}: lost ${l.lost}, duplicates ${l.duplicates}`);
      const useful = l.per_instance.reduce((s, p) => s + p.delivered, 0);
      if (useful !== l.messages * l.spread) failures.push(`${setup}: ${useful} useful adapter messages for ${l.messages} sent to ${l.spread} instance(s)`);
      if (l.adapter === "classic" && l.redis_messages_in !== INSTANCES * l.messages) {
        failures.push(`${setup}: Redis delivered ${l.redis_messages_in} messages, expected ${INSTANCES} x ${l.messages} (one per instance)`);
      }
      if (l.adapter === "sharded" && l.redis_messages_in !== l.messages * l.spread) {
        failures.push(`${setup}: Redis delivered ${l.redis_messages_in} messages, expected ${l.messages} x ${l.spread} (only to the members' instances)`);
      }
    }
  }
  return failures;
}

const watchdog = setTimeout(() => {
  console.error(`bench/rooms.mjs: not done within ${RUN_DEADLINE_MS / 1000} s; giving up`);
  process.exit(1);
}, RUN_DEADLINE_MS);

const all = [];
for (const setup of SETUPS) {
  console.error(`\n==> rooms: ${setup}, ${ROOMS} rooms, ${PER_ROOM} message(s) per room, ${ROUNDS} round(s)`);
  all.push([setup, await runSetup(setup)]);
}
clearTimeout(watchdog);
console.log(table(all));
const failures = check(all);
if (failures.length) {
  console.error(`\nbench/rooms.mjs: ${failures.length} check(s) failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
