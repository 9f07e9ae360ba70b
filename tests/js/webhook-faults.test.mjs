// The webhook under faults, from outside with real sockets (issue #13):
//  - a client that gives up and retries with the same Idempotency-Key while the Socket.IO server
//    is slow to ack, or never acks (a tiny Node socket.io server): sio-webhook lives, the retry
//    waits for / replays the real outcome and nothing is delivered twice;
//  - the same key with another body → 422; the same on the in-process webhook of sio-server;
//  - a body that stalls half way is cut (408) in bounded time, on both binaries;
//  - a WEBHOOK_SECRET shorter than 32 bytes stops both binaries with exit code 2.
// Every describe starts and stops its own processes (by PID).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { spawn } from "node:child_process";
import { Server } from "socket.io";
import { startServer, startWebhook, freePort, sleep, once, waitFor, fresh, binary } from "./lib/server.mjs";
import { post, get, show, group, eventsNamed } from "./lib/webhook.mjs";

/** WEBHOOK_TIMEOUT_MS for sio-webhook here: the answer is due 1.5 s after the body; the hard deadline is 3 s. */
const TIMEOUT_MS = 1500;

/**
 * A Node socket.io server that records every event and acks after `ackDelay()` ms (null: never).
 * Resolves to { url, events, close() }.
 */
