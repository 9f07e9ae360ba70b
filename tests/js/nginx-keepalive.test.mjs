// Upstream keep-alive in nginx/conf.d/socketio.conf (issue #19): plain requests (handshakes,
// long-polling GETs and POSTs) reuse idle upstream connections, WebSocket upgrades still get
// "Connection: upgrade" and are never pooled, and a connection reused across clients carries no
// client's identity into another's request (X-Forwarded-For per request, per-address limits
// counted by the client's address). nginx runs with one worker here, so "sequential requests
// share one upstream connection" holds exactly; without keep-alive every request opens its own.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { INSTANCES, prepareNginx, startNginx } from "./lib/nginx.mjs";
import { requestFrom } from "./lib/raw.mjs";
import { once, startServer } from "./lib/server.mjs";

const REQUESTS = 20;

/** Prepares nginx/ in a temp dir with one worker process; resolves to { work, dir, ports }. */
async function oneWorkerNginx(prefix) {
  const work = mkdtempSync(path.join(tmpdir(), prefix));
  const dir = path.join(work, "conf");
  const { ports } = await prepareNginx(dir);
  const main = path.join(dir, "nginx.conf");
  const text = readFileSync(main, "utf8");
  assert.match(text, /^worker_processes\s+\S+;/m);
  writeFileSync(main, text.replace(/^worker_processes\s+\S+;/m, "worker_processes 1;"));
  return { work, dir, ports };
}

/**
 * A fake sio-N on `port` that records, for every request, the upstream connection it came on,
 * its X-Forwarded-For and Connection headers; it idles connections out after 10 s like
 * sio-server (HEADER_READ_TIMEOUT_MS). A WebSocket-style upgrade is answered 101 and then echoes
 * raw bytes. Resolves to { accepted(), requests, upgrades, close() }.
 */
function recordingInstance(n, port) {
  let accepted = 0;
  let nextId = 0;
  const ids = new WeakMap();
  const requests = [];
  const upgrades = [];
  const tunnels = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      requests.push({ conn: ids.get(req.socket), method: req.method, xff: req.headers["x-forwarded-for"], connection: req.headers.connection ?? null });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ instance: `sio-${n}`, conn: ids.get(req.socket) }));
    });
  });
  server.keepAliveTimeout = 10_000;
  server.on("connection", (socket) => {
    accepted++;
    ids.set(socket, ++nextId);
  });
  server.on("upgrade", (req, socket) => {
    upgrades.push({ conn: ids.get(socket), connection: req.headers.connection, upgrade: req.headers.upgrade });
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    tunnels.add(socket);
    socket.on("close", () => tunnels.delete(socket));
    socket.on("data", (d) => socket.write(d));
    socket.on("end", () => socket.end());
    socket.on("error", () => {});
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({
        accepted: () => accepted,
        requests,
        upgrades,
        close() {
          // Upgraded sockets are no longer the HTTP server's: closeAllConnections skips them.
          for (const t of tunnels) t.destroy();
          server.closeAllConnections();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    );
  });
}

/** Opens an upgrade through nginx on a raw socket; resolves to { socket, head } once 101 is read. */
function rawUpgrade(port, urlPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let buf = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no 101 within 10 s: ${JSON.stringify(buf)}`));
    }, 10_000);
    socket.on("error", reject);
    socket.on("connect", () =>
      socket.write(
        `GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    const onData = (d) => {
      buf += d;
      if (!buf.includes("\r\n\r\n")) return;
      clearTimeout(timer);
      socket.off("data", onData);
      resolve({ socket, head: buf });
    };
    socket.on("data", onData);
  });
}

/** Writes `text` on `socket` and resolves to what comes back first (within 10 s). */
function roundTrip(socket, text) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no echo within 10 s")), 10_000);
    socket.once("data", (d) => {
      clearTimeout(timer);
      resolve(String(d));
    });
    socket.write(text);
  });
}

