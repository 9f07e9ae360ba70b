// Limits against abuse, each configurable and counted in /metrics, against a real sio-server.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { startServer, once, sleep } from "./lib/server.mjs";

const handshake = (url) => fetch(`${url}/socket.io/?EIO=4&transport=polling`);

async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return Number(line?.split(" ")[1]);
}

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
