// The per-socket chat rate limit (CHAT_RATE_MESSAGES / CHAT_RATE_BYTES, issue #13 item 14) against
// a real sio-server process, driven by the stock socket.io-client: a sender over its budget gets
// `rate_limited` (ack and message:error), its refused messages reach nobody, it stays connected and
// can send again once the budget refills; without the settings nobody is ever limited.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, startWebhook, sleep, once, metric } from "./lib/server.mjs";

/** How long to watch for deliveries that must not happen. */
const QUIET_MS = 300;

/** A connected client recording every event it receives. */
async function client(server, clients) {
  const s = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  clients.push(s);
  s.events = [];
  s.onAny((event, ...args) => s.events.push([event, ...args]));
  await once(s, "connect");
  return s;
}

/** Sender and receiver joined to a fresh room. */
async function pair(server, clients) {
  const sender = await client(server, clients);
  const receiver = await client(server, clients);
  const room = `rate-${Date.now()}`;
  for (const s of [sender, receiver]) assert.equal((await s.emitWithAck("join", room)).ok, true);
  return { sender, receiver, room };
}

/** Waits until `pred()` is true, or fails after `ms`. */
async function waitFor(pred, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const texts = (s, event = "message") => s.events.filter(([e]) => e === event).map(([, m]) => m.text);
const errors = (s) => s.events.filter(([e]) => e === "message:error").map(([, m]) => m);

function assertRateLimitedAck(ack) {
  assert.equal(ack.ok, false);
  assert.equal(ack.error.code, "rate_limited");
  assert.equal(ack.error.field, null);
  assert.equal(typeof ack.error.message, "string");
  assert.ok(ack.error.retryAfterMs > 0, JSON.stringify(ack));
}

test("a sender over CHAT_RATE_MESSAGES is refused with rate_limited, not broadcast, and stays connected", async () => {
  const RATE = 2; // burst: 2 s worth = 4 messages
  const BURST = 4;
  const TOTAL = 12;
  const server = await startServer({ env: { CHAT_RATE_MESSAGES: String(RATE), RUST_LOG: "info" } });
  const clients = [];
  try {
    const { sender, receiver, room } = await pair(server, clients);
    const started = Date.now();
    const acks = await Promise.all(
      Array.from({ length: TOTAL }, (_, i) => sender.timeout(5000).emitWithAck("message", { roomId: room, message: `m${i}` })),
    );
    const elapsed = Date.now() - started;
    const accepted = acks.map((a, i) => (a.ok ? `m${i}` : null)).filter(Boolean);
    const refused = acks.filter((a) => !a.ok);
    // The burst always passes; beyond it only what refilled while the emits were processed.
    assert.deepEqual(accepted.slice(0, BURST), ["m0", "m1", "m2", "m3"]);
    assert.ok(accepted.length <= BURST + Math.ceil((elapsed / 1000) * RATE), `${accepted.length} accepted in ${elapsed} ms`);
    assert.ok(refused.length > 0 && refused.length + accepted.length === TOTAL);
    refused.forEach(assertRateLimitedAck);
    assert.match(refused[0].error.message, /messages per second/);

    // The sender is told by message:error too; the receiver gets exactly the accepted messages.
    await waitFor(() => errors(sender).length === refused.length, "message:error for every refusal");
    for (const e of errors(sender)) {
      assert.equal(e.event, "message");
      assert.equal(e.error.code, "rate_limited");
    }
    await waitFor(() => texts(receiver).length === accepted.length, "the accepted messages");
    await sleep(QUIET_MS);
    assert.deepEqual(texts(receiver), accepted, "refused messages are not broadcast");

    // Every message type shares the budget; an emit without an ack still gets message:error.
    const before = errors(sender).length;
    sender.emit("message:location", { roomId: room, latitude: 1, longitude: 2 });
    await waitFor(() => errors(sender).length === before + 1, "message:error for an emit without ack");
    assert.equal(errors(sender).at(-1).event, "message:location");
    assert.equal(errors(sender).at(-1).error.code, "rate_limited");
    assert.equal(texts(receiver, "message:location").length, 0);

    // Still connected; after waiting, it can send again.
    assert.equal(sender.connected, true);
    assert.equal(await sender.timeout(5000).emitWithAck("echo", "alive"), "alive");
    await sleep(1000 / RATE + 100);
    const again = await sender.timeout(5000).emitWithAck("message", { roomId: room, message: "after the wait" });
    assert.equal(again.ok, true, JSON.stringify(again));
    await waitFor(() => texts(receiver).includes("after the wait"), "the message after the wait");

    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="chat_rate"}'), refused.length + 1);
    assert.match(server.logs(), /rate limited/);
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop();
  }
});