describe("upstream keep-alive, fake instances (one nginx worker)", () => {
  let work, nginx, port;
  const fakes = {};

  before(async () => {
    const prepared = await oneWorkerNginx("sio-nginx-ka-");
    work = prepared.work;
    for (const i of INSTANCES) fakes[i] = await recordingInstance(i, prepared.ports[i]);
    port = prepared.ports.listen;
    nginx = await startNginx(prepared.dir, port);
  });

  after(async () => {
    await nginx?.stop();
    for (const f of Object.values(fakes)) await f?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test(`${REQUESTS} polling GETs and POSTs of one session, from ${REQUESTS} client connections and two addresses, share one upstream connection`, { timeout: 60_000 }, async () => {
    const sio1 = fakes[1];
    const before = sio1.accepted();
    const seen = sio1.requests.length;
    for (let k = 0; k < REQUESTS; k++) {
      const from = k % 2 ? "127.0.0.3" : "127.0.0.2";
      const post = k % 4 === 1;
      const res = await requestFrom(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling&sid=sio-1.keep${k}`, {
        localAddress: from,
        method: post ? "POST" : "GET",
        headers: post ? { "content-type": "text/plain;charset=UTF-8" } : {},
        body: post ? "42[\"echo\",1]" : undefined,
        timeoutMs: 10_000,
      });
      assert.equal(res.status, 200, res.body);
      assert.equal(JSON.parse(res.body).instance, "sio-1");
    }
    const got = sio1.requests.slice(seen);
    const opened = sio1.accepted() - before;
    const conns = new Set(got.map((r) => r.conn));
    console.log(`${REQUESTS} requests through nginx: ${opened} upstream connection(s) opened, ${conns.size} used`);
    assert.equal(got.length, REQUESTS);
    assert.ok(opened <= 1, `${REQUESTS} sequential requests opened ${opened} upstream connections (keep-alive reuses one)`);
    assert.equal(conns.size, 1, "one upstream connection carried every request");
    for (const [k, r] of got.entries()) {
      assert.equal(r.xff, k % 2 ? "127.0.0.3" : "127.0.0.2", `request ${k} carries its own client's address on the shared connection`);
      assert.notEqual(r.connection?.toLowerCase(), "close", `request ${k}: nginx must not send Connection: close`);
    }
    assert.ok(got.some((r) => r.method === "POST"), "POSTs were among them");
  });

  test("a WebSocket upgrade gets Connection: upgrade, tunnels both ways, and its connection never goes back to the pool", { timeout: 60_000 }, async () => {
    const sio2 = fakes[2];
    // Warm the pool: one plain request leaves an idle upstream connection to sio-2 (nginx may
    // take it for the upgrade: an idle connection holds nothing; once upgraded it leaves the pool).
    const warm = await requestFrom(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling&sid=sio-2.warm`, { timeoutMs: 10_000 });
    assert.equal(warm.status, 200, warm.body);
    const { socket, head } = await rawUpgrade(port, "/socket.io/?EIO=4&transport=websocket&sid=sio-2.ws");
    try {
      assert.match(head, /^HTTP\/1\.1 101 /, head);
      const up = sio2.upgrades.at(-1);
      assert.equal(up.connection?.toLowerCase(), "upgrade");
      assert.equal(up.upgrade, "websocket");
      assert.equal(await roundTrip(socket, "ping-1"), "ping-1");
      // Plain requests go on beside the open tunnel, never on it.
      for (let k = 0; k < 5; k++) {
        const res = await requestFrom(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling&sid=sio-2.after${k}`, { timeoutMs: 10_000 });
        assert.equal(res.status, 200, res.body);
        assert.notEqual(JSON.parse(res.body).conn, up.conn, "a plain request never rides the upgraded connection");
      }
      assert.equal(await roundTrip(socket, "ping-2"), "ping-2", "the tunnel still echoes after the plain requests");
    } finally {
      socket.destroy();
    }
  });
});

/**
 * The client-side ports of every TCP connection to 127.0.0.1:`port` that `ss` still lists (open,
 * or in TIME-WAIT for a minute after closing, on either side), the listener excluded.
 */
function connectionsTo(port) {
  const out = execFileSync("ss", ["-Htan", `( sport = :${port} or dport = :${port} )`], { encoding: "utf8" });
  const peers = new Set();
  for (const line of out.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[0] === "LISTEN") continue;
    const [local, peer] = [f[3], f[4]];
    peers.add(local.endsWith(`:${port}`) ? peer : local);
  }
  return peers;
}