async function slowSocketIo(ackDelay) {
  const http = createServer();
  const io = new Server(http);
  const events = [];
  io.on("connection", (socket) => {
    socket.onAny((event, ...args) => {
      const ack = typeof args.at(-1) === "function" ? args.pop() : null;
      events.push([event, ...args]);
      const delay = ackDelay();
      if (ack && delay !== null) setTimeout(() => ack({ ok: true, id: `node-${events.length}` }), delay);
    });
  });
  const port = await freePort();
  await new Promise((r) => http.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${port}`,
    events,
    close: () => new Promise((r) => io.close(() => r())),
  };
}

/** POSTs and gives up (aborts) after `ms`, like `curl -m`; resolves to "aborted" or the answer. */
async function postAndGiveUp(url, path, body, headers, ms) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  try {
    return await post(url, path, body, { headers, signal: ctl.signal });
  } catch (e) {
    assert.equal(e.name, "AbortError", String(e));
    return "aborted";
  } finally {
    clearTimeout(timer);
  }
}

describe("sio-webhook retries against a Socket.IO server that is slow to ack", () => {
  const g = group();
  let node;
  let hook;
  let ackDelay = 1000;
  before(async () => {
    node = await slowSocketIo(() => ackDelay);
    hook = g.track(await startWebhook({ env: { SOCKETIO_URL: node.url, WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS), INSTANCE_ID: "wh-faults" } }));
    await waitFor(async () => (await get(hook.url, "/health")).status === 200, 5000, () => `webhook /health 200\n${g.logs()}`);
  });
  after(async () => {
    await g.close();
    await node?.close();
  });

  const delivered = (text) => node.events.filter(([, p]) => p?.message === text).length;

  test("a client gives up, retries with the same key: the retry gets the real 200, delivered once", { timeout: 15000 }, async () => {
    ackDelay = 1000;
    const key = fresh("slow");
    const body = { roomId: fresh("r"), message: `slow ${key}` };
    const first = await postAndGiveUp(hook.url, "/webhook", body, { "Idempotency-Key": key }, 300);
    assert.equal(first, "aborted");
    const retry = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.equal(retry.status, 200, `${show(retry)}\n${g.logs()}`);
    assert.equal(retry.headers.get("idempotent-replayed"), "true", "the retry replays the first delivery");
    assert.match(retry.json.id, /^node-/, show(retry));
    assert.equal(hook.child.exitCode, null, "sio-webhook is alive");
    await sleep(300);
    assert.equal(delivered(body.message), 1, "delivered exactly once");
  });

  test("never acked: the process lives, retries get 409/504 (never a second delivery), then the remembered 504", { timeout: 20000 }, async () => {
    ackDelay = null;
    const key = fresh("never");
    const body = { roomId: fresh("r"), message: `never ${key}` };
    assert.equal(await postAndGiveUp(hook.url, "/webhook", body, { "Idempotency-Key": key }, 300), "aborted");
    const retry = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.ok([409, 504].includes(retry.status), show(retry));
    assert.equal(retry.json?.ok, false, show(retry));
    assert.ok(["in_progress", "delivery_unknown"].includes(retry.json.error.code), show(retry));
    assert.ok(retry.headers.get("retry-after"), "Retry-After");
    assert.equal(hook.child.exitCode, null, `sio-webhook died:\n${g.logs()}`);
    // Past the hard deadline the outcome is final: unknown, remembered under the key.
    await sleep(2 * TIMEOUT_MS);
    const later = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.equal(later.status, 504, show(later));
    assert.equal(later.json.error.code, "delivery_unknown", show(later));
    assert.equal(later.headers.get("idempotent-replayed"), "true");
    assert.equal(delivered(body.message), 1, "the server got it once, and the retries did not send it again");
    // Without a key, an unacked delivery answers 504 at the deadline: not a false "not delivered".
    const t0 = Date.now();
    const unkeyed = await post(hook.url, "/webhook", { roomId: fresh("r"), message: "unkeyed" });
    assert.equal(unkeyed.status, 504, show(unkeyed));
    assert.ok(Date.now() - t0 < TIMEOUT_MS + 2000, `answered after ${Date.now() - t0} ms`);
    assert.equal((await get(hook.url, "/health")).status, 200, "still connected and serving");
  });

  test("the same key with another body → 422 naming Idempotency-Key", async () => {
    ackDelay = 0;
    const key = fresh("mismatch");
    const roomId = fresh("r");
    const first = await post(hook.url, "/webhook", { roomId, message: "one" }, { headers: { "Idempotency-Key": key } });
    assert.equal(first.status, 200, show(first));
    const other = await post(hook.url, "/webhook", { roomId, message: "two" }, { headers: { "Idempotency-Key": key } });
    assert.equal(other.status, 422, show(other));
    assert.equal(other.json.error.field, "Idempotency-Key", show(other));
    assert.equal(other.json.error.code, "idempotency_key_reused", show(other));
    const route = await post(hook.url, "/webhook/zalo", { roomId, message: "one" }, { headers: { "Idempotency-Key": key } });
    assert.equal(route.status, 422, `same body on another route: ${show(route)}`);
    await sleep(200);
    assert.equal(delivered("two"), 0);
  });
});

describe("in-process webhook: retries and key reuse", () => {
  const g = group();
  let server;
  let hook;
  before(async () => {
    const port = await freePort();
    server = g.track(await startServer({ env: { WEBHOOK_PORT: String(port) } }));
    hook = { url: `http://127.0.0.1:${port}` };
  });
  after(() => g.close());

  test("give up, retry with the same key: one delivery, same id; another body → 422", { timeout: 15000 }, async () => {
    const room = fresh("inproc");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const key = fresh("k");
    const body = { roomId: room, message: `once ${key}` };
    const answers = [];
    for (let i = 0; i < 5; i++) {
      const r = await postAndGiveUp(hook.url, "/webhook", body, { "Idempotency-Key": key }, 1 + i);
      if (r !== "aborted") answers.push(r);
    }
    const final = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.equal(final.status, 200, show(final));
    for (const a of answers) assert.deepEqual(a.json, final.json, show(a));
    await waitFor(() => eventsNamed(member, "message").length >= 1, 5000, () => JSON.stringify(member.events));
    await sleep(300);
    assert.deepEqual(eventsNamed(member, "message").map((m) => m.id), [final.json.id], "delivered once");
    const other = await post(hook.url, "/webhook", { roomId: room, message: "different" }, { headers: { "Idempotency-Key": key } });
    assert.equal(other.status, 422, show(other));
    assert.equal(other.json.error.field, "Idempotency-Key");
    assert.equal(server.child.exitCode, null, "sio-server is alive");
    member.disconnect();
  });
});

