// The webhook (ARCHITECTURE.md, "HTTP", "Configuration" and "Application contract") end to end,
// against real processes and the stock socket.io-client:
//  - in-process: sio-server with WEBHOOK_PORT set delivers straight into its own rooms;
//  - socketio:   standalone sio-webhook (SOCKETIO_URL) in front of a sio-server, including the
//                server going away and coming back, and 200 concurrent POSTs;
//  - redis:      sio-webhook WEBHOOK_MODE=redis publishing into Redis for two sio-server instances;
//  - bad input:  exact statuses and error fields, HMAC signatures, Idempotency-Key, 404/405, GET /.
// Every describe starts and stops its own processes (by PID).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startServer, startWebhook, freePort, sleep, waitFor, fresh } from "./lib/server.mjs";
import { startRedis } from "./lib/redis.mjs";
import { request, post, get, show, group, eventsNamed, messageEvents, signed } from "./lib/webhook.mjs";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** How long to watch for deliveries that must not happen (duplicates, outsiders). */
const QUIET_MS = 300;
const MESSAGE_KEYS = ["id", "metadata", "roomId", "sender", "text", "timestamp"];



/**
 * Every route with a payload and what the delivered Message must look like. `payload(room, tag)`;
 * `text(payload)`; `meta` must be a subset of metadata (deep-equal per key); `absent` metadata keys.
 */
const ROUTES = [
  {
    name: "text with sender",
    path: "/webhook",
    event: "message",
    payload: (roomId, tag) => ({ roomId, message: `hello ${tag}`, sender: "Alice", ts: 42 }),
    text: (p) => p.message,
    sender: "Alice",
    meta: { type: "text", ts: 42 },
    absent: ["message", "roomId", "sender"],
  },
  {
    name: "text, sender defaults to Anonymous",
    path: "/webhook",
    event: "message",
    payload: (roomId, tag) => ({ roomId, message: `anon ${tag}` }),
    text: (p) => p.message,
    sender: "Anonymous",
    meta: { type: "text" },
    absent: ["message"],
  },
  {
    name: "zalo",
    path: "/webhook/zalo",
    event: "message:zalo",
    payload: (roomId, tag) => ({ roomId, message: `xin chào ${tag}`, zaloUserId: "zalo-7" }),
    text: (p) => p.message,
    sender: "Anonymous",
    meta: { type: "zalo", zaloUserId: "zalo-7" },
    absent: ["message"],
  },
  {
    name: "image without caption",
    path: "/webhook/image",
    event: "message:image",
    payload: (roomId) => ({ roomId, imageUrl: "https://cdn.example.test/a.png", width: 640, height: 480, fileSize: 1234 }),
    text: () => "sent an image",
    sender: "Anonymous",
    meta: { type: "image", imageUrl: "https://cdn.example.test/a.png", width: 640, height: 480, fileSize: 1234 },
    absent: ["caption"],
  },
  {
    name: "image with caption and sender",
    path: "/webhook/image",
    event: "message:image",
    payload: (roomId, tag) => ({ roomId, imageUrl: "http://cdn.example.test/cat.jpg", caption: `a cat ${tag}`, sender: "Bob" }),
    text: (p) => p.caption,
    sender: "Bob",
    meta: { type: "image", imageUrl: "http://cdn.example.test/cat.jpg" },
    metaFrom: (p) => ({ caption: p.caption }),
  },
  {
    name: "file",
    path: "/webhook/file",
    event: "message:file",
    payload: (roomId, tag) => ({
      roomId,
      fileUrl: "https://files.example.test/r.pdf",
      fileName: `report-${tag}.pdf`,
      fileSize: 2048,
      fileType: "application/pdf",
    }),
    text: (p) => p.fileName,
    sender: "Anonymous",
    meta: { type: "file", fileUrl: "https://files.example.test/r.pdf", fileSize: 2048, fileType: "application/pdf" },
    metaFrom: (p) => ({ fileName: p.fileName }),
  },
  {
    name: "location without address",
    path: "/webhook/location",
    event: "message:location",
    payload: (roomId) => ({ roomId, latitude: 10.77, longitude: 106.7 }),
    text: () => "shared a location",
    sender: "Anonymous",
    meta: { type: "location", latitude: 10.77, longitude: 106.7 },
    absent: ["address"],
  },
  {
    name: "location with address",
    path: "/webhook/location",
    event: "message:location",
    payload: (roomId, tag) => ({ roomId, latitude: -33.8688, longitude: 151.2093, address: `Sydney ${tag}`, sender: "Carol" }),
    text: (p) => p.address,
    sender: "Carol",
    meta: { type: "location", latitude: -33.8688, longitude: 151.2093 },
    metaFrom: (p) => ({ address: p.address }),
  },
  {
    name: "audio",
    path: "/webhook/audio",
    event: "message:audio",
    payload: (roomId) => ({ roomId, audioUrl: "https://voice.example.test/v.ogg", duration: 3.5 }),
    text: () => "sent a voice message",
    sender: "Anonymous",
    meta: { type: "audio", audioUrl: "https://voice.example.test/v.ogg", duration: 3.5 },
  },
];

