// PARSER=msgpack against the stock socket.io-client with socket.io-msgpack-parser 3.0.2, over
// WebSocket and over polling: welcome event, acks, binary both ways, room broadcasts; and what a
// client speaking the other parser gets.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import parser from "socket.io-msgpack-parser";
import { startServer, once, fresh, waitFor } from "./lib/server.mjs";
import { RawSocket, terminateAll } from "./lib/raw.mjs";

let server;
const clients = [];

async function client(transports) {
  const s = io(server.url, { forceNew: true, reconnection: false, parser, transports });
  clients.push(s);
  s.events = [];
  s.onAny((event, ...args) => s.events.push([event, ...args]));
  const welcome = once(s, "welcome");
  await once(s, "connect");
  [s.welcome] = await welcome;
  return s;
}

before(async () => {
  server = await startServer({ env: { PARSER: "msgpack", INSTANCE_ID: "mp-1" } });
});

after(async () => {
  for (const c of clients) c.disconnect();
  terminateAll();
  await server?.stop();
});

for (const transports of [["websocket"], ["polling"], ["polling", "websocket"]]) {
  describe(`msgpack over ${transports.join("+")}`, () => {
    test("welcome, join ack and a room broadcast reach every member", async () => {
      const [a, b] = [await client(transports), await client(transports)];
      assert.equal(a.welcome.instanceId, "mp-1");
      assert.equal(a.welcome.socketId, a.id);
      const room = fresh("mp");
      for (const s of [a, b]) {
        assert.deepEqual(await s.timeout(5000).emitWithAck("join", room), { ok: true, roomId: room, instanceId: "mp-1" });
      }
      const ack = await a.timeout(5000).emitWithAck("message", { roomId: room, message: "héllo 🎉", n: 1.5, big: 2 ** 40 });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      for (const s of [a, b]) {
        const [, msg] = await waitFor(() => s.events.find(([e]) => e === "message"), 5000, () => JSON.stringify(s.events));
        assert.equal(msg.id, ack.id);
        assert.equal(msg.text, "héllo 🎉");
        assert.equal(msg.roomId, room);
        assert.equal(msg.metadata.n, 1.5);
        assert.equal(msg.metadata.big, 2 ** 40);
      }
    });

    test("binary goes both ways in place (echo acks it back)", async () => {
      const s = await client(transports);
      const big = Buffer.alloc(70_000, 9);
      const reply = await s.timeout(5000).emitWithAck("echo", { a: Buffer.from([1, 2, 3]), list: [big, "x"] });
      assert.ok(Buffer.isBuffer(reply.a), `got ${typeof reply.a}`);
      assert.deepEqual([...reply.a], [1, 2, 3]);
      assert.equal(reply.list[1], "x");
      assert.ok(Buffer.from(reply.list[0]).equals(big));
      // A browser-style ArrayBuffer arrives as ext type 0 and comes back as binary.
      const ab = await s.timeout(5000).emitWithAck("echo", new Uint8Array([7, 8]).buffer);
      assert.deepEqual([...Buffer.from(ab)], [7, 8]);
    });
  });
}

test("a client on the default parser is not connected, nor is a raw text packet accepted", async () => {
  const s = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  clients.push(s);
  const connected = once(s, "connect", 1500).then(() => true, () => false);
  assert.equal(await connected, false, "a text CONNECT must not connect on a msgpack server");
  const raw = new RawSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
  await raw.opened;
  assert.match(await raw.next(), /^0\{/);
  raw.ws.send("40");
  const closed = await Promise.race([raw.closed, new Promise((r) => setTimeout(() => r(null), 10_000))]);
  assert.ok(closed, "the connection is closed within 10 s");
});

test("a garbage binary packet closes only its own connection", async () => {
  const good = await client(["websocket"]);
  const raw = new RawSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
  await raw.opened;
  await raw.next();
  raw.ws.send(Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xdd, 0xff, 0xff, 0xff, 0xff]));
  const closed = await Promise.race([raw.closed, new Promise((r) => setTimeout(() => r(null), 10_000))]);
  assert.ok(closed, "closed within 10 s");
  assert.equal(await good.timeout(5000).emitWithAck("echo", 1), 1);
  assert.ok(good.connected);
});
