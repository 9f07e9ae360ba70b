// Limits against abuse, each configurable and counted in /metrics, against a real sio-server.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer, once, sleep, waitFor, freePort, metric } from "./lib/server.mjs";
import { requestFrom } from "./lib/raw.mjs";

const handshake = (url) => fetch(`${url}/socket.io/?EIO=4&transport=polling`);

test("MAX_CONNECTIONS refuses handshakes past the limit with 503 and counts them", async () => {
  const server = await startServer({ env: { MAX_CONNECTIONS: "3" } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await handshake(server.url)).status, 200);
    const refused = await handshake(server.url);
    assert.equal(refused.status, 503);
    assert.deepEqual(await refused.json(), { code: 4, message: "Server is full" });
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="max_connections"}'), 1);
  } finally {
    await server.stop();
  }
});

test("HANDSHAKE_RATE_PER_IP limits handshakes per second from one address", async () => {
  const server = await startServer({ env: { HANDSHAKE_RATE_PER_IP: "2" } });
  try {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await handshake(server.url)).status);
    assert.deepEqual(statuses, [200, 200, 503, 503]);
    await sleep(1100);
    assert.equal((await handshake(server.url)).status, 200, "the window resets");
  } finally {
    await server.stop();
  }
});

const HANDSHAKE = "/socket.io/?EIO=4&transport=polling";

/** `n` bare polling handshakes (never followed up) from `localAddress`, 50 at a time; returns the answers. */
async function flood(url, n, { localAddress = "127.0.0.1", headers = () => ({}) } = {}) {
  const answers = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_, j) =>
      requestFrom(url + HANDSHAKE, { localAddress, headers: headers(i + j) }),
    );
    answers.push(...(await Promise.all(batch)));
  }
  return answers;
}

/** How many answers have each status and body: { "200": n, "503 {…}": m }. */
function tally(answers) {
  const t = {};
  for (const a of answers) {
    const key = a.status === 200 ? "200" : `${a.status} ${a.body}`;
    t[key] = (t[key] ?? 0) + 1;
  }
  return t;
}

/** A stock client connecting from `localAddress` over WebSocket; resolves once connected. */
async function connectFrom(url, localAddress) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], localAddress });
  const [welcome] = await once(s, "welcome");
  assert.equal(welcome.socketId, s.id);
  return s;
}

const PENDING = '503 {"code":4,"message":"Too many pending connections from this address"}';
const PER_ADDRESS = '503 {"code":4,"message":"Too many connections from this address"}';

test("one address flooding handshakes cannot lock others out, and gets back in once its sessions expire", { timeout: 30000 }, async () => {
  // MAX_CONNECTIONS=300 gives MAX_HALF_OPEN_PER_IP=15 and MAX_CONNECTIONS_PER_IP=30 by default.
  const server = await startServer({ env: { MAX_CONNECTIONS: "300", PING_INTERVAL: "1000", PING_TIMEOUT: "1000" } });
  let other;
  try {
    const answers = await flood(server.url, 400);
    assert.deepEqual(tally(answers), { 200: 15, [PENDING]: 385 });
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="max_half_open_per_ip"}'), 385);
    // Before this policy 127.0.0.2 got 503 "Server is full" here.
    other = await connectFrom(server.url, "127.0.0.2");
    assert.equal(await other.emitWithAck("echo", "still served"), "still served");
    // The flood's sessions never poll, so they expire after PING_INTERVAL + PING_TIMEOUT.
    await waitFor(async () => (await metric(server.url, "sio_connections")) === 1, 10000, "the flood's sessions expired");
    assert.equal((await requestFrom(server.url + HANDSHAKE)).status, 200, "the address can connect again");
    assert.match(server.logs(), /handshake refused: Too many pending connections from this address.*client.*127\.0\.0\.1/);
  } finally {
    other?.disconnect();
    await server.stop();
  }
});

test("once the server is half full, an address holding a tenth of MAX_CONNECTIONS is refused; others connect", { timeout: 30000 }, async () => {
  // MAX_CONNECTIONS=100: the per-address cap (10) applies from 50 open sessions on.
  const server = await startServer({ env: { MAX_CONNECTIONS: "100" } });
  const wsUrl = `${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`;
  const held = [];
  let other;
  try {
    // Full Socket.IO connections (CONNECT sent), a few at a time to stay under the half-open cap.
    for (let i = 0; i < 50; i += 5) {
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          const ws = new WebSocket(wsUrl, { localAddress: "127.0.0.1" });
          held.push(ws);
          await once(ws, "open");
          const connected = new Promise((resolve) => ws.on("message", (m) => String(m).startsWith("40") && resolve()));
          ws.send("40");
          await connected;
        }),
      );
    }
    assert.equal(await metric(server.url, "sio_connections"), 50);
    const refused = await requestFrom(server.url + HANDSHAKE);
    assert.equal(`${refused.status} ${refused.body}`, PER_ADDRESS);
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="max_connections_per_ip"}'), 1);
    other = await connectFrom(server.url, "127.0.0.2");
    // The address gets back in once it holds less than its share (or the server is under half full).
    for (const ws of held.splice(0, 45)) ws.close();
    await waitFor(async () => (await metric(server.url, "sio_connections")) === 6, 10000, "the closed sessions are gone");
    assert.equal((await requestFrom(server.url + HANDSHAKE)).status, 200);
  } finally {
    for (const ws of held) ws.terminate();
    other?.disconnect();
    await server.stop();
  }
});