/** Asserts `m` is the Message that `route` must produce for `payload` in `room`, with id `id`. */
function assertMessage(m, route, payload, room, id) {
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, `message fields: ${JSON.stringify(m)}`);
  assert.equal(m.id, id, "delivered id equals the id in the webhook's answer");
  assert.equal(m.roomId, room);
  assert.equal(m.text, route.text(payload));
  assert.equal(m.sender, route.sender);
  assert.match(m.timestamp, ISO);
  assert.ok(Math.abs(Date.parse(m.timestamp) - Date.now()) < 60_000, `timestamp ${m.timestamp} is now`);
  const meta = { via: "webhook", ...route.meta, ...(route.metaFrom?.(payload) ?? {}) };
  for (const [k, v] of Object.entries(meta)) {
    assert.deepEqual(m.metadata[k], v, `metadata.${k} in ${JSON.stringify(m.metadata)}`);
  }
  for (const k of route.absent ?? []) {
    assert.ok(!(k in m.metadata), `metadata.${k} must be absent: ${JSON.stringify(m.metadata)}`);
  }
}

/**
 * Defines one test per route: POST to the webhook at `hook()`; a member of the room on `sio()`
 * receives the typed event (if any) and `message` exactly once, an outsider nothing.
 */
function routeTests(g, hook, sio, clientOpts = {}) {
  for (const route of ROUTES) {
    test(`POST ${route.path} (${route.name}) → ${route.event === "message" ? "message" : `${route.event} + message`}`, { timeout: 15000 }, async () => {
      const room = fresh(route.name.split(" ")[0]);
      const member = await g.member(sio().url, room, clientOpts);
      const outsider = await g.member(sio().url, fresh("outsider"), clientOpts);
      const payload = route.payload(room, fresh("t"));
      const res = await post(hook().url, route.path, payload);
      assert.equal(res.status, 200, `answer: ${show(res)}\n${g.logs()}`);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(res.json.ok, true, show(res));
      assert.equal(typeof res.json.id, "string");
      assert.ok(res.json.id.length > 0);
      assert.deepEqual(res.json, { ok: true, id: res.json.id });
      const want = route.event === "message" ? 1 : 2;
      await waitFor(() => messageEvents(member).length >= want, 5000, () => `events: ${JSON.stringify(member.events)}`);
      await sleep(QUIET_MS);
      const generic = eventsNamed(member, "message");
      assert.equal(generic.length, 1, `exactly one message: ${JSON.stringify(member.events)}`);
      assertMessage(generic[0], route, payload, room, res.json.id);
      if (route.event !== "message") {
        const typed = eventsNamed(member, route.event);
        assert.equal(typed.length, 1, `exactly one ${route.event}: ${JSON.stringify(member.events)}`);
        assert.deepEqual(typed[0], generic[0], "the typed event carries the same Message");
      }
      assert.equal(messageEvents(member).length, want, `no other message events: ${JSON.stringify(member.events)}`);
      assert.deepEqual(messageEvents(outsider), [], "a client outside the room receives nothing");
      member.disconnect();
      outsider.disconnect();
    });
  }
}

