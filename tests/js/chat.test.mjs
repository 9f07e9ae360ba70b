// The chat application contract (ARCHITECTURE.md, "Application contract" and "HTTP") against the
// real sio-server binary, driven by the stock socket.io-client.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, sleep, once } from "./lib/server.mjs";

const INSTANCE = "chat-test-1";
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
/** How long to watch for deliveries that must not happen. */
const QUIET_MS = 250;

let server;
const clients = [];
let roomSeq = 0;
const freshRoom = (name) => `${name}-${++roomSeq}-${Date.now()}`;

/** Connects a client; resolves once connected with `welcome` received. Records every event. */
async function client(opts = {}) {
  const s = io(server.url, { forceNew: true, reconnection: false, ...opts });
  clients.push(s);
  s.events = [];
  s.onAny((event, ...args) => s.events.push([event, ...args]));
  const welcome = once(s, "welcome");
  await once(s, "connect");
  [s.welcome] = await welcome;
  s.events = [];
  return s;
}

async function joined(room, ...sockets) {
  for (const s of sockets) {
    const res = await s.emitWithAck("join", room);
    assert.equal(res.ok, true, `join ${room}: ${JSON.stringify(res)}`);
  }
}

/** Waits until `s` has recorded at least `n` events matching `pred`, or fails after `ms`. */
async function waitForEvents(s, n, pred = () => true, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = s.events.filter(pred);
    if (got.length >= n) return got;
    if (Date.now() > deadline) {
      assert.fail(`expected ${n} event(s), got ${JSON.stringify(s.events)}`);
    }
    await sleep(10);
  }
}

const isMessageEvent = ([event]) => event === "message" || event.startsWith("message:");

before(async () => {
  server = await startServer({ env: { INSTANCE_ID: INSTANCE } });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await server?.stop();
});

describe("connection", () => {
  test("welcome carries the instance id and the socket id", async () => {
    const s = await client();
    assert.deepEqual(s.welcome, { instanceId: INSTANCE, socketId: s.id });
    s.disconnect();
  });

  test("welcome over websocket only", async () => {
    const s = await client({ transports: ["websocket"] });
    assert.deepEqual(s.welcome, { instanceId: INSTANCE, socketId: s.id });
    s.disconnect();
  });

  test("echo acks the same arguments", async () => {
    const s = await client();
    const args = [1, "two", { three: [true, null, 3.5] }, ["x"]];
    const reply = await new Promise((resolve) => s.emit("echo", ...args, (...r) => resolve(r)));
    assert.deepEqual(reply, args);
    assert.deepEqual(await s.emitWithAck("echo", "single"), "single");
    s.disconnect();
  });
});

describe("rooms", () => {
  test("join acks {ok, roomId, instanceId}", async () => {
    const s = await client();
    const room = freshRoom("join");
    assert.deepEqual(await s.emitWithAck("join", room), { ok: true, roomId: room, instanceId: INSTANCE });
    s.disconnect();
  });

  for (const [label, arg, code] of [
    ["empty string", "", "required"],
    ["blank string", "   ", "required"],
    ["number", 42, "invalid_type"],
  ]) {
    test(`invalid join (${label}) acks ok:false with field roomId`, async () => {
      const s = await client();
      const res = await s.emitWithAck("join", arg);
      assert.equal(res.ok, false);
      assert.equal(res.error.field, "roomId");
      assert.equal(res.error.code, code);
      assert.equal(typeof res.error.message, "string");
      assert.ok(res.error.message.length > 0);
      s.disconnect();
    });
  }

  test("join without an argument acks ok:false with field roomId", async () => {
    const s = await client();
    const res = await new Promise((resolve) => s.emit("join", resolve));
    assert.equal(res.ok, false);
    assert.equal(res.error.field, "roomId");
    s.disconnect();
  });

  test("leave acks {ok, roomId} and stops delivery", async () => {
    const [a, b] = [await client(), await client()];
    const room = freshRoom("leave");
    await joined(room, a, b);
    assert.deepEqual(await b.emitWithAck("leave", room), { ok: true, roomId: room });
    const ack = await a.emitWithAck("message", { roomId: room, message: "after leave" });
    assert.equal(ack.ok, true);
    await waitForEvents(a, 1, isMessageEvent);
    await sleep(QUIET_MS);
    assert.deepEqual(b.events, []);
    a.disconnect();
    b.disconnect();
  });

  test("invalid leave acks ok:false with field roomId", async () => {
    const s = await client();
    const res = await s.emitWithAck("leave", "");
    assert.equal(res.ok, false);
    assert.equal(res.error.field, "roomId");
    s.disconnect();
  });
});

