// The docker-compose topology without Docker, for the suites that need real nginx in front of
// sio-1..3: runs `scripts/cluster up` on free loopback ports with CLUSTER_DIR in a temp dir, and
// `scripts/cluster down` (which stops its processes by PID) when done, also on exit and signals.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, chmodSync, readFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** The launcher under test. */
export const CLUSTER = path.join(root, "scripts/cluster");
/** Instance ids scripts/cluster gives sio-1..3. */
export const INSTANCES = ["sio-1", "sio-2", "sio-3"];

/** `n` distinct free loopback ports. */
export async function freePorts(n) {
  const set = new Set();
  while (set.size < n) set.add(await freePort());
  return [...set];
}

/** Runs a command; resolves to { code, stdout, stderr } (never rejects). */
export function run(cmd, args, { env = process.env, timeout = 60_000 } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout, maxBuffer: 64 << 20, killSignal: "SIGTERM" }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? error.signal ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

/**
 * Starts the cluster (debug binaries; `env`: extra variables for every process, e.g.
 * REDIS_ADAPTER). Resolves to { dir, env, ports, nginxUrl, webhookUrl,
 * pid(name), logTails(lines), down({ keep }) }; rejects with the logs when `up` fails.
 */
export async function startCluster({ profile = "debug", timeout = 240_000, env: extra = {} } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "sio-cluster-test-"));
  chmodSync(dir, 0o755); // nginx workers run as nobody and use temp dirs under it
  const [nginx, webhook, redis, a, b, c] = await freePorts(6);
  const ports = { nginx, webhook, redis, sio: [a, b, c] };
  const env = {
    ...process.env,
    ...extra,
    NGINX_PORT: String(nginx),
    WEBHOOK_PORT: String(webhook),
    REDIS_PORT: String(redis),
    SIO_PORTS: `${a} ${b} ${c}`,
    CLUSTER_DIR: dir,
    CLUSTER_PROFILE: profile,
  };
  let downDone = false;
  const downSync = () => {
    if (downDone) return;
    downDone = true;
    try {
      execFileSync(CLUSTER, ["down"], { env, timeout: 60_000, stdio: "ignore" });
    } catch {}
  };
  const onSignal = () => {
    downSync();
    process.exit(130);
  };
  process.once("exit", downSync);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const logTails = (lines = 40) => {
    const logs = path.join(dir, "logs");
    if (!existsSync(logs)) return "(no logs)";
    return readdirSync(logs)
      .map((f) => `--- ${f} ---\n${readFileSync(path.join(logs, f), "utf8").trimEnd().split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  };
  const cluster = {
    dir,
    env,
    ports,
    nginxUrl: `http://127.0.0.1:${nginx}`,
    webhookUrl: `http://127.0.0.1:${webhook}`,
    logTails,
    /** The pid scripts/cluster recorded for `name` (sio-1, nginx, …). */
    pid: (name) => Number(readFileSync(path.join(dir, "run", `${name}.pid`), "utf8").trim()),
    /** Runs `scripts/cluster up` again: restarts whatever is not running (e.g. a killed instance). */
    async up() {
      const res = await run(CLUSTER, ["up"], { env, timeout });
      if (res.code !== 0) throw new Error(`scripts/cluster up failed (${res.code}):\n${res.stdout}\n${res.stderr}\n${logTails()}`);
    },
    /** Stops everything; keeps CLUSTER_DIR (and prints the logs) when `keep`. */
    async down({ keep = false } = {}) {
      if (!downDone) {
        const res = await run(CLUSTER, ["down"], { env, timeout: 90_000 });
        downDone = true;
        if (res.code !== 0) console.log(`scripts/cluster down: ${res.code}\n${res.stdout}${res.stderr}`);
      }
      process.off("exit", downSync);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (keep) console.log(`cluster logs kept in ${dir}/logs\n${logTails(60)}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
  const res = await run(CLUSTER, ["up"], { env, timeout });
  if (res.code !== 0) {
    const logs = logTails();
    await cluster.down({ keep: true });
    throw new Error(`scripts/cluster up failed (${res.code}):\n${res.stdout}\n${res.stderr}\n${logs}`);
  }
  return cluster;
}
