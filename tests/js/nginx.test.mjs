// nginx/conf.d/socketio.conf run by the real nginx in front of three fake instances (plain HTTP
// servers that answer which instance they are and what headers they got). Checks what the
// configuration promises, request by request and deterministically: the handshake rotation that
// page and bundle requests cannot shift (issue #14), sid stickiness, a dead instance skipped, the
// X-Forwarded-For nginx sends, /metrics refused outside private networks, and the per-address
// limits answering 503/429 (issue #13).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NGINX, INSTANCES, prepareNginx, startNginx } from "./lib/nginx.mjs";
import { waitFor } from "./lib/server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const conf = readFileSync(path.join(root, "nginx/conf.d/socketio.conf"), "utf8").replace(/#[^\n]*/g, "");
const LIMIT_CONN = Number(conf.match(/limit_conn\s+\S+\s+(\d+)\s*;/)[1]);
const BURST = Number(conf.match(/limit_req\s+zone=\S+\s+burst=(\d+)/)[1]);
const RATE = Number(conf.match(/limit_req_zone\s+\S+\s+zone=\S+\s+rate=(\d+)r\/s/)[1]);

/**
 * A fake sio-N on `port`: answers JSON { instance, method, url, xff } at once, except requests
 * whose sid ends in ".hold", which stay open until release(). Resolves to
 * { server, held: Set<res>, release(), close() }.
 */
function fakeInstance(n, port) {
  const held = new Set();
  const server = http.createServer((req, res) => {
    if (/[?&]sid=[^&]*\.hold(&|$)/.test(req.url)) {
      held.add(res);
      res.on("close", () => held.delete(res));
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ instance: `sio-${n}`, method: req.method, url: req.url, xff: req.headers["x-forwarded-for"] ?? null }));
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({
        server,
        held,
        release() {
          for (const res of held) res.destroy();
        },
        close() {
          for (const res of held) res.destroy();
          server.closeAllConnections();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    );
  });
}

/**
 * GET from `from` (any 127.x address: each is its own client address for the per-address
 * limits), on a fresh connection unless an `agent` is given, so requests spread over nginx's
 * workers: { status, headers, body, json }.
 */
function get(port, urlPath, headers = {}, from = "127.0.0.1", agent = false) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, headers, agent, localAddress: agent ? undefined : from, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        let json = null;
        try {
          json = JSON.parse(body);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on("error", reject);
  });
}

const HANDSHAKE = "/socket.io/?EIO=4&transport=polling";
// Requests sio-server reads as handshakes (it takes the last parameter named exactly "sid"), while
// nginx's $arg_sid (first match, any case) would see sio-1's sid.
const DISGUISED = [
  "/socket.io/?EIO=4&transport=polling&SID=sio-1.x",
  "/socket.io/?sid=sio-1.x&EIO=4&transport=polling&sid=",
  "/socket.io/?sid=sio-1.x&EIO=4&transport=polling&sid",
];

/**
 * Sends BURST + 10 s worth of requests (cycling over `paths`) from `from`, 50 at a time, and
 * checks the limit_req arithmetic: every answer 200 or 429, at least the burst passed (less the
 * `already` handshakes that address just made), no more than burst + rate × elapsed. Resolves to
 * { ok, limited: [responses] }.
 */
async function flood(port, paths, from, already = 0) {
  const n = BURST + 10 * RATE;
  const started = Date.now();
  const statuses = [];
  for (let k = 0; k < n; k += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, n - k) }, (_, j) => get(port, paths[(k + j) % paths.length], {}, from)));
    statuses.push(...batch);
  }
  const seconds = (Date.now() - started) / 1000;
  const ok = statuses.filter((r) => r.status === 200).length;
  const limited = statuses.filter((r) => r.status === 429);
  console.log(`${n} handshakes from ${from} in ${seconds.toFixed(1)} s: ${ok} passed, ${limited.length} answered 429`);
  assert.equal(ok + limited.length, n, `every answer is 200 or 429: ${JSON.stringify(statuses.find((r) => r.status !== 200 && r.status !== 429))}`);
  assert.ok(ok >= BURST - already, `at least the burst passed (${ok})`);
  assert.ok(ok <= BURST + Math.ceil(RATE * seconds) + 2, `no more than burst + rate × time passed (${ok})`);
  assert.ok(limited.length > 0, "some were refused");
  return { ok, limited };
}