// One entry per message type: a valid payload and what the delivered Message must look like,
// plus invalid payloads with the exact field (and code) the server must report.
const TYPES = [
  {
    kind: "text",
    event: "message",
    valid: { message: "hello world" },
    text: "hello world",
    metadata: {},
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["empty message", { message: "" }, "message", "required"],
      ["blank message", { message: "   " }, "message", "required"],
      ["missing message", { message: undefined }, "message", "required"],
      ["message of the wrong type", { message: 5 }, "message", "invalid_type"],
      ["sender of the wrong type", { sender: 7 }, "sender", "invalid_type"],
      ["metadata not an object", { metadata: "x" }, "metadata", "invalid_type"],
      ["roomId of the wrong type", { roomId: 3 }, "roomId", "invalid_type"],
    ],
  },
  {
    kind: "zalo",
    event: "message:zalo",
    valid: { message: "xin chào", zaloUserId: "z-123" },
    text: "xin chào",
    metadata: { zaloUserId: "z-123" },
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["empty message", { message: "" }, "message", "required"],
      ["zaloUserId of the wrong type", { zaloUserId: 5 }, "zaloUserId", "invalid_type"],
    ],
  },
  {
    kind: "image",
    event: "message:image",
    valid: { imageUrl: "https://cdn.example.com/cat.png", caption: "a cat", width: 640, height: 480, fileSize: 1024 },
    text: "a cat",
    metadata: { imageUrl: "https://cdn.example.com/cat.png", caption: "a cat", width: 640, height: 480, fileSize: 1024 },
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["missing imageUrl", { imageUrl: undefined }, "imageUrl", "required"],
      ["relative URL", { imageUrl: "cat.png" }, "imageUrl", "invalid_url"],
      ["file: URL", { imageUrl: "file:///etc/passwd" }, "imageUrl", "invalid_url"],
      ["javascript: URL", { imageUrl: "javascript:alert(1)" }, "imageUrl", "invalid_url"],
      ["negative width", { width: -1 }, "width", "out_of_range"],
      ["height of the wrong type", { height: "tall" }, "height", "invalid_type"],
    ],
  },
  {
    kind: "image (no caption)",
    type: "image",
    event: "message:image",
    valid: { imageUrl: "http://127.0.0.1/x.jpg" },
    text: "sent an image",
    metadata: { imageUrl: "http://127.0.0.1/x.jpg" },
    invalid: [],
  },
  {
    kind: "file",
    event: "message:file",
    valid: { fileUrl: "https://files.example.com/r.pdf", fileName: "report.pdf", fileSize: 2048, fileType: "application/pdf" },
    text: "report.pdf",
    metadata: { fileUrl: "https://files.example.com/r.pdf", fileName: "report.pdf", fileSize: 2048, fileType: "application/pdf" },
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["bad URL", { fileUrl: "not a url" }, "fileUrl", "invalid_url"],
      ["ftp URL", { fileUrl: "ftp://files.example.com/r.pdf" }, "fileUrl", "invalid_url"],
      ["missing fileName", { fileName: undefined }, "fileName", "required"],
      ["negative fileSize", { fileSize: -5 }, "fileSize", "out_of_range"],
    ],
  },
  {
    kind: "location",
    event: "message:location",
    valid: { latitude: 10.7769, longitude: 106.7009, address: "Ho Chi Minh City" },
    text: "Ho Chi Minh City",
    metadata: { latitude: 10.7769, longitude: 106.7009, address: "Ho Chi Minh City" },
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["latitude above 90", { latitude: 90.5 }, "latitude", "out_of_range"],
      ["latitude below -90", { latitude: -91 }, "latitude", "out_of_range"],
      ["longitude out of range", { longitude: 181 }, "longitude", "out_of_range"],
      ["latitude as a string", { latitude: "10" }, "latitude", "invalid_type"],
      ["missing longitude", { longitude: undefined }, "longitude", "required"],
    ],
  },
  {
    kind: "location (no address)",
    type: "location",
    event: "message:location",
    valid: { latitude: -33.5, longitude: -70.25 },
    text: "shared a location",
    metadata: { latitude: -33.5, longitude: -70.25 },
    invalid: [],
  },
  {
    kind: "audio",
    event: "message:audio",
    valid: { audioUrl: "https://media.example.com/v.ogg", duration: 3.5 },
    text: "sent a voice message",
    metadata: { audioUrl: "https://media.example.com/v.ogg", duration: 3.5 },
    invalid: [
      ["missing roomId", { roomId: undefined }, "roomId", "required"],
      ["missing audioUrl", { audioUrl: undefined }, "audioUrl", "required"],
      ["bad URL", { audioUrl: "ftp://media.example.com/v.ogg" }, "audioUrl", "invalid_url"],
      ["negative duration", { duration: -1 }, "duration", "out_of_range"],
    ],
  },
];

/** `base` with `overrides` applied; an `undefined` override removes the field. */
function payloadWith(base, overrides) {
  const p = { ...base, ...overrides };
  for (const [k, v] of Object.entries(p)) if (v === undefined) delete p[k];
  return p;
}