describe("in-process webhook (sio-server with WEBHOOK_PORT)", () => {
  const g = group();
  let server;
  let hook;
  before(async () => {
    const port = await freePort();
    server = g.track(await startServer({ env: { WEBHOOK_PORT: String(port), INSTANCE_ID: "wh-inproc" } }));
    hook = { url: `http://127.0.0.1:${port}`, port };
    await waitFor(async () => (await get(hook.url, "/health")).status === 200, 5000, "in-process webhook /health 200");
  });
  after(() => g.close());

  test("GET /health answers 200 {status: ok}", async () => {
    const res = await get(hook.url, "/health");
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.status, "ok");
  });

  routeTests(g, () => hook, () => server);
});

describe("socketio mode (standalone sio-webhook → sio-server)", () => {
  const g = group();
  let server;
  let hook;
  before(async () => {
    server = g.track(await startServer({ env: { INSTANCE_ID: "wh-sio" } }));
    hook = g.track(await startWebhook({ env: { SOCKETIO_URL: server.url, INSTANCE_ID: "wh-hook" } }));
    await waitFor(async () => (await get(hook.url, "/health")).status === 200, 5000, () => `webhook /health 200\n${g.logs()}`);
  });
  after(() => g.close());

  test("GET /health answers 200 {status: ok, mode: socketio}", async () => {
    const res = await get(hook.url, "/health");
    assert.equal(res.status, 200, show(res));
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(res.json.status, "ok");
    assert.equal(res.json.mode, "socketio");
  });

  routeTests(g, () => hook, () => server, { transports: ["websocket"] });

  test("200 concurrent POSTs are all answered 200 and each delivered exactly once", { timeout: 20000 }, async () => {
    const room = fresh("burst");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const tag = fresh("b");
    const N = 200;
    const texts = Array.from({ length: N }, (_, i) => `burst ${tag} #${i}`);
    const answers = await Promise.all(texts.map((message) => post(hook.url, "/webhook", { roomId: room, message })));
    const bad = answers.filter((r) => r.status !== 200 || r.json?.ok !== true);
    assert.deepEqual(bad.map(show).slice(0, 5), [], `${bad.length} of ${N} POSTs were not answered 200\n${g.logs()}`);
    const ids = answers.map((r) => r.json.id);
    assert.equal(new Set(ids).size, N, "every answer has its own id");
    await waitFor(() => eventsNamed(member, "message").length >= N, 10000, () => `received ${eventsNamed(member, "message").length} of ${N}`);
    await sleep(500);
    const got = eventsNamed(member, "message");
    const counts = new Map();
    for (const m of got) counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
    const missing = texts.filter((t) => !counts.has(t));
    const dupes = [...counts].filter(([, n]) => n > 1);
    const strangers = [...counts.keys()].filter((t) => !texts.includes(t));
    assert.deepEqual({ missing, dupes, strangers }, { missing: [], dupes: [], strangers: [] });
    assert.equal(got.length, N);
    assert.deepEqual(new Set(got.map((m) => m.id)), new Set(ids), "delivered ids are the answered ids");
    member.disconnect();
  });

  // Last in this describe: it stops and restarts the sio-server.
  test("sio-server down → 503 with Retry-After and /health 503; back up → /health 200 within 10 s and delivery resumes", { timeout: 20000 }, async () => {
    const port = server.port;
    await server.stop();
    const stoppedAt = Date.now();
    const down = await waitFor(async () => {
      const r = await get(hook.url, "/health");
      return r.status === 503 ? r : null;
    }, 5000, (r) => `/health still ${r?.status} ${r?.text} 5 s after the stop\n${g.logs()}`);
    assert.match(down.headers.get("content-type") ?? "", /^application\/json/);
    assert.notEqual(down.json?.status, "ok", show(down));
    assert.equal(down.json?.mode, "socketio", show(down));
    const room = fresh("down");
    const res = await post(hook.url, "/webhook", { roomId: room, message: "while down" });
    assert.equal(res.status, 503, `POST while the server is down: ${show(res)}`);
    const retry = res.headers.get("retry-after");
    assert.ok(retry !== null && /^\d+$/.test(retry), `Retry-After header: ${retry}`);
    assert.equal(res.json?.ok, false, show(res));
    assert.equal(typeof res.json.error, "object", show(res));
    assert.equal(typeof res.json.error.message, "string", show(res));
    const typed = await post(hook.url, "/webhook/image", { roomId: room, imageUrl: "https://x.test/a.png" });
    assert.equal(typed.status, 503, `typed POST while the server is down: ${show(typed)}`);
    const key = fresh("retry-key");
    const keyedBody = { roomId: room, message: "retried with a key" };
    const keyed = await post(hook.url, "/webhook", keyedBody, { headers: { "Idempotency-Key": key } });
    assert.equal(keyed.status, 503, `keyed POST while the server is down: ${show(keyed)}`);
    assert.ok(Date.now() - stoppedAt < 8000);

    server = g.track(await startServer({ port, env: { INSTANCE_ID: "wh-sio-2" } }));
    const restartedAt = Date.now();
    const up = await waitFor(async () => {
      const r = await get(hook.url, "/health");
      return r.status === 200 ? r : null;
    }, 10000, (r) => `/health still ${r?.status} ${r?.text} 10 s after the restart\n${g.logs()}`);
    assert.deepEqual({ status: up.json.status, mode: up.json.mode }, { status: "ok", mode: "socketio" });
    assert.ok(Date.now() - restartedAt <= 10000);
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const again = await post(hook.url, "/webhook", { roomId: room, message: "back up" });
    assert.equal(again.status, 200, `POST after the restart: ${show(again)}\n${g.logs()}`);
    // A 503 is not final: the retry with the same Idempotency-Key is delivered, not replayed.
    const retried = await post(hook.url, "/webhook", keyedBody, { headers: { "Idempotency-Key": key } });
    assert.equal(retried.status, 200, `keyed retry after the restart: ${show(retried)}`);
    assert.notEqual(retried.headers.get("idempotent-replayed"), "true", "the 503 was not remembered");
    await waitFor(() => eventsNamed(member, "message").length >= 2, 5000, () => `events: ${JSON.stringify(member.events)}`);
    await sleep(QUIET_MS);
    const got = eventsNamed(member, "message");
    assert.deepEqual(
      got.map((m) => [m.text, m.id]),
      [["back up", again.json.id], ["retried with a key", retried.json.id]],
      "exactly the two messages sent after the restart (nothing sent while down is delivered late)",
    );
    member.disconnect();
  });
});

