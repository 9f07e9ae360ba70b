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

/**
 * A Redis Cluster of 3 masters (no replicas) on free ports. Resolves to {ports, nodesJson, stop()},
 * nodesJson being the REDIS_NODES value for the servers.
 */
export async function startRedisCluster() {
  findBinary("redis-server");
  const nodes = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => killChild(n.child)));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
  };
  try {
    const ports = [];
    while (ports.length < 3) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    for (const port of ports) {
      const dir = mkdtempSync(path.join(tmpdir(), `sio-redis-cluster-${port}-`));
      const node = { port, dir, child: null };
      nodes.push(node);
      node.child = await spawnRedis(port, dir, [
        "--cluster-enabled", "yes",
        "--cluster-config-file", `nodes-${port}.conf`,
        "--cluster-node-timeout", "2000",
      ]);
    }
    const created = await redisCli(
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"],
      20000,
    );
    if (!created.includes("[OK]")) throw new Error(`redis-cli --cluster create failed:\n${created}`);
    await waitUntil("the cluster did not reach cluster_state:ok", async () => {
      for (const p of ports) {
        const info = await redisCli(["-p", String(p), "cluster", "info"], 1000);
        if (!info.includes("cluster_state:ok")) return false;
      }
      return true;
    }, 15000);
    return {
      ports,
      nodesJson: JSON.stringify(ports.map((port) => ({ host: "127.0.0.1", port }))),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
