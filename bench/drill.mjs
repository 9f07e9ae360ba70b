// The failover drill of issue #17 as a CLI: starts `scripts/cluster up` (3 sio-server instances,
// nginx, sio-webhook, redis; no Docker) on free loopback ports, runs tests/js/lib/drill.mjs once and
// prints its numbers as one JSON line (per-client details with --verbose). Everything it starts is
// stopped by PID (`scripts/cluster down`); the drill has deadlines throughout.
//
// --adapter node-streams runs the same drill on Node instead (tests/js/lib/node-cluster.mjs: three
// socket.io 4.8 + redis-streams-adapter 0.3.1 instances behind the same nginx, sio-webhook).
//
//   node bench/drill.mjs [--adapter classic|sharded|streams|node-streams] [--signal SIGKILL|SIGTERM]
//                        [--transports websocket] [--clients 30] [--rate 25] [--after-ms 8000]
//                        [--profile debug|release] [--out FILE] [--verbose]
import { appendFileSync } from "node:fs";
import { startCluster } from "../tests/js/lib/cluster.mjs";
import { runDrill } from "../tests/js/lib/drill.mjs";
import { startNodeStreamsCluster } from "../tests/js/lib/node-cluster.mjs";

const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const num = (name, def) => {
  const v = Number(arg(name, def));
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} must be a positive number`);
    process.exit(2);
  }
  return v;
};
const adapter = arg("adapter", process.env.REDIS_ADAPTER ?? "streams");
const signal = arg("signal", "SIGKILL");
if (!["SIGKILL", "SIGTERM"].includes(signal)) {
  console.error("--signal must be SIGKILL or SIGTERM");
  process.exit(2);
}
const transports = arg("transports") ? arg("transports").split(",") : undefined;
const opts = { signal, transports, clients: num("clients", 30), rate: num("rate", 25), afterMs: num("after-ms", 8000) };

const cluster =
  adapter === "node-streams"
    ? await startNodeStreamsCluster()
    : await startCluster({ profile: arg("profile", "debug"), env: { REDIS_ADAPTER: adapter, RUST_LOG: process.env.RUST_LOG ?? "warn" } });
let result;
try {
  result = await runDrill(cluster, opts, (line) => console.error(`# ${line}`));
} finally {
  await cluster.down({ keep: !result });
}
const { perClient, ...summary } = result;
const line = JSON.stringify({ drill: "failover", adapter, at: new Date().toISOString(), ...summary, ...(args.includes("--verbose") ? { perClient } : {}) });
console.log(line);
if (arg("out")) appendFileSync(arg("out"), `${line}\n`);