describe("redis mode (sio-webhook WEBHOOK_MODE=redis → two sio-servers)", () => {
  const g = group();
  let redis;
  let servers;
  let hook;
  before(async () => {
    redis = await startRedis();
    servers = [
      g.track(await startServer({ env: { REDIS_URL: redis.url, INSTANCE_ID: "wh-redis-a" } })),
      g.track(await startServer({ env: { REDIS_URL: redis.url, INSTANCE_ID: "wh-redis-b" } })),
    ];
    hook = g.track(await startWebhook({ env: { WEBHOOK_MODE: "redis", REDIS_URL: redis.url, INSTANCE_ID: "wh-redis-hook" } }));
    await waitFor(async () => (await get(hook.url, "/health")).status === 200, 5000, () => `webhook /health 200\n${g.logs()}`);
  });
  after(async () => {
    await g.close();
    await redis?.stop();
  });

  test("GET /health answers 200 {status: ok, mode: redis}", async () => {
    const res = await get(hook.url, "/health");
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.status, "ok");
    assert.equal(res.json.mode, "redis");
  });

  for (const route of ROUTES.filter((r) => r.name === "text with sender" || r.name === "image with caption and sender")) {
    test(`POST ${route.path} reaches room members on both instances`, { timeout: 15000 }, async () => {
      const room = fresh("redis");
      const members = [];
      for (const srv of servers) members.push(await g.member(srv.url, room, { transports: ["websocket"] }));
      const outsider = await g.member(servers[1].url, fresh("outsider"), { transports: ["websocket"] });
      const payload = route.payload(room, fresh("t"));
      const res = await post(hook.url, route.path, payload);
      assert.equal(res.status, 200, `answer: ${show(res)}\n${g.logs()}`);
      assert.deepEqual(res.json, { ok: true, id: res.json.id });
      const want = route.event === "message" ? 1 : 2;
      for (const [i, m] of members.entries()) {
        await waitFor(() => messageEvents(m).length >= want, 5000, () => `instance ${i}: events ${JSON.stringify(m.events)}\n${g.logs()}`);
      }
      await sleep(QUIET_MS);
      for (const m of members) {
        const generic = eventsNamed(m, "message");
        assert.equal(generic.length, 1, JSON.stringify(m.events));
        assertMessage(generic[0], route, payload, room, res.json.id);
        if (route.event !== "message") {
          const typed = eventsNamed(m, route.event);
          assert.equal(typed.length, 1, JSON.stringify(m.events));
          assert.deepEqual(typed[0], generic[0]);
        }
        assert.equal(messageEvents(m).length, want, JSON.stringify(m.events));
        m.disconnect();
      }
      assert.deepEqual(messageEvents(outsider), []);
      outsider.disconnect();
    });
  }

  // Last in this describe: it stops the sio-servers.
  test("with every sio-server stopped, POST answers 503 (no subscribed server)", { timeout: 15000 }, async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await sleep(300);
    const res = await post(hook.url, "/webhook", { roomId: fresh("nobody"), message: "into the void" });
    assert.equal(res.status, 503, `POST with no server subscribed: ${show(res)}\n${g.logs()}`);
    assert.ok(res.headers.get("retry-after"), "Retry-After header");
    assert.equal(res.json?.ok, false, show(res));
    assert.equal(typeof res.json.error?.message, "string", show(res));
    const typed = await post(hook.url, "/webhook/image", { roomId: fresh("nobody"), imageUrl: "https://x.test/a.png" });
    assert.equal(typed.status, 503, `typed POST with no server subscribed: ${show(typed)}`);
  });
});