describe("upstream keep-alive, three sio-servers behind nginx (one worker)", () => {
  let work, nginx, port;
  const servers = [];

  before(async () => {
    const prepared = await oneWorkerNginx("sio-nginx-ka-real-");
    work = prepared.work;
    for (const i of INSTANCES) {
      servers.push(
        await startServer({
          port: prepared.ports[i],
          env: { INSTANCE_ID: `sio-${i}`, TRUSTED_PROXIES: "127.0.0.1/32", MAX_HALF_OPEN_PER_IP: "2" },
        }),
      );
    }
    port = prepared.ports.listen;
    nginx = await startNginx(prepared.dir, port);
  });

  after(async () => {
    await nginx?.stop();
    for (const s of servers) await s.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** New upstream connections to the instances since `baseline` (from snapshot()). */
  const snapshot = () => new Set(servers.flatMap((s) => [...connectionsTo(s.port)]));
  const newSince = (baseline) => [...snapshot()].filter((c) => !baseline.has(c)).length;

  test("per-address limits count the client named by X-Forwarded-For, over reused upstream connections", { timeout: 60_000 }, async () => {
    const baseline = snapshot();
    const handshake = (from) =>
      requestFrom(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`, { localAddress: from, timeoutMs: 10_000 });
    // 12 handshakes from 127.0.0.2 rotate 4 onto each instance; MAX_HALF_OPEN_PER_IP=2 admits 2 there.
    const first = [];
    for (let k = 0; k < 12; k++) first.push(await handshake("127.0.0.2"));
    const ok = first.filter((r) => r.status === 200).length;
    const refused = first.filter((r) => r.status === 503);
    assert.equal(ok, 6, first.map((r) => `${r.status} ${r.body}`).join("\n"));
    assert.equal(refused.length, 6);
    for (const r of refused) assert.match(r.body, /Too many pending connections from this address/);
    // Another address, on the same pooled upstream connections, has its own budget...
    for (let k = 0; k < 6; k++) {
      const r = await handshake("127.0.0.3");
      assert.equal(r.status, 200, `127.0.0.3 handshake ${k}: ${r.body}`);
    }
    // ...and did not reset or take 127.0.0.2's.
    for (let k = 0; k < 3; k++) assert.equal((await handshake("127.0.0.2")).status, 503);
    const opened = newSince(baseline);
    console.log(`21 handshakes through nginx opened ${opened} upstream connection(s) to the 3 instances`);
    assert.ok(opened <= 6, `21 sequential handshakes opened ${opened} upstream connections (keep-alive: about one per instance)`);
  });

  test(`a polling-only stock client's ${REQUESTS} acked emits reuse a few upstream connections`, { timeout: 60_000 }, async () => {
    const baseline = snapshot();
    const socket = io(`http://127.0.0.1:${port}`, { transports: ["polling"], reconnection: false, forceNew: true });
    try {
      await once(socket, "connect", 10_000);
      for (let k = 0; k < REQUESTS; k++) {
        const back = await socket.timeout(10_000).emitWithAck("echo", k);
        assert.equal(back, k);
      }
      assert.equal(socket.io.engine.transport.name, "polling");
      const opened = newSince(baseline);
      console.log(`polling client, handshake + ${REQUESTS} acked emits: ${opened} upstream connection(s) opened`);
      // A long-polling GET holds one connection while the POSTs use another.
      assert.ok(opened <= 4, `${opened} upstream connections for ${REQUESTS * 2}+ polling requests`);
    } finally {
      socket.disconnect();
    }
  });

  test("the stock client on default transports upgrades to WebSocket through nginx and keeps working", { timeout: 60_000 }, async () => {
    const socket = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true });
    try {
      await once(socket, "connect", 10_000);
      if (socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade", 10_000);
      assert.equal(socket.io.engine.transport.name, "websocket");
      for (let k = 0; k < 5; k++) assert.equal(await socket.timeout(10_000).emitWithAck("echo", `ws-${k}`), `ws-${k}`);
      // Polling requests keep flowing beside the upgraded connection.
      const r = await requestFrom(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`, { localAddress: "127.0.0.4", timeoutMs: 10_000 });
      assert.equal(r.status, 200, r.body);
      assert.equal(await socket.timeout(10_000).emitWithAck("echo", "last"), "last");
    } finally {
      socket.disconnect();
    }
  });
});
