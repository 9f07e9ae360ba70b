// The scripts/cluster topology with Node instead of sio-server, for the drill's comparison runs:
// redis-server, three fixtures/node-streams-server.mjs (socket.io 4.8 + redis-streams-adapter 0.3.1,
// INSTANCE_ID sio-1..3), the repository's nginx in front, and sio-webhook delivering through nginx.
// Resolves to the subset of startCluster()'s interface the drill uses: {nginxUrl, webhookUrl,
// pid(name), down()}. Everything is stopped by PID.
import { spawn } from "node:child_process";
import { mkdtempSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startRedis } from "./redis.mjs";
import { prepareNginx, startNginx, INSTANCES } from "./nginx.mjs";
import { startWebhook } from "./server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Spawns one Node instance (fixtures/node-streams-server.mjs) on `port`; resolves to its child process once it prints "listening". */
export async function nodeInstance(redisUrl, port, instanceId, env = {}) {
  const child = spawn(process.execPath, [path.join(here, "../fixtures/node-streams-server.mjs")], {
    env: { ...process.env, ...env, REDIS_URL: redisUrl, PORT: String(port), INSTANCE_ID: instanceId },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  child.stderr.on("data", (d) => (logs += d));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${instanceId} did not start in 15 s:\n${logs}`)), 15_000);
    child.once("exit", (code) => reject(new Error(`${instanceId} exited (${code}):\n${logs}`)));
    child.stdout.on("data", (d) => {
      logs += d;
      if (logs.includes("listening")) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return child;
}

/** Starts the Node cluster; `env` goes to the Node instances. */
export async function startNodeStreamsCluster({ env = {} } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "sio-node-cluster-"));
  chmodSync(dir, 0o755);
  const stops = [];
  const down = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const { ports } = await prepareNginx(dir);
    const children = {};
    for (const i of INSTANCES) {
      const child = await nodeInstance(redis.url, ports[i], `sio-${i}`, env);
      children[`sio-${i}`] = child;
      stops.push(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once("exit", r));
          child.kill("SIGKILL");
          await exited;
        }
      });
    }
    const nginx = await startNginx(dir, ports.listen);
    stops.push(() => nginx.stop());
    const nginxUrl = `http://127.0.0.1:${ports.listen}`;
    const hook = await startWebhook({ env: { SOCKETIO_URL: nginxUrl, RUST_LOG: "warn" } });
    stops.push(() => hook.stop());
    return { nginxUrl, webhookUrl: hook.url, pid: (name) => children[name].pid, down };
  } catch (e) {
    await down();
    throw e;
  }
}
