// Starts throwaway redis-server processes (standalone, or a 3-master Redis Cluster) on free loopback
// ports for the Redis suites. Every process is stopped by its PID; each gets a fresh tmp directory.
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, sleep } from "./server.mjs";

const installHint = (name) => `${name} is not installed: apt-get install redis-server (scripts/test installs it)`;

function findBinary(name) {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/local/bin"])) {
    const p = path.join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  throw new Error(installHint(name));
}

/** Runs redis-cli with `args`; resolves to its trimmed stdout (with stderr appended when it fails). */
export function redisCli(args, timeoutMs = 3000) {
  return new Promise((resolve) => {
    execFile(findBinary("redis-cli"), args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve(err ? `${stdout}${stderr}${err.message}`.trim() : String(stdout).trim());
    });
  });
}

async function waitUntil(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Spawns one redis-server on `port` in `dir`; resolves to the child once it answers PING. */
async function spawnRedis(port, dir, extra = []) {
  const bin = findBinary("redis-server");
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  child.logs = () => output;
  const spawnError = new Promise((_, reject) => child.once("error", reject));
  spawnError.catch(() => {});
  try {
    await Promise.race([
      spawnError,
      waitUntil(`redis-server on port ${port} did not answer PING`, async () => {
        if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited (${child.exitCode}):\n${output}`);
        const i = extra.indexOf("--requirepass");
        const auth = i >= 0 ? ["-a", extra[i + 1], "--no-auth-warning"] : [];
        return (await redisCli(["-p", String(port), ...auth, "ping"], 1000)) === "PONG";
      }, 10000),
    ]);
  } catch (e) {
    await killChild(child);
    throw e;
  }
  return child;
}

/** Kills a child by its PID (SIGKILL) and waits for it to exit. */
async function killChild(child, signal = "SIGKILL") {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try { process.kill(child.pid, "SIGKILL"); } catch {}
  }, 3000);
  await exited;
  clearTimeout(t);
}

/**
 * A standalone redis-server on a free port, with `extra` redis-server arguments (e.g.
 * ["--requirepass", pw]). Resolves to {port, url, pid(), stop(), restart(), kill()}: kill() stops it
 * by PID (leaving it down), restart() kills it and starts it again on the same port.
 */
export async function startRedis(extra = []) {
  findBinary("redis-server");
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "sio-redis-"));
  let child = await spawnRedis(port, dir, extra);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    logs: () => child.logs(),
    pid: () => child.pid,
    async kill() {
      await killChild(child);
    },
    async start() {
      if (child.exitCode === null && child.signalCode === null) return;
      child = await spawnRedis(port, dir, extra);
    },
    async restart() {
      await killChild(child);
      child = await spawnRedis(port, dir, extra);
    },
    async stop() {
      await killChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One line of `CLUSTER NODES`: {id, port, role ("master"|"replica"), masterId, failed, slots}. */
function parseClusterNodes(text) {
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((line) => {
      const [id, addr, flags, masterId, , , , link, ...slots] = line.trim().split(" ");
      const f = flags.split(",");
      return {
        id,
        port: Number(addr.split("@")[0].split(":").pop()),
        role: f.includes("master") ? "master" : "replica",
        masterId: masterId === "-" ? null : masterId,
        failed: f.includes("fail") || f.includes("fail?") || link !== "connected",
        slots: slots.filter((s) => !s.startsWith("[")),
      };
    });
}

/** Whether `slot` is in one of the `CLUSTER NODES` slot ranges ("0-5460", "7000"). */
const slotIn = (ranges, slot) =>
  ranges.some((r) => {
    const [lo, hi = lo] = r.split("-").map(Number);
    return slot >= lo && slot <= hi;
  });

/**
 * A Redis Cluster on free loopback ports: 3 masters, with `replicas` replicas each (0 or 1), and
 * `cluster-node-timeout 2000`. Resolves to {ports, nodesJson, stop(), ...}, nodesJson being the
 * REDIS_NODES value for the servers. With replicas it also gives what a failover test needs:
 * topology() (the parsed `CLUSTER NODES` of a live node), keySlot(key), masterOf(key) (the port
 * of the master serving the key's slot), kill(port) (SIGKILL by PID, the node stays down),
 * start(port) (the node comes back with its identity: a killed master rejoins as a replica) and
 * waitHealthy() (every slot served, every live replica in sync).
 */
export async function startRedisCluster({ replicas = 0 } = {}) {
  findBinary("redis-server");
  const count = 3 * (1 + replicas);
  const nodes = [];
  const byPort = (port) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no cluster node on port ${port}`);
    return n;
  };
  const args = (port) => [
    "--cluster-enabled", "yes",
    "--cluster-config-file", `nodes-${port}.conf`,
    "--cluster-node-timeout", "2000",
  ];
  const alive = (n) => n.child && n.child.exitCode === null && n.child.signalCode === null;
  const stop = async () => {
    await Promise.all(nodes.map((n) => killChild(n.child)));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
  };
  const cli = (port, ...a) => redisCli(["-p", String(port), ...a], 2000);
  const topology = async () => {
    for (const n of nodes.filter(alive)) {
      const text = await cli(n.port, "cluster", "nodes");
      if (text.includes("myself")) return parseClusterNodes(text);
    }
    throw new Error("no live cluster node answers CLUSTER NODES");
  };
  const keySlot = async (key) => {
    const n = nodes.find(alive);
    return Number(await cli(n.port, "cluster", "keyslot", key));
  };
  const masterOf = async (key) => {
    const slot = await keySlot(key);
    const m = (await topology()).find((x) => x.role === "master" && !x.failed && slotIn(x.slots, slot));
    return m?.port;
  };
  const waitHealthy = (timeoutMs = 20000) =>
    waitUntil("the cluster did not reach cluster_state:ok with its replicas in sync", async () => {
      for (const n of nodes.filter(alive)) {
        const info = await cli(n.port, "cluster", "info");
        if (!info.includes("cluster_state:ok")) return false;
        const repl = await cli(n.port, "info", "replication");
        if (repl.includes("role:slave") && !repl.includes("master_link_status:up")) return false;
      }
      const topo = await topology();
      return topo.filter((x) => x.role === "master" && !x.failed && x.slots.length).length === 3;
    }, timeoutMs);
  try {
    const ports = [];
    while (ports.length < count) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    for (const port of ports) {
      const dir = mkdtempSync(path.join(tmpdir(), `sio-redis-cluster-${port}-`));
      const node = { port, dir, child: null };
      nodes.push(node);
      node.child = await spawnRedis(port, dir, args(port));
    }
    const created = await redisCli(
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
      30000,
    );
    if (!created.includes("[OK]")) throw new Error(`redis-cli --cluster create failed:\n${created}`);
    await waitHealthy(20000);
    return {
      ports,
      nodesJson: JSON.stringify(ports.map((port) => ({ host: "127.0.0.1", port }))),
      stop,
      topology,
      keySlot,
      masterOf,
      waitHealthy,
      pid: (port) => byPort(port).child.pid,
      logs: (port) => byPort(port).child.logs(),
      async kill(port) {
        await killChild(byPort(port).child);
      },
      async start(port) {
        const n = byPort(port);
        if (alive(n)) return;
        n.child = await spawnRedis(port, n.dir, args(port));
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