describe("bad input, routes and idempotency (in-process)", () => {
  const g = group();
  let server;
  let hook;
  let room;
  let watcher;
  before(async () => {
    const port = await freePort();
    server = g.track(await startServer({ env: { WEBHOOK_PORT: String(port) } }));
    hook = { url: `http://127.0.0.1:${port}` };
    room = fresh("bad");
    watcher = await g.member(server.url, room, { transports: ["websocket"] });
  });
  after(() => g.close());

  const CASES = [
    { name: "no body", opts: {}, status: 400, field: "body", code: "invalid_json" },
    { name: "wrong Content-Type", opts: { raw: () => JSON.stringify({ roomId: room, message: "x" }), contentType: "text/plain" }, status: 415 },
    { name: "no Content-Type", opts: { raw: () => JSON.stringify({ roomId: room, message: "x" }), contentType: null }, status: 415 },
    { name: "missing roomId", opts: { body: () => ({ message: "x" }) }, status: 400, field: "roomId" },
    { name: "empty message", opts: { body: () => ({ roomId: room, message: "" }) }, status: 400, field: "message" },
    { name: "non-object JSON [1]", opts: { raw: () => "[1]" }, status: 400, field: "payload" },
    { name: "bad JSON", opts: { raw: () => '{"roomId":' }, status: 400, field: "body" },
    {
      name: "oversize body (> 1 MiB)",
      opts: { body: () => ({ roomId: room, message: "x".repeat((1 << 20) + 16) }) },
      status: 413,
    },
    {
      name: "image with a non-http URL",
      path: "/webhook/image",
      opts: { body: () => ({ roomId: room, imageUrl: "file:///etc/passwd" }) },
      status: 400,
      field: "imageUrl",
      code: "invalid_url",
    },
  ];
  for (const c of CASES) {
    test(`${c.name} → ${c.status}${c.field ? ` field ${c.field}` : ""}${c.code ? ` code ${c.code}` : ""}`, async () => {
      const opts = { contentType: "application/json", ...c.opts };
      if (typeof opts.raw === "function") opts.raw = opts.raw();
      if (typeof opts.body === "function") opts.body = opts.body();
      const res = await request(hook.url, c.path ?? "/webhook", opts);
      assert.equal(res.status, c.status, show(res).slice(0, 500));
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(res.json?.ok, false, res.text.slice(0, 500));
      assert.equal(typeof res.json.error?.message, "string", res.text);
      assert.ok(res.json.error.message.length > 0);
      if (c.field) assert.equal(res.json.error.field, c.field, res.text);
      if (c.code) assert.equal(res.json.error.code, c.code, res.text);
    });
  }

  test("none of the refused requests was delivered", async () => {
    await sleep(QUIET_MS);
    assert.deepEqual(messageEvents(watcher), []);
  });

  test("unknown route → 404 JSON", async () => {
    for (const [method, path] of [["GET", "/nope"], ["POST", "/webhook/video"], ["POST", "/webhooks"]]) {
      const res = await request(hook.url, path, { method, body: method === "POST" ? { roomId: room, message: "x" } : undefined });
      assert.equal(res.status, 404, `${method} ${path}: ${show(res)}`);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/, `${method} ${path}`);
      assert.equal(res.json?.ok, false, `${method} ${path}: ${res.text}`);
      assert.equal(typeof res.json.error?.message, "string");
    }
  });

  test("GET /webhook → 405 JSON with Allow: POST", async () => {
    for (const path of ["/webhook", "/webhook/image"]) {
      const res = await get(hook.url, path);
      assert.equal(res.status, 405, `GET ${path}: ${show(res)}`);
      assert.equal(res.headers.get("allow"), "POST", `GET ${path}`);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(res.json?.ok, false, res.text);
    }
  });

  test("GET / returns a JSON description of the routes", async () => {
    const res = await get(hook.url, "/");
    assert.equal(res.status, 200, show(res));
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(typeof res.json, "object");
    assert.ok(res.json !== null && !Array.isArray(res.json));
    for (const route of ["/webhook", "/webhook/zalo", "/webhook/image", "/webhook/file", "/webhook/location", "/webhook/audio", "/health"]) {
      assert.ok(res.text.includes(`${route}"`) || res.text.includes(`${route} `), `description mentions ${route}`);
    }
  });

  test("Idempotency-Key: a replay gets the same answer, marked idempotent-replayed, delivered once", async () => {
    const r = fresh("idem");
    const member = await g.member(server.url, r, { transports: ["websocket"] });
    const key = fresh("key");
    const body = { roomId: r, message: `once ${key}` };
    const first = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.equal(first.status, 200, show(first));
    assert.equal(first.headers.get("idempotent-replayed"), null, "the first answer is not a replay");
    const second = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } });
    assert.equal(second.status, 200, show(second));
    assert.deepEqual(second.json, first.json, "same answer, same id");
    assert.equal(second.headers.get("idempotent-replayed"), "true");
    const other = await post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": `${key}-other` } });
    assert.equal(other.status, 200, show(other));
    assert.notEqual(other.json.id, first.json.id, "another key is another message");
    await waitFor(() => eventsNamed(member, "message").length >= 2, 5000, () => JSON.stringify(member.events));
    await sleep(QUIET_MS);
    const ids = eventsNamed(member, "message").map((m) => m.id);
    assert.deepEqual(ids.sort(), [first.json.id, other.json.id].sort(), "the replay was not delivered again");
    member.disconnect();
  });

  test("Idempotency-Key: concurrent requests with one key deliver once", async () => {
    const r = fresh("idem-c");
    const member = await g.member(server.url, r, { transports: ["websocket"] });
    const key = fresh("ckey");
    const body = { roomId: r, message: `concurrent ${key}` };
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => post(hook.url, "/webhook", body, { headers: { "Idempotency-Key": key } })),
    );
    for (const a of answers) assert.equal(a.status, 200, show(a));
    assert.equal(new Set(answers.map((a) => a.json.id)).size, 1, `one id: ${answers.map(show).join(", ")}`);
    assert.equal(answers.filter((a) => a.headers.get("idempotent-replayed") === "true").length, 4);
    await waitFor(() => eventsNamed(member, "message").length >= 1, 5000, () => JSON.stringify(member.events));
    await sleep(QUIET_MS);
    assert.equal(eventsNamed(member, "message").length, 1, JSON.stringify(member.events));
    member.disconnect();
  });
});