describe("messages", () => {
  let sender, receiver, outsider, room;

  before(async () => {
    [sender, receiver, outsider] = [await client(), await client(), await client()];
    room = freshRoom("chat");
    await joined(room, sender, receiver);
    await joined(freshRoom("elsewhere"), outsider);
  });

  after(() => {
    for (const s of [sender, receiver, outsider]) s?.disconnect();
  });

  const reset = () => {
    for (const s of [sender, receiver, outsider]) s.events = [];
  };

  for (const t of TYPES) {
    const type = t.type ?? t.kind;

    test(`${t.kind}: delivered to the room as ${t.event === "message" ? "message" : `${t.event} and message`}`, async () => {
      reset();
      const payload = { roomId: room, ...t.valid, ts: 1700000000123 };
      const before = new Date();
      const ack = await sender.emitWithAck(t.event, payload);
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.deepEqual(Object.keys(ack).sort(), ["id", "ok"]);
      assert.equal(typeof ack.id, "string");

      const expectedEvents = t.event === "message" ? ["message"] : [t.event, "message"];
      const got = await waitForEvents(receiver, expectedEvents.length, isMessageEvent);
      await sleep(QUIET_MS); // nothing more may arrive
      const delivered = receiver.events.filter(isMessageEvent);
      assert.deepEqual(delivered.map(([e]) => e).sort(), [...expectedEvents].sort());
      // One Message, then its offset (connection state recovery is on by default).
      for (const [, ...args] of got) {
        assert.equal(args.length, 2);
        assert.match(args[1], /^\d+$/);
      }

      const message = delivered.find(([e]) => e === "message")[1];
      for (const [, m] of delivered) assert.deepEqual(m, message, "specific and generic events carry the same Message");
      assert.deepEqual(Object.keys(message).sort(), ["id", "metadata", "roomId", "sender", "text", "timestamp"]);
      assert.equal(message.id, ack.id);
      assert.equal(message.text, t.text);
      assert.equal(message.sender, "Anonymous");
      assert.equal(message.roomId, room);
      assert.match(message.timestamp, ISO);
      const ts = Date.parse(message.timestamp);
      assert.ok(ts >= before.getTime() - 5000 && ts <= Date.now() + 5000, `timestamp ${message.timestamp} is now`);
      assert.deepEqual(message.metadata, { ...t.metadata, type, ts: 1700000000123 });

      // The sender is in the room too and gets the same message; the outsider gets nothing.
      const own = await waitForEvents(sender, expectedEvents.length, isMessageEvent);
      assert.deepEqual(own.find(([e]) => e === "message")[1], message);
      assert.deepEqual(outsider.events, []);
    });

    for (const [label, overrides, field, code] of t.invalid) {
      test(`${t.kind}: invalid (${label}) is rejected with field ${field}`, async () => {
        reset();
        const payload = payloadWith({ roomId: room, ...t.valid }, overrides);
        const ack = await sender.emitWithAck(t.event, payload);
        assert.equal(ack.ok, false, JSON.stringify(ack));
        assert.deepEqual(Object.keys(ack).sort(), ["error", "ok"]);
        assert.deepEqual(Object.keys(ack.error).sort(), ["code", "field", "message"]);
        assert.equal(ack.error.field, field);
        assert.equal(ack.error.code, code);
        assert.equal(typeof ack.error.message, "string");
        assert.ok(ack.error.message.length > 0);

        const [errEvent] = await waitForEvents(sender, 1, ([e]) => e === "message:error");
        assert.deepEqual(errEvent[1], { event: t.event, error: ack.error });
        await sleep(QUIET_MS);
        assert.deepEqual(sender.events, [errEvent], "the sender gets only message:error");
        assert.deepEqual(receiver.events, [], "nothing is delivered to the room");
        assert.deepEqual(outsider.events, []);
      });
    }
  }

  test("sender name, client metadata and unknown fields are kept", async () => {
    reset();
    const payload = { roomId: room, message: "hi", sender: "Alice", metadata: { color: "red", instanceId: "x" }, clientRef: { n: [1, 2] } };
    const ack = await sender.emitWithAck("message", payload);
    assert.equal(ack.ok, true);
    const [[, m]] = await waitForEvents(receiver, 1, isMessageEvent);
    assert.equal(m.sender, "Alice");
    assert.deepEqual(m.metadata, { type: "text", color: "red", instanceId: "x", clientRef: { n: [1, 2] } });
  });

  for (const [label, payload] of [
    ["a string", "just text"],
    ["a number", 42],
    ["an array", [{ roomId: "r", message: "x" }]],
  ]) {
    test(`payload that is ${label} is rejected with field payload`, async () => {
      reset();
      const ack = await sender.emitWithAck("message:image", payload);
      assert.equal(ack.ok, false);
      assert.equal(ack.error.field, "payload");
      assert.equal(ack.error.code, "invalid_payload");
      const [[, err]] = await waitForEvents(sender, 1, ([e]) => e === "message:error");
      assert.deepEqual(err, { event: "message:image", error: ack.error });
      await sleep(QUIET_MS);
      assert.deepEqual(receiver.events, []);
    });
  }

  test("invalid message without an ack still emits message:error", async () => {
    reset();
    sender.emit("message:location", { roomId: room, latitude: 100, longitude: 0 });
    const [[, err]] = await waitForEvents(sender, 1, ([e]) => e === "message:error");
    assert.equal(err.event, "message:location");
    assert.equal(err.error.field, "latitude");
    assert.equal(err.error.code, "out_of_range");
    await sleep(QUIET_MS);
    assert.deepEqual(receiver.events, []);
  });

  test("ids of successive messages are distinct and increase", async () => {
    reset();
    const ids = [];
    const events = ["message", "message:zalo", "message:image", "message:location"];
    const payloads = {
      message: { message: "m" },
      "message:zalo": { message: "z" },
      "message:image": { imageUrl: "https://x.test/i.png" },
      "message:location": { latitude: 1, longitude: 2 },
    };
    for (let i = 0; i < 40; i++) {
      const event = events[i % events.length];
      const ack = await sender.emitWithAck(event, { roomId: room, ...payloads[event] });
      assert.equal(ack.ok, true);
      ids.push(ack.id);
    }
    assert.equal(new Set(ids).size, ids.length);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${ids[i - 1]} < ${ids[i]}`);
    // The room saw the same ids in the same order on the generic event.
    const got = await waitForEvents(receiver, ids.length, ([e]) => e === "message");
    assert.deepEqual(got.map(([, m]) => m.id), ids);
  });

  test("a client in no room receives nothing", async () => {
    const lonely = await client();
    reset();
    await sender.emitWithAck("message", { roomId: room, message: "not for you" });
    await waitForEvents(receiver, 1, isMessageEvent);
    await sleep(QUIET_MS);
    assert.deepEqual(lonely.events, []);
    lonely.disconnect();
  });
});

describe("HTTP", () => {
  test("GET /health", async () => {
    const s = await client();
    const res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /application\/json/);
    const body = await res.json();
    assert.equal(body.status, "ok");
    assert.equal(body.instanceId, INSTANCE);
    assert.equal(typeof body.uptimeSeconds, "number");
    assert.ok(body.uptimeSeconds >= 0);
    assert.equal(typeof body.connections, "number");
    assert.ok(body.connections >= 1, "the connected client is counted");
    assert.equal(body.redis, "disabled");
    s.disconnect();
  });

  test("GET /stats", async () => {
    const s = await client();
    const res = await fetch(`${server.url}/stats`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["instances", "totalConnections"]);
    assert.equal(body.instances.length, 1);
    const [me] = body.instances;
    assert.deepEqual(Object.keys(me).sort(), ["alive", "connections", "instanceId", "lastUpdate", "status"]);
    assert.equal(me.instanceId, INSTANCE);
    assert.equal(typeof me.connections, "number");
    assert.ok(me.connections >= 1);
    assert.equal(typeof me.lastUpdate, "number");
    assert.ok(Math.abs(me.lastUpdate - Date.now()) < 60_000, "lastUpdate is unix milliseconds");
    assert.equal(me.alive, true);
    assert.equal(me.status, "up");
    assert.equal(body.totalConnections, me.connections);
    s.disconnect();
  });

  test("GET /metrics is Prometheus text", async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^sio_connections \d+$/m);
    assert.match(text, /^# TYPE sio_connections gauge$/m);
    assert.match(text, /^sio_handshakes_total(\{[^}]*\})? \d+$/m);
    assert.match(text, /^# TYPE sio_handshakes_total counter$/m);
    const handshakes = Number(text.match(/^sio_handshakes_total(?:\{[^}]*\})? (\d+)$/m)[1]);
    assert.ok(handshakes >= 1, "handshakes from the earlier tests are counted");
  });

  test("GET / serves the demo page", async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /text\/html/);
    const html = await res.text();
    assert.ok(html.includes('data-testid="messages"'));
    assert.ok(html.includes("/socket.io/socket.io.min.js"));
  });

  test("GET /socket.io/socket.io.min.js with ETag and 304", async () => {
    const url = `${server.url}/socket.io/socket.io.min.js`;
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /javascript/);
    const etag = res.headers.get("etag");
    assert.ok(etag, "has an ETag");
    const js = await res.text();
    assert.ok(js.length > 10_000, "the minified bundle");
    const again = await fetch(url, { headers: { "If-None-Match": etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
  });
});
