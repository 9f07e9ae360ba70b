// permessage-deflate (PER_MESSAGE_DEFLATE, off by default as in Node): the stock client (whose
// `ws` offers the extension) on the default path and on WebSocket only, big and small, text and
// binary, a broadcast to many; and raw TCP clients sending what a server must refuse.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import zlib from "node:zlib";
import crypto from "node:crypto";
import { readFileSync } from "node:fs";
import { startServer, once, fresh, waitFor, metric, sleep } from "./lib/server.mjs";
import { clientPool, member, say } from "./lib/clients.mjs";
import { stuckReader } from "./lib/raw.mjs";

let on, off;
const pool = clientPool(() => on.url);
const offPool = clientPool(() => off.url);

before(async () => {
  [on, off] = await Promise.all([startServer({ env: { PER_MESSAGE_DEFLATE: "true" } }), startServer()]);
});

after(async () => {
  pool.disconnectAll();
  offPool.disconnectAll();
  await Promise.all([on?.stop(), off?.stop()]);
});

/** The `ws` WebSocket under a connected stock client, once it is on WebSocket. */
async function wsOf(socket) {
  const engine = socket.io.engine;
  await waitFor(() => engine.transport.name === "websocket", 5000, "upgraded to websocket");
  return engine.transport.ws;
}

test("the stock client negotiates it, on the default path and on WebSocket only", async () => {
  for (const opts of [{}, { transports: ["websocket"] }]) {
    const s = await pool.connected("/", opts);
    const ws = await wsOf(s);
    // `ws` names the extensions it runs (the parameters are checked on the raw 101 below).
    assert.equal(ws.extensions, "permessage-deflate", JSON.stringify(opts));
    const echo = await s.timeout(4000).emitWithAck("echo", "small");
    assert.equal(echo, "small");
  }
});

test("off by default: the same client gets no extension", async () => {
  const s = await offPool.connected("/", { transports: ["websocket"] });
  const ws = await wsOf(s);
  assert.equal(ws.extensions, "");
  assert.equal(await s.timeout(4000).emitWithAck("echo", "x".repeat(5000)), "x".repeat(5000));
});

test("big and small, text and binary, round-trip; big ones travel compressed", async () => {
  const s = await pool.connected("/", { transports: ["websocket"] });
  const ws = await wsOf(s);
  for (const size of [1, 1023, 1024, 1025, 64 * 1024, 600 * 1000]) {
    const text = "chat message ".repeat(Math.ceil(size / 13)).slice(0, size);
    const before = ws._socket.bytesRead;
    const echo = await s.timeout(8000).emitWithAck("echo", text);
    assert.equal(echo, text, `size ${size}`);
    const read = ws._socket.bytesRead - before;
    if (size >= 64 * 1024) assert.ok(read < size / 5, `${size} bytes arrived as ${read}`);
  }
  const bin = crypto.randomBytes(200 * 1024);
  const back = await s.timeout(8000).emitWithAck("echo", bin);
  assert.ok(Buffer.from(back).equals(bin), "binary echoed");
  const mixed = { text: "é€😀".repeat(500), blob: Buffer.alloc(3000, 7) };
  const m = await s.timeout(4000).emitWithAck("echo", mixed);
  assert.equal(m.text, mixed.text);
  assert.ok(Buffer.from(m.blob).equals(mixed.blob));
});

test("a broadcast reaches many deflate receivers (and one without the extension)", async () => {
  const room = fresh("pmd");
  const members = await Promise.all(
    Array.from({ length: 30 }, (_, i) => member(pool, room, i % 3 ? { transports: ["websocket"] } : {})),
  );
  const plain = await member(pool, room, { transports: ["websocket"], perMessageDeflate: false });
  assert.equal((await wsOf(plain)).extensions, "");
  const big = "broadcast ".repeat(300);
  for (let i = 0; i < 5; i++) await say(members[0], room, `${big}${i}`);
  await say(members[1], room, "small");
  for (const m of [...members, plain]) {
    await waitFor(() => m.texts.length === 6, 8000, () => `got ${m.texts.length}`);
    assert.deepEqual(m.texts, [0, 1, 2, 3, 4].map((i) => `${big}${i}`).concat("small"));
  }
});