test("TRUSTED_PROXIES: X-Forwarded-For from a trusted peer names the client; from others it is ignored", { timeout: 30000 }, async () => {
  const xff = (ip) => () => ({ "X-Forwarded-For": ip });
  // MAX_CONNECTIONS=100 gives MAX_HALF_OPEN_PER_IP=10.
  const trusted = await startServer({ env: { MAX_CONNECTIONS: "100", TRUSTED_PROXIES: "127.0.0.1/32" } });
  try {
    assert.deepEqual(tally(await flood(trusted.url, 12, { headers: xff("203.0.113.1") })), { 200: 10, [PENDING]: 2 });
    assert.deepEqual(tally(await flood(trusted.url, 12, { headers: xff("203.0.113.2") })), { 200: 10, [PENDING]: 2 }, "a second client behind the proxy has its own count");
    assert.deepEqual(tally(await flood(trusted.url, 5)), { 200: 5 }, "the proxy itself has its own count");
    assert.match(trusted.logs(), /handshake refused.*client.*203\.0\.113\.1/);
    // A peer that is not in the list (127.0.0.2) cannot name a client.
    const forged = await flood(trusted.url, 12, { localAddress: "127.0.0.2", headers: (i) => ({ "X-Forwarded-For": `198.51.100.${i}` }) });
    assert.deepEqual(tally(forged), { 200: 10, [PENDING]: 2 });
  } finally {
    await trusted.stop();
  }
  // By default nobody is trusted: a forged X-Forwarded-For per request does not dodge the limit.
  const untrusted = await startServer({ env: { MAX_CONNECTIONS: "100" } });
  try {
    const forged = await flood(untrusted.url, 12, { headers: (i) => ({ "X-Forwarded-For": `198.51.100.${i}` }) });
    assert.deepEqual(tally(forged), { 200: 10, [PENDING]: 2 });
    assert.equal((await requestFrom(untrusted.url + HANDSHAKE, { localAddress: "127.0.0.2" })).status, 200);
  } finally {
    await untrusted.stop();
  }
});

/**
 * A real nginx in the foreground on a free port, proxying to `upstream` and setting
 * `X-Forwarded-For` to `xff` (an nginx variable); stopped by PID.
 */
async function startNginx(upstream, xff) {
  const dir = mkdtempSync(path.join(tmpdir(), "sio-limits-nginx-"));
  mkdirSync(path.join(dir, "logs"));
  const port = await freePort();
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass ${upstream}; proxy_http_version 1.1; proxy_set_header X-Forwarded-For ${xff}; }
  }
}
`,
  );
  const child = spawn(process.env.NGINX_BIN ?? "/usr/sbin/nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(() => requestFrom(`${url}/health`).then((r) => r.status === 200), 10000, "nginx answers");
  return {
    url,
    async stop() {
      if (child.exitCode === null) {
        const exited = once(child, "exit", 5000).catch(() => child.kill("SIGKILL"));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("behind a real nginx, TRUSTED_PROXIES keeps one flooding client from locking out the others", { timeout: 60000 }, async () => {
  // Clients on 127.0.0.2 and .3 reach nginx, which reaches sio-server from 127.0.0.1.
  for (const [trusted, xff, otherGetsIn] of [
    ["", "$remote_addr", false],
    ["127.0.0.1/32", "$remote_addr", true],
    ["127.0.0.1/32", "$proxy_add_x_forwarded_for", true],
  ]) {
    const server = await startServer({ env: { MAX_CONNECTIONS: "100", TRUSTED_PROXIES: trusted } });
    const nginx = await startNginx(server.url, xff);
    try {
      const what = `TRUSTED_PROXIES=${trusted || "(empty)"}, X-Forwarded-For ${xff}`;
      // The flooder forges X-Forwarded-For; it never helps.
      const answers = await flood(nginx.url, 12, { localAddress: "127.0.0.2", headers: (i) => ({ "X-Forwarded-For": `198.51.100.${i}` }) });
      assert.deepEqual(tally(answers), { 200: 10, [PENDING]: 2 }, what);
      const other = await requestFrom(nginx.url + HANDSHAKE, { localAddress: "127.0.0.3" });
      assert.equal(other.status, otherGetsIn ? 200 : 503, `${what}: ${other.body}`);
    } finally {
      await nginx.stop();
      await server.stop();
    }
  }
});

test("MAX_ROOMS_PER_SOCKET refuses joins past the limit; long event names are dropped", async () => {
  const server = await startServer({ env: { MAX_ROOMS_PER_SOCKET: "3", MAX_EVENT_NAME_LENGTH: "32" } });
  const s = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(s, "connect");
    assert.equal((await s.emitWithAck("join", "a")).ok, true);
    assert.equal((await s.emitWithAck("join", "b")).ok, true);
    const refused = await s.emitWithAck("join", "c");
    assert.equal(refused.ok, false);
    assert.equal(refused.error.field, "roomId");
    let answered = false;
    s.emit("x".repeat(33), 1, () => (answered = true));
    assert.equal(await s.emitWithAck("echo", "still connected"), "still connected");
    await sleep(100);
    assert.equal(answered, false, "the long event was dropped");
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="max_rooms_per_socket"}'), 1);
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="max_event_name_length"}'), 1);
  } finally {
    s.disconnect();
    await server.stop();
  }
});

test("a client sending garbage is closed while others keep working", async () => {
  const server = await startServer();
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(good, "connect");
    const closes = [];
    for (const garbage of ["", "x", "4\u0000\u0001", "42[", "45-[]", "9999", Buffer.from([0xff, 0xfe])]) {
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      await once(ws, "open");
      ws.send("40");
      ws.send(garbage);
      closes.push(once(ws, "close", 3000));
    }
    await Promise.all(closes);
    assert.equal(await good.emitWithAck("echo", "fine"), "fine");
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
  } finally {
    good.disconnect();
    await server.stop();
  }
});
