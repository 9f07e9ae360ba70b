// Starts and stops real sio-server processes for the JS suites. Each server gets a free loopback
// port; processes are stopped by PID (never by name).
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { existsSync, createWriteStream, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Path of a built binary: $SIO_SERVER_BIN for sio-server, else target/debug/<name>. */
export function binary(name) {
  if (name === "sio-server" && process.env.SIO_SERVER_BIN) return process.env.SIO_SERVER_BIN;
  const candidates = [
    path.join(root, "target/debug", name),
    path.join(root, "target/debug/examples", name),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`${name} is not built: run cargo build --all-targets (looked in ${candidates.join(", ")})`);
  return found;
}

const handedOut = new Set();

/**
 * A free TCP port on 127.0.0.1, never one this process was already given: the OS may offer a
 * just-closed port again, and two servers of one test (e.g. PORT and WEBHOOK_PORT) would collide.
 */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

async function waitForPort(port, child, timeoutMs = 15000, logs = () => "") {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited early with code ${child.exitCode}:\n${logs()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=abc`);
      await res.text();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`server on port ${port} did not start in ${timeoutMs} ms`);
}

/**
 * Starts a server process. `name` is "sio-server" or an example ("testbed"); `args` are extra
 * arguments; `env` extra environment variables. Resolves to { port, url, child, stop(), logs() }.
 */
export async function startServer({ name = "sio-server", args = [], env = {}, port } = {}) {
  port = port ?? (await freePort());
  const child = spawn(binary(name), args, {
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), WEBHOOK_PORT: "off", RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  // SIO_TEST_LOG_DIR keeps every server's output in a file, for debugging failures.
  if (process.env.SIO_TEST_LOG_DIR) {
    mkdirSync(process.env.SIO_TEST_LOG_DIR, { recursive: true });
    const file = createWriteStream(path.join(process.env.SIO_TEST_LOG_DIR, `${name}-${port}.log`));
    child.stdout.pipe(file);
    child.stderr.pipe(file);
  }
  await waitForPort(port, child, 15000, () => output);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    logs: () => output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the args of the next `event` on an EventEmitter-like (`once`). */
export function once(emitter, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

/**
 * Starts a standalone sio-webhook process on `port` (default: a free one) with `env` (e.g.
 * SOCKETIO_URL, WEBHOOK_MODE, REDIS_URL, WEBHOOK_SECRET). It has no /socket.io path, so readiness is
 * "GET /health answers" (any status: 503 is a valid answer while its Socket.IO server is down).
 * Resolves to { port, url, child, stop(), logs() }; stopped by PID.
 */
export async function startWebhook({ env = {}, port, timeoutMs = 15000 } = {}) {
  port = port ?? (await freePort());
  const child = spawn(binary("sio-webhook"), [], {
    env: { ...process.env, HOST: "127.0.0.1", RUST_LOG: process.env.RUST_LOG ?? "info", ...env, WEBHOOK_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  if (process.env.SIO_TEST_LOG_DIR) {
    mkdirSync(process.env.SIO_TEST_LOG_DIR, { recursive: true });
    const file = createWriteStream(path.join(process.env.SIO_TEST_LOG_DIR, `sio-webhook-${port}.log`));
    child.stdout.pipe(file);
    child.stderr.pipe(file);
  }
  const stop = async (signal = "SIGTERM") => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sio-webhook exited early with code ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      await res.text();
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop("SIGKILL");
        throw new Error(`sio-webhook on port ${port} did not answer /health in ${timeoutMs} ms:\n${output}`);
      }
      await sleep(50);
    }
  }
  return { port, url: `http://127.0.0.1:${port}`, child, logs: () => output, stop };
}

/** The value of an unlabelled counter or gauge from a server's `/metrics`. */
export async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return Number(line?.split(" ")[1]);
}

let seq = 0;
/** A unique name (room, key…) for one test. */
export const fresh = (name) => `${name}-${++seq}-${Date.now().toString(36)}`;

/** Polls `check` (sync or async) until it returns a truthy value; fails with `what()` after `ms`. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = typeof what === "function" ? what(last) : what;
      assert.fail(`timed out after ${ms} ms: ${detail}`);
    }
    await sleep(25);
  }
}