/** Sends headers and half of a declared body, then stalls; resolves to { ms, status } once closed. */
async function stallBody(port) {
  const sock = connect(port, "127.0.0.1");
  await once(sock, "connect");
  let got = "";
  sock.on("data", (d) => (got += d));
  const t0 = Date.now();
  sock.write("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"roomId\":\"r\",");
  await once(sock, "close", 10000);
  return { ms: Date.now() - t0, status: got.split("\r\n")[0] };
}

describe("a body that stalls half way is cut", () => {
  const g = group();
  after(() => g.close());

  test("sio-webhook and the in-process webhook answer 408 and close within HEADER_READ_TIMEOUT_MS", { timeout: 30000 }, async () => {
    const env = { HEADER_READ_TIMEOUT_MS: "1000" };
    const hook = g.track(await startWebhook({ env: { ...env, SOCKETIO_URL: "http://127.0.0.1:9" } }));
    const port = await freePort();
    const server = g.track(await startServer({ env: { ...env, WEBHOOK_PORT: String(port) } }));
    for (const [name, p] of [["sio-webhook", hook.port], ["in-process", port]]) {
      const { ms, status } = await stallBody(p);
      assert.match(status, /^HTTP\/1\.1 408/, `${name}: ${status}`);
      assert.ok(ms >= 900 && ms < 5000, `${name}: closed after ${ms} ms`);
    }
    assert.equal((await get(hook.url, "/")).status, 200, "sio-webhook still serves");
    assert.equal(server.child.exitCode, null);
  });
});

describe("WEBHOOK_SECRET shorter than 32 bytes", () => {
  for (const name of ["sio-server", "sio-webhook"]) {
    test(`${name} refuses it with exit code 2, naming the variable but not the value`, { timeout: 15000 }, async () => {
      const child = spawn(binary(name), [], {
        env: { ...process.env, HOST: "127.0.0.1", PORT: String(await freePort()), WEBHOOK_PORT: String(await freePort()), WEBHOOK_SECRET: "hunter2" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const [code] = await once(child, "exit", 10000);
      assert.equal(code, 2, out);
      assert.match(out, /WEBHOOK_SECRET/);
      assert.match(out, /32 bytes/);
      assert.doesNotMatch(out, /hunter2/, "the secret is not echoed");
    });
  }
});

describe("one address cannot hold every webhook connection", () => {
  test("past 256 idle connections from 127.0.0.1 new ones are closed on accept; 127.0.0.2 still posts", { timeout: 60000 }, async () => {
    const port = await freePort();
    const server = await startServer({ env: { WEBHOOK_PORT: String(port) } });
    const idle = [];
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 10000, "the webhook to listen");
      for (let i = 0; i < 256; i++) {
        const sock = connect({ port, host: "127.0.0.1" });
        sock.on("error", () => {}); // the last ones may be reset: the health check above holds a slot
        await once(sock, "connect");
        idle.push(sock);
      }
      // The 257th from the same address is accepted by the kernel, then reset by the server.
      const extra = connect({ port, host: "127.0.0.1" });
      extra.on("error", () => {});
      const closed = await Promise.race([once(extra, "close", 5000).then(() => true), sleep(5000).then(() => false)]);
      assert.ok(closed, "a connection past the per-address cap is closed at once");
      // Another address still gets through and delivers.
      const res = await new Promise((resolve, reject) => {
        const body = JSON.stringify({ roomId: fresh("cap"), message: "from another address" });
        const req = httpRequest(
          { host: "127.0.0.1", port, localAddress: "127.0.0.2", method: "POST", path: "/webhook", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
          (r) => {
            let text = "";
            r.on("data", (d) => (text += d));
            r.on("end", () => resolve({ status: r.statusCode, text }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
      assert.equal(res.status, 200, res.text);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /sio_limit_hits_total\{limit="max_tcp_connections"\} [1-9]/);
    } finally {
      for (const s of idle) s.destroy();
      await server.stop();
    }
  });
});