describe("nginx/conf.d/socketio.conf in front of three fake instances", () => {
  let work, nginx, port, ports;
  const fakes = {};

  before(async () => {
    assert.ok(existsSync(NGINX), `nginx not found at ${NGINX}`);
    work = mkdtempSync(path.join(tmpdir(), "sio-nginx-live-"));
    ({ ports } = await prepareNginx(path.join(work, "conf")));
    for (const i of INSTANCES) fakes[i] = await fakeInstance(i, ports[i]);
    port = ports.listen;
    nginx = await startNginx(path.join(work, "conf"), port);
  });

  after(async () => {
    await nginx?.stop();
    for (const f of Object.values(fakes)) await f.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("handshakes rotate over sio-1..3 in one order, whatever page and bundle requests come between", { timeout: 60_000 }, async () => {
    const order = [];
    for (let tab = 0; tab < 30; tab++) {
      // What a tab of the demo page asks for, on one kept-alive connection (so one nginx worker)
      // like a browser, or on a connection per request.
      const agent = tab % 2 ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
      assert.equal((await get(port, "/", {}, undefined, agent)).status, 200);
      assert.equal((await get(port, "/socket.io/socket.io.min.js", {}, undefined, agent)).status, 200);
      if (tab % 3 === 0) assert.equal((await get(port, "/favicon.ico", {}, undefined, agent)).status, 200);
      const hs = await get(port, HANDSHAKE, {}, undefined, agent);
      if (agent) agent.destroy();
      assert.equal(hs.status, 200, hs.body);
      order.push(hs.json.instance);
    }
    const counts = Object.fromEntries(INSTANCES.map((i) => [`sio-${i}`, order.filter((x) => x === `sio-${i}`).length]));
    console.log(`30 tabs' handshakes: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts, { "sio-1": 10, "sio-2": 10, "sio-3": 10 });
    for (let k = 3; k < order.length; k++) assert.equal(order[k], order[k - 3], `a strict rotation: ${order.join(" ")}`);
  });

  test("the bundle and pages never reach the handshake rotation (they go to sio_pages)", { timeout: 30_000 }, async () => {
    const first = (await get(port, HANDSHAKE)).json.instance;
    for (let k = 0; k < 7; k++) await get(port, "/socket.io/socket.io.js");
    const second = (await get(port, HANDSHAKE)).json.instance;
    assert.equal(Number(second.slice(4)), (Number(first.slice(4)) % 3) + 1, `${first} then ${second}`);
  });

  test("a sid sio-N.… goes to sio-N, for polling GET and POST", { timeout: 30_000 }, async () => {
    for (const i of INSTANCES) {
      for (let k = 0; k < 4; k++) {
        const res = await get(port, `/socket.io/?EIO=4&transport=polling&sid=sio-${i}.AbCdEf${k}`);
        assert.equal(res.json?.instance, `sio-${i}`, res.body);
      }
    }
    const unknown = await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-9.x");
    assert.ok(INSTANCES.map((i) => `sio-${i}`).includes(unknown.json?.instance), "an unknown prefix is treated as new");
  });

  test("X-Forwarded-For is the client's address as nginx saw it; a forged one is dropped", { timeout: 30_000 }, async () => {
    for (const p of ["/", HANDSHAKE, "/socket.io/?EIO=4&transport=polling&sid=sio-1.x", "/metrics"]) {
      const res = await get(port, p, { "X-Forwarded-For": "203.0.113.9, 198.51.100.7" });
      assert.equal(res.status, 200, `${p}: ${res.body}`);
      assert.equal(res.json.xff, "127.0.0.1", `${p}: backend got X-Forwarded-For ${res.json.xff}`);
    }
  });

  test("a dead instance is skipped for new sessions; its sids fail at once", { timeout: 60_000 }, async () => {
    await fakes[2].close();
    try {
      const seen = [];
      for (let k = 0; k < 9; k++) {
        const res = await get(port, HANDSHAKE);
        assert.equal(res.status, 200, res.body);
        seen.push(res.json.instance);
      }
      console.log(`handshakes with sio-2 down: ${seen.join(" ")}`);
      assert.ok(!seen.includes("sio-2"));
      assert.ok(seen.includes("sio-1") && seen.includes("sio-3"), seen.join(" "));
      const stale = await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-2.gone");
      assert.equal(stale.status, 502, "a dead instance's sid is refused, so the client opens a new session");
      assert.equal(stale.json?.code, "instance_unavailable", stale.body);
    } finally {
      fakes[2] = await fakeInstance(2, ports[2]);
    }
  });

  test("a client that never finishes its request headers is cut within 15 s (slowloris)", { timeout: 30_000 }, async () => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1", () => socket.write(`GET ${HANDSHAKE} HTTP/1.1\r\nHost: x\r\n`));
    socket.on("data", () => {});
    const closed = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000);
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.on("error", () => {});
    });
    socket.destroy();
    console.log(`incomplete request headers: connection closed by nginx after ${Date.now() - started} ms`);
    assert.ok(closed, "nginx closed the connection (client_header_timeout)");
  });

  test(`limit_conn: past ${LIMIT_CONN} open /socket.io/ requests from one address → 503 JSON`, { timeout: 120_000 }, async () => {
    const pending = [];
    try {
      for (let k = 0; k < LIMIT_CONN; k++) pending.push(get(port, `/socket.io/?EIO=4&transport=polling&sid=sio-${(k % 3) + 1}.hold`, {}, "127.0.0.3").catch((e) => ({ error: e })));
      await waitFor(() => INSTANCES.reduce((s, i) => s + fakes[i].held.size, 0) === LIMIT_CONN, 60_000, () => `held: ${INSTANCES.map((i) => fakes[i].held.size)}`);
      const over = await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-1.x", {}, "127.0.0.3");
      assert.equal(over.status, 503, over.body);
      assert.equal(over.json?.code, "too_many_connections", over.body);
      assert.ok(over.headers["retry-after"], "Retry-After");
      // Other locations and other addresses are not limited.
      assert.equal((await get(port, "/", {}, "127.0.0.3")).status, 200);
      assert.equal((await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-1.x")).status, 200, "another address");
    } finally {
      for (const i of INSTANCES) fakes[i].release();
      await Promise.all(pending);
    }
    // Released connections free their slots.
    await waitFor(async () => (await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-1.x", {}, "127.0.0.3")).status === 200, 10_000, () => "the limit to clear");
  });

  test(`limit_req: handshakes past a burst of ${BURST} (${RATE}/s) → 429 JSON; requests with a sid are not limited`, { timeout: 120_000 }, async () => {
    const { ok, limited } = await flood(port, [HANDSHAKE], "127.0.0.2");
    assert.equal(limited[0].json?.code, "too_many_requests", limited[0].body);
    assert.ok(limited[0].headers["retry-after"], "Retry-After");
    const withSid = await get(port, "/socket.io/?EIO=4&transport=polling&sid=sio-3.x", {}, "127.0.0.2");
    assert.equal(withSid.status, 200, "requests of existing sessions pass while handshakes are limited");
    assert.equal((await get(port, HANDSHAKE)).status, 200, "another address still opens sessions");
    assert.ok(ok >= BURST);
  });

  test("handshakes in disguise (SID=…, a first sid=sio-1.… then an empty sid) rotate and are rate-limited like any", { timeout: 120_000 }, async () => {
    const rotated = [];
    for (const p of DISGUISED) for (let k = 0; k < 3; k++) rotated.push((await get(port, p, {}, "127.0.0.4")).json?.instance);
    console.log(`disguised handshakes: ${rotated.join(" ")}`);
    for (const p of DISGUISED) assert.ok(rotated.filter((x) => x !== "sio-1").length >= 2, `${p} is not pinned to sio-1: ${rotated.join(" ")}`);
    await flood(port, DISGUISED, "127.0.0.4", rotated.length);
  });
});

describe("/metrics outside the allowed networks", () => {
  let work, nginx;
  after(async () => {
    await nginx?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("→ 403 JSON from nginx (checked by taking loopback out of the allow list)", { timeout: 60_000 }, async () => {
    work = mkdtempSync(path.join(tmpdir(), "sio-nginx-deny-"));
    const edit = (text) => {
      assert.match(text, /allow 127\.0\.0\.0\/8;/);
      return text.replace(/allow 127\.0\.0\.0\/8;/, "");
    };
    const { dir, ports } = await prepareNginx(path.join(work, "conf"), { edit });
    nginx = await startNginx(dir, ports.listen);
    const res = await get(ports.listen, "/metrics");
    assert.equal(res.status, 403, res.body);
    assert.equal(res.json?.code, "forbidden", res.body);
    assert.equal((await get(ports.listen, "/nginx-health")).status, 200, "other locations stay open");
  });
});
