// The repository's nginx configuration on this machine: a copy of nginx/ in a temp directory with
// the compose service names (socketio-N:3000) mapped to loopback ports, run by the real nginx
// binary (`nginx -t`, or in the foreground, stopped by PID).
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync, cpSync, readdirSync, mkdirSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, sleep } from "./server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** The nginx binary ($NGINX_BIN, else Debian's). */
export const NGINX = process.env.NGINX_BIN ?? "/usr/sbin/nginx";
/** Instance numbers of the compose file (socketio-1..3). */
export const INSTANCES = [1, 2, 3];

/**
 * Copies nginx/ into `dir` with the compose service names mapped to loopback ports, the pid,
 * error log and temp paths inside it and, for `alternative` (e.g. "alternatives/ip-hash.conf"),
 * conf.d/socketio.conf replaced by that file. `edit(text)` may rewrite conf.d/socketio.conf
 * further. Resolves to { dir, ports: { listen, 1, 2, 3 } }.
 */
export async function prepareNginx(dir, { alternative, edit } = {}) {
  cpSync(path.join(root, "nginx"), dir, { recursive: true });
  if (alternative) {
    writeFileSync(path.join(dir, "conf.d/socketio.conf"), readFileSync(path.join(root, "nginx", alternative), "utf8"));
  }
  let main = readFileSync(path.join(dir, "nginx.conf"), "utf8");
  assert.match(main, /^pid\s/m);
  assert.match(main, /^error_log\s/m);
  main = main
    .replace(/^pid\s+[^;]+;/m, `pid ${dir}/nginx.pid;`)
    .replace(/^error_log\s+[^;\s]+/m, `error_log ${dir}/error.log`)
    .replaceAll("/tmp/nginx-", `${dir}/tmp-`);
  assert.ok(!main.includes("/tmp/nginx"), "every /tmp path was moved");
  writeFileSync(path.join(dir, "nginx.conf"), main);
  const ports = { listen: await freePort() };
  for (const i of INSTANCES) ports[i] = await freePort();
  for (const f of readdirSync(path.join(dir, "conf.d"))) {
    const p = path.join(dir, "conf.d", f);
    let text = readFileSync(p, "utf8");
    if (edit && f === "socketio.conf") text = edit(text);
    for (const i of INSTANCES) text = text.replaceAll(`socketio-${i}:3000`, `127.0.0.1:${ports[i]}`);
    assert.ok(!/socketio-\d/.test(text.replace(/#[^\n]*/g, "")), `${f}: every service name was mapped`);
    text = text.replace(/listen\s+3000((?:\s+[^;\s]+)*)\s*;/g, (_, params) => `listen 127.0.0.1:${ports.listen}${params};`);
    writeFileSync(p, text);
  }
  mkdirSync(path.join(dir, "logs"), { recursive: true }); // nginx -t opens <prefix>/logs/error.log first
  return { dir, ports };
}

/** `nginx -t` on a prepared directory: resolves to { code, out }. */
export function nginxTest(dir) {
  return new Promise((resolve) => {
    execFile(NGINX, ["-t", "-p", dir, "-c", path.join(dir, "nginx.conf")], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, out: String(stdout) + String(stderr) }),
    );
  });
}

/**
 * Runs nginx in the foreground on a prepared directory until it answers /nginx-health on
 * `port`. Resolves to { child, stop(), errorLog() }.
 */
export async function startNginx(dir, port, timeoutMs = 15_000) {
  const child = spawn(NGINX, ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const errorLog = () => output + (existsSync(path.join(dir, "error.log")) ? readFileSync(path.join(dir, "error.log"), "utf8") : "");
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGQUIT"); // graceful: workers finish, then the master exits
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${errorLog()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/nginx-health`, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not answer within ${timeoutMs} ms:\n${errorLog()}`);
    }
    await sleep(50);
  }
  return { child, stop, errorLog };
}