test("CHAT_RATE_BYTES limits large messages by size; one message bigger than the burst passes from a full bucket", async () => {
  const RATE = 100_000; // bytes/s; burst 200 000
  const SIZE = 60_000;
  const TOTAL = 8;
  const server = await startServer({ env: { CHAT_RATE_BYTES: String(RATE) } });
  const clients = [];
  try {
    const { sender, receiver, room } = await pair(server, clients);
    const big = "x".repeat(SIZE);
    const started = Date.now();
    const acks = await Promise.all(
      Array.from({ length: TOTAL }, (_, i) => sender.timeout(5000).emitWithAck("message", { roomId: room, message: `${i}:${big}` })),
    );
    const elapsed = Date.now() - started;
    const accepted = acks.map((a, i) => (a.ok ? i : null)).filter((i) => i !== null);
    const refused = acks.filter((a) => !a.ok);
    assert.deepEqual(accepted.slice(0, 3), [0, 1, 2], "three fit in the 200 000-byte burst");
    assert.ok(accepted.length <= 3 + Math.ceil(((elapsed / 1000) * RATE) / SIZE), `${accepted.length} accepted in ${elapsed} ms`);
    assert.ok(refused.length > 0 && refused.length + accepted.length === TOTAL);
    refused.forEach(assertRateLimitedAck);
    assert.match(refused[0].error.message, /bytes per second/);
    await waitFor(() => texts(receiver).length === accepted.length, "the accepted messages");
    await sleep(QUIET_MS);
    assert.deepEqual(
      texts(receiver).map((t) => Number(t.split(":")[0])),
      accepted,
      "refused messages are not broadcast",
    );

    // The budget counts bytes, not messages: a small message still fits in what is left.
    const small = await sender.timeout(5000).emitWithAck("message", { roomId: room, message: "tiny" });
    assert.equal(small.ok, true, JSON.stringify(small));

    // A 900 kB message (more than the 2 s burst) passes once the bucket is full again, and leaves
    // a debt: the next message waits for it.
    await sleep(2100);
    const huge = await sender.timeout(5000).emitWithAck("message", { roomId: room, message: "h".repeat(900_000) });
    assert.equal(huge.ok, true, JSON.stringify(huge).slice(0, 200));
    const after = await sender.timeout(5000).emitWithAck("message", { roomId: room, message: "right after" });
    assertRateLimitedAck(after);
    assert.ok(after.error.retryAfterMs > 5000, `in debt: ${after.error.retryAfterMs} ms`);
    await waitFor(() => texts(receiver).some((t) => t.length === 900_000), "the large message");
    assert.equal(sender.connected, true);
    assert.equal(receiver.connected, true);
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop();
  }
});

test("off by default: a fast sender without the settings is never limited", async () => {
  const TOTAL = 400;
  const server = await startServer();
  const clients = [];
  try {
    const { sender, receiver, room } = await pair(server, clients);
    const acks = await Promise.all(
      Array.from({ length: TOTAL }, (_, i) => sender.timeout(10_000).emitWithAck("message", { roomId: room, message: `f${i}` })),
    );
    assert.equal(acks.filter((a) => a.ok).length, TOTAL, JSON.stringify(acks.find((a) => !a.ok)));
    await waitFor(() => texts(receiver).length === TOTAL, "every message", 10_000);
    assert.equal(errors(sender).length, 0);
    assert.equal(await metric(server.url, 'sio_limit_hits_total{limit="chat_rate"}'), 0);
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop();
  }
});

test("sio-webhook delivering through one socket gets 503 with Retry-After past the budget, never 400", { timeout: 30000 }, async () => {
  const server = await startServer({ env: { CHAT_RATE_MESSAGES: "1" } }); // burst: 2 messages
  const hook = await startWebhook({ env: { SOCKETIO_URL: server.url } });
  const clients = [];
  try {
    await waitFor(async () => (await fetch(`${hook.url}/health`)).status === 200, "webhook /health 200");
    const member = await client(server, clients);
    const room = `hook-${Date.now()}`;
    assert.equal((await member.emitWithAck("join", room)).ok, true);
    const answers = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${hook.url}/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ roomId: room, message: `w${i}` }),
      });
      answers.push({ status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() });
    }
    const statuses = answers.map((a) => a.status);
    assert.deepEqual(statuses.slice(0, 2), [200, 200], JSON.stringify(answers));
    assert.ok(statuses.includes(503), JSON.stringify(answers));
    assert.ok(statuses.every((st) => st === 200 || st === 503), JSON.stringify(answers));
    for (const a of answers.filter((a) => a.status === 503)) assert.match(a.retryAfter ?? "", /^\d+$/);
    const delivered = answers.filter((a) => a.status === 200).length;
    await waitFor(() => texts(member).length === delivered, "the delivered messages");
    await sleep(QUIET_MS);
    assert.equal(texts(member).length, delivered, "only the 200s were delivered");
  } finally {
    for (const c of clients) c.disconnect();
    await hook.stop();
    await server.stop();
  }
});