describe("WEBHOOK_SECRET: HMAC-SHA256 signatures with timestamps (in-process)", () => {
  const SECRET = "a-test-secret-of-at-least-32-bytes!";
  const g = group();
  let server;
  let hook;
  before(async () => {
    const port = await freePort();
    server = g.track(await startServer({ env: { WEBHOOK_PORT: String(port), WEBHOOK_SECRET: SECRET } }));
    hook = { url: `http://127.0.0.1:${port}` };
  });
  after(() => g.close());

  const refused = (res, what, code = "invalid_signature", field = "X-Webhook-Signature") => {
    assert.equal(res.status, 401, `${what}: ${show(res)}`);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(res.json?.ok, false, res.text);
    assert.equal(res.json.error?.code, code, `${what}: ${res.text}`);
    assert.equal(res.json.error?.field, field, `${what}: ${res.text}`);
  };

  test("missing, wrong and stale signatures → 401 naming why, nothing delivered", async () => {
    const room = fresh("sig-bad");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const raw = JSON.stringify({ roomId: room, message: "unsigned" });
    const now = Math.floor(Date.now() / 1000);
    const good = signed(SECRET, raw);
    refused(await post(hook.url, "/webhook", undefined, { raw }), "nothing", "missing_timestamp", "X-Webhook-Timestamp");
    refused(
      await post(hook.url, "/webhook", undefined, { raw, headers: { "X-Webhook-Signature": good["X-Webhook-Signature"] } }),
      "no timestamp",
      "missing_timestamp",
      "X-Webhook-Timestamp",
    );
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: { "X-Webhook-Timestamp": good["X-Webhook-Timestamp"] } }), "no signature");
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: signed("another-secret-of-at-least-32-bytes", raw) }), "signed with another secret");
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, `${raw} `) }), "signature of another body");
    refused(
      await post(hook.url, "/webhook", undefined, { raw, headers: { ...signed(SECRET, raw, now - 10), "X-Webhook-Timestamp": String(now) } }),
      "timestamp changed after signing",
    );
    refused(
      await post(hook.url, "/webhook", undefined, { raw, headers: { ...good, "X-Webhook-Signature": good["X-Webhook-Signature"].slice(7) } }),
      "hex without sha256= prefix",
    );
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: { ...good, "X-Webhook-Signature": "sha256=zz" } }), "not hex");
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, raw, now - 600) }), "10 minutes old", "stale_timestamp", "X-Webhook-Timestamp");
    refused(await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, raw, now + 600) }), "10 minutes ahead", "stale_timestamp", "X-Webhook-Timestamp");
    const typedRaw = JSON.stringify({ roomId: room, imageUrl: "https://x.test/a.png" });
    refused(await post(hook.url, "/webhook/image", undefined, { raw: typedRaw }), "typed route without signature", "missing_timestamp", "X-Webhook-Timestamp");
    await sleep(QUIET_MS);
    assert.deepEqual(messageEvents(member), []);
    member.disconnect();
  });

  test("a correct timestamped signature of the raw body → 200 and delivered; 4 minutes of clock skew pass", async () => {
    const room = fresh("sig-ok");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    // Deliberately unusual formatting: the HMAC covers the raw bytes, not a re-serialisation.
    const raw = `{ "roomId" : "${room}",\n  "message": "signed ✓" }`;
    const res = await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, raw) });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(res.json, { ok: true, id: res.json.id });
    const typedRaw = JSON.stringify({ roomId: room, latitude: 1, longitude: 2 });
    const skewed = signed(SECRET, typedRaw, Math.floor(Date.now() / 1000) - 240);
    const typed = await post(hook.url, "/webhook/location", undefined, { raw: typedRaw, headers: skewed });
    assert.equal(typed.status, 200, show(typed));
    await waitFor(() => eventsNamed(member, "message").length >= 2, 5000, () => JSON.stringify(member.events));
    const [m1, m2] = eventsNamed(member, "message");
    assert.equal(m1.text, "signed ✓");
    assert.equal(m1.id, res.json.id);
    assert.equal(m2.id, typed.json.id);
    assert.equal(eventsNamed(member, "message:location").length, 1);
    member.disconnect();
  });

  test("a replayed request is refused (401 replayed_signature) and not delivered again", async () => {
    const room = fresh("sig-replay");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const raw = JSON.stringify({ roomId: room, message: "pay once" });
    const headers = signed(SECRET, raw);
    const first = await post(hook.url, "/webhook", undefined, { raw, headers });
    assert.equal(first.status, 200, show(first));
    for (let i = 0; i < 3; i++) {
      refused(await post(hook.url, "/webhook", undefined, { raw, headers }), `replay #${i + 1}`, "replayed_signature");
    }
    // The sender's own retry is signed afresh (a new timestamp) and is a new request.
    const again = await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, raw, Number(headers["X-Webhook-Timestamp"]) + 1) });
    assert.equal(again.status, 200, show(again));
    await waitFor(() => eventsNamed(member, "message").length >= 2, 5000, () => JSON.stringify(member.events));
    await sleep(QUIET_MS);
    assert.deepEqual(eventsNamed(member, "message").map((m) => m.id), [first.json.id, again.json.id]);
    member.disconnect();
  });

  test("with an Idempotency-Key, a byte-identical replay only gets the remembered answer", async () => {
    const room = fresh("sig-key");
    const member = await g.member(server.url, room, { transports: ["websocket"] });
    const raw = JSON.stringify({ roomId: room, message: "keyed" });
    const headers = { ...signed(SECRET, raw), "Idempotency-Key": fresh("sk") };
    const first = await post(hook.url, "/webhook", undefined, { raw, headers });
    assert.equal(first.status, 200, show(first));
    const replay = await post(hook.url, "/webhook", undefined, { raw, headers });
    assert.equal(replay.status, 200, show(replay));
    assert.deepEqual(replay.json, first.json);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    // A captured request replayed under a key the server never handled cannot deliver.
    const raw2 = JSON.stringify({ roomId: room, message: "captured" });
    const h2 = signed(SECRET, raw2);
    assert.equal((await post(hook.url, "/webhook", undefined, { raw: raw2, headers: h2 })).status, 200);
    refused(await post(hook.url, "/webhook", undefined, { raw: raw2, headers: { ...h2, "Idempotency-Key": fresh("new") } }), "replay under a new key", "replayed_signature");
    await sleep(QUIET_MS);
    assert.equal(eventsNamed(member, "message").length, 2, JSON.stringify(member.events));
    member.disconnect();
  });

  test("with a secret, a signed but invalid payload is still a 400, not a 401", async () => {
    const raw = JSON.stringify({ roomId: fresh("sig-invalid") });
    const res = await post(hook.url, "/webhook", undefined, { raw, headers: signed(SECRET, raw) });
    assert.equal(res.status, 400, show(res));
    assert.equal(res.json.error.field, "message");
  });
});