/** A raw TCP WebSocket client: upgrades with `extensions` offered; collects server frames. */
async function rawUpgrade(server, extensions = "permessage-deflate; client_max_window_bits") {
  const sock = net.connect(server.port, "127.0.0.1");
  await once(sock, "connect");
  const key = crypto.randomBytes(16).toString("base64");
  sock.write(
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Extensions: ${extensions}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  const c = { sock, head: null, frames: [], ended: false };
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    if (!c.head) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      c.head = buf.subarray(0, end).toString();
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) [len, at] = [buf.readUInt16BE(2), 4];
      else if (len === 127) [len, at] = [Number(buf.readBigUInt64BE(2)), 10];
      if (buf.length < at + len) return;
      c.frames.push({ b0: buf[0], payload: buf.subarray(at, at + len) });
      buf = buf.subarray(at + len);
    }
  });
  sock.on("close", () => (c.ended = true));
  sock.on("error", () => {});
  await waitFor(() => c.frames.length > 0, 5000, "the open packet");
  return c;
}

/** A masked client frame. */
function frame(b0, payload, { masked = true } = {}) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([b0, len]) : len < 65536 ? Buffer.from([b0, 126, len >> 8, len & 255]) : null;
  const h = head ?? Buffer.concat([Buffer.from([b0, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  if (!masked) return Buffer.concat([h, payload]);
  h[1] |= 0x80;
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([h, mask, body]);
}

/** Waits for the server's close frame; returns its code. */
async function closeCode(c) {
  const f = await waitFor(() => c.frames.find((f) => (f.b0 & 0x0f) === 8), 5000, "a close frame");
  await waitFor(() => c.ended, 10000, "the connection closed");
  return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
}

test("the 101 answer names the parameters; a declined offer gets no extension", async () => {
  const c = await rawUpgrade(on);
  assert.match(c.head, /^HTTP\/1.1 101/);
  assert.match(c.head, /\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r?$/im);
  assert.equal(c.frames[0].b0, 0x81, "the small open packet is not compressed");
  assert.match(c.frames[0].payload.toString(), /^0\{"sid"/);
  c.sock.destroy();
  const w = await rawUpgrade(on, "permessage-deflate; server_max_window_bits=10");
  assert.match(w.head, /server_max_window_bits=10/);
  w.sock.destroy();
  const bad = await rawUpgrade(on, "permessage-deflate; bogus_param");
  assert.doesNotMatch(bad.head, /sec-websocket-extensions/i);
  bad.sock.destroy();
  const offed = await rawUpgrade(off);
  assert.doesNotMatch(offed.head, /sec-websocket-extensions/i);
  offed.sock.destroy();
});

test("a compressed message from a raw client is inflated; a ping is answered", async () => {
  const c = await rawUpgrade(on);
  // Engine.IO ping "2probe"-style: a compressed Socket.IO CONNECT, then a WebSocket ping.
  const z = zlib.deflateRawSync(Buffer.from("40"), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  c.sock.write(frame(0xc1, z));
  c.sock.write(frame(0x89, Buffer.from("hb")));
  await waitFor(() => c.frames.some((f) => f.payload.toString().startsWith("40{")), 5000, "CONNECT answered");
  await waitFor(() => c.frames.some((f) => f.b0 === 0x8a && f.payload.toString() === "hb"), 5000, "pong");
  c.sock.destroy();
});

for (const [what, bytes, code] of [
  ["an unmasked frame", () => frame(0x81, Buffer.from("40"), { masked: false }), 1002],
  ["RSV1 on a control frame", () => frame(0xc9, Buffer.from("x")), 1002],
  ["RSV1 on a continuation", () => Buffer.concat([frame(0x01, Buffer.from("4")), frame(0xc0, Buffer.from("0"))]), 1002],
  ["a frame over maxHttpBufferSize", () => frame(0x82, Buffer.alloc(1_000_001)), 1009],
  ["a deflate bomb (20 MB of zeros)", () => frame(0xc2, zlib.deflateRawSync(Buffer.alloc(20_000_000))), 1009],
  ["corrupt deflate data", () => frame(0xc1, Buffer.from([0xff, 0xff, 0xff])), 1007],
  ["compressed text that is not UTF-8", () => frame(0xc1, zlib.deflateRawSync(Buffer.from([0xc3, 0x28]))), 1007],
]) {
  test(`${what} closes the connection with ${code}`, async () => {
    const c = await rawUpgrade(on);
    const before = await metric(on.url, "sio_protocol_violations_total");
    c.sock.write(bytes());
    assert.equal(await closeCode(c), code);
    assert.equal(await metric(on.url, "sio_protocol_violations_total"), before + 1, "counted as a protocol violation");
    // The server is still fine.
    const s = await pool.connected("/", { transports: ["websocket"] });
    assert.equal(await s.timeout(4000).emitWithAck("echo", "alive"), "alive");
  });
}

test("a deflate client that stops reading is disconnected; the others get everything", { timeout: 60000 }, async () => {
  const server = await startServer({ env: { PER_MESSAGE_DEFLATE: "on", OUTBOUND_QUEUE_BYTES: "262144" } });
  const local = clientPool(() => server.url);
  try {
    const good = await member(local, "flood", { transports: ["websocket"] });
    const sender = await local.connected("/", { transports: ["websocket"] });
    const stuck = await stuckReader(server, "flood"); // `ws` offers permessage-deflate
    assert.equal(stuck.extensions, "permessage-deflate");
    const stuckClosed = new Promise((resolve) => stuck._socket.once("close", resolve));
    // Base64 of random bytes: compresses to ~3/4, so the stuck client's backlog really grows.
    const payload = crypto.randomBytes(6144).toString("base64");
    const total = 1600; // ~13 MB towards the stuck client, in bursts well under the good one's limit
    for (let i = 0; i < total; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => sender.timeout(10000).emitWithAck("message", { roomId: "flood", message: payload })));
    }
    await waitFor(() => good.texts.length === total, 20000, () => `the reading client got ${good.texts.length}/${total}`);
    assert.ok(good.texts.every((t) => t === payload));
    assert.ok((await metric(server.url, "sio_slow_client_disconnects_total")) >= 1, "the stuck client was disconnected");
    stuck._socket.resume();
    await Promise.race([stuckClosed, new Promise((r) => setTimeout(r, 5000))]);
    assert.equal(await good.timeout(4000).emitWithAck("echo", "still fine"), "still fine");
  } finally {
    local.disconnectAll();
    await server.stop();
  }
});

/** Resident memory of a process, from /proc (bytes). */
function rss(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** Writes `buf` and waits until the socket takes more. */
async function send(sock, buf) {
  if (!sock.write(buf)) await once(sock, "drain", 30000);
}

test("a peer that pings but never reads does not grow the server; it gets the last pong once it reads", { timeout: 90000 }, async () => {
  // Each ping used to append its pong to the write buffer while the peer was not reading:
  // 48 MB of pings held ~48 MB in the server. Now only the latest pong waits.
  const c = await rawUpgrade(on);
  c.sock.pause();
  const before = rss(on.child.pid);
  const burst = Buffer.concat(Array.from({ length: 1000 }, () => frame(0x89, Buffer.alloc(125, 0x70))));
  for (let sent = 0; sent < 48e6; sent += burst.length) await send(c.sock, burst);
  await send(c.sock, frame(0x89, Buffer.from("last")));
  await sleep(500);
  const growth = rss(on.child.pid) - before;
  assert.ok(growth < 16 * 1048576, `grew ${(growth / 1048576).toFixed(1)} MiB`);
  c.sock.resume();
  await waitFor(() => c.frames.some((f) => f.b0 === 0x8a && f.payload.toString() === "last"), 20000, "the last pong");
  c.sock.destroy();
});

test("peers that announce big frames and send a few bytes of them hold little server memory", { timeout: 60000 }, async () => {
  // The read buffer's reserved room used to be zeroed 64 KiB at a time before each read: 300 such
  // peers held ~20 MiB (tungstenite's connections ~1.5 MiB).
  const before = rss(on.child.pid);
  const peers = [];
  for (let i = 0; i < 300; i++) {
    const c = await rawUpgrade(on);
    const head = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x0f, 0x3e, 0x58, 1, 2, 3, 4]); // 999,000 bytes
    c.sock.write(Buffer.concat([head, Buffer.alloc(100)]));
    peers.push(c);
  }
  await sleep(500);
  const growth = rss(on.child.pid) - before;
  for (const c of peers) c.sock.destroy();
  assert.ok(growth < 8 * 1048576, `grew ${(growth / 1048576).toFixed(1)} MiB for 300 peers`);
});
