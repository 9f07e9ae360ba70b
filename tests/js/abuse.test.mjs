// Abuse with real sockets against a real sio-server: slow headers, a client that never reads,
// half-open handshakes, oversize frames and a burst of connections. The server stays up and
// well-behaved clients keep working.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { stuckReader } from "./lib/raw.mjs";
import { startServer, once, sleep, metric, waitFor } from "./lib/server.mjs";

async function roundTrip(client) {
  const t0 = performance.now();
  assert.equal(await client.timeout(5000).emitWithAck("echo", "ping"), "ping");
  return performance.now() - t0;
}

test("a slowloris connection is cut after the header read timeout", { timeout: 20000 }, async () => {
  const server = await startServer({ env: { HEADER_READ_TIMEOUT_MS: "500" } });
  try {
    const sock = connect(server.port, "127.0.0.1");
    await once(sock, "connect");
    sock.write("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
    const t0 = Date.now();
    const timer = setInterval(() => sock.write("X-Slow: 1\r\n"), 100);
    await once(sock, "close", 5000);
    clearInterval(timer);
    assert.ok(Date.now() - t0 < 3000, `closed after ${Date.now() - t0} ms`);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  } finally {
    await server.stop();
  }
});

test("a client that never reads is disconnected; the others in its room get everything", { timeout: 60000 }, async () => {
  const server = await startServer({ env: { OUTBOUND_QUEUE_BYTES: "262144" } });
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await Promise.all([once(good, "connect"), once(sender, "connect")]);
    const stuck = await stuckReader(server, "flood");
    const stuckClosed = new Promise((resolve) => stuck._socket.once("close", resolve));
    await good.emitWithAck("join", "flood");
    let received = 0;
    good.on("message", () => received++);
    const payload = "x".repeat(8192);
    const total = 3000; // ~24 MB towards the stuck client
    for (let i = 0; i < total; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => sender.emitWithAck("message", { roomId: "flood", message: payload, n: i + j })));
    }
    const deadline = Date.now() + 15000;
    while (received < total && Date.now() < deadline) await sleep(50);
    assert.equal(received, total, "the reading client got every message");
    assert.ok((await metric(server.url, "sio_slow_client_disconnects_total")) >= 1, "the stuck client was disconnected");
    stuck._socket.resume();
    await Promise.race([stuckClosed, sleep(5000)]);
    assert.ok((await roundTrip(good)) < 1000);
  } finally {
    good.disconnect();
    sender.disconnect();
    await server.stop();
  }
});

test("a polling client that stops polling is dropped after the queue's grace; a polling member gets everything", { timeout: 60000 }, async () => {
  const server = await startServer({ env: { OUTBOUND_QUEUE_BYTES: "262144" } });
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["polling"] });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await Promise.all([once(good, "connect"), once(sender, "connect")]);
    // A polling session that joins the room, then never sends another GET (its driver is parked:
    // packets queue without waking it, except the one that takes the queue past its soft limit).
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
    const sid = JSON.parse((await (await fetch(base)).text()).slice(1)).sid;
    const poll = `${base}&sid=${sid}`;
    assert.equal(await (await fetch(poll, { method: "POST", body: "40" })).text(), "ok");
    let seen = "";
    while (!seen.includes('42["welcome"')) seen += await (await fetch(poll)).text();
    assert.equal(await (await fetch(poll, { method: "POST", body: '420["join","idle"]' })).text(), "ok");
    while (!seen.includes("430[")) seen += await (await fetch(poll)).text();
    await good.emitWithAck("join", "idle");
    let received = 0;
    good.on("message", () => received++);
    const payload = "x".repeat(2048);
    const total = 200; // ~450 KB queued for the idle session: past the 256 KiB soft limit, under the hard one
    for (let i = 0; i < total; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => sender.emitWithAck("message", { roomId: "idle", message: payload, n: i + j })));
    }
    // The grace is 10 s; the heartbeat would only end the session after 45 s.
    await waitFor(async () => (await metric(server.url, "sio_slow_client_disconnects_total")) >= 1, 25000, "the idle polling session was not dropped");
    // Its next GET gets what was queued and the close packet (as Node closes a polling
    // transport); after that the session is unknown.
    const last = await (await fetch(poll)).text();
    assert.ok(last.endsWith("\x1e1"), `ends with the close packet: …${JSON.stringify(last.slice(-40))}`);
    assert.equal((await fetch(poll)).status, 400, "the dropped session is unknown");
    await waitFor(() => received === total, 15000, () => `the polling member got ${received} of ${total}`);
  } finally {
    good.disconnect();
    sender.disconnect();
    await server.stop();
  }
});

test("1,000 half-open handshakes expire and do not hurt other clients", { timeout: 60000 }, async () => {
  const server = await startServer({ env: { PING_INTERVAL: "3000", PING_TIMEOUT: "2000" } });
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(good, "connect");
    for (let i = 0; i < 1000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => fetch(`${server.url}/socket.io/?EIO=4&transport=polling`)));
      assert.ok(batch.every((r) => r.status === 200));
      await Promise.all(batch.map((r) => r.text()));
    }
    assert.ok((await metric(server.url, "sio_connections")) >= 1000);
    assert.ok((await roundTrip(good)) < 1000, "others keep their latency");
    const deadline = Date.now() + 15000;
    while ((await metric(server.url, "sio_connections")) > 1 && Date.now() < deadline) await sleep(200);
    assert.equal(await metric(server.url, "sio_connections"), 1, "only the good client is left");
  } finally {
    good.disconnect();
    await server.stop();
  }
});

test("oversize WebSocket frames close only that connection", { timeout: 20000 }, async () => {
  const server = await startServer({ env: { MAX_HTTP_BUFFER_SIZE: "100000" } });
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(good, "connect");
    const big = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
    await once(big, "open");
    big.send("40");
    big.send("4" + "y".repeat(200000));
    await once(big, "close", 5000);
    assert.equal(await good.timeout(5000).emitWithAck("echo", "ok"), "ok");
  } finally {
    good.disconnect();
    await server.stop();
  }
});

// The burst comes from 16 addresses (127.0.0.2-17), as the benchmarks' connection test does: from
// one address, the per-address limits (MAX_HALF_OPEN_PER_IP, MAX_CONNECTIONS_PER_IP) refuse it.
test("a burst of 10,000 WebSocket connections from 16 addresses is served; the server stays up", { timeout: 120000 }, async () => {
  const server = await startServer();
  const probe = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const sockets = [];
  try {
    await once(probe, "connect");
    const url = `${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`;
    let opened = 0;
    for (let i = 0; i < 10000; i += 500) {
      const batch = Array.from({ length: 500 }, (_, j) => {
        const ws = new WebSocket(url, { perMessageDeflate: false, localAddress: `127.0.0.${2 + ((i + j) % 16)}` });
        sockets.push(ws);
        return new Promise((resolve) => {
          ws.once("message", () => { opened++; resolve(); });
          ws.once("error", resolve);
        });
      });
      await Promise.all(batch);
    }
    assert.equal(opened, 10000);
    assert.ok((await metric(server.url, "sio_connections")) >= 10000);
    const rtt = await roundTrip(probe);
    console.log(`echo round trip with 10,000 idle connections: ${rtt.toFixed(1)} ms`);
    assert.ok(rtt < 2000);
  } finally {
    for (const ws of sockets) ws.terminate();
    probe.disconnect();
    await server.stop();
  }
});

/** Resident memory of a process, from /proc (bytes). */
function rss(pid) {
  return import("node:fs").then(({ readFileSync }) => {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return Number(line.split(/\s+/)[1]) * 1024;
  });
}

test("a reader that keeps up with a burst of 50,000 x 1 KiB messages is never dropped", { timeout: 120000 }, async () => {
  const server = await startServer();
  const reader = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await Promise.all([once(reader, "connect"), once(sender, "connect")]);
    await reader.emitWithAck("join", "burst");
    let got = 0;
    reader.on("message", () => got++);
    const text = "b".repeat(1024);
    const n = 50000;
    for (let i = 0; i < n; i++) sender.emit("message", { roomId: "burst", message: text });
    const deadline = Date.now() + 90000;
    while (got < n && Date.now() < deadline) await sleep(100);
    assert.equal(got, n);
    assert.equal(await metric(server.url, "sio_slow_client_disconnects_total"), 0);
  } finally {
    reader.disconnect();
    sender.disconnect();
    await server.stop();
  }
});

test("a stuck reader in a room receiving 50 MB grows the server by well under 64 MB", { timeout: 120000 }, async () => {
  // Connection state recovery (on by default) keeps up to RECOVERY_LOG_BYTES of the room's frames
  // for its window: a small log here, so the bound below is about the stuck reader's queue.
  const server = await startServer({ env: { RECOVERY_LOG_BYTES: String(4 << 20) } });
  const good = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await Promise.all([once(good, "connect"), once(sender, "connect")]);
    const stuck = await stuckReader(server, "big");
    await good.emitWithAck("join", "big");
    let received = 0;
    good.on("message", () => received++);
    const before = await rss(server.child.pid);
    let peak = before;
    const payload = "z".repeat(16384);
    const total = 3200; // 50 MiB
    for (let i = 0; i < total; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => sender.emitWithAck("message", { roomId: "big", message: payload })));
      peak = Math.max(peak, await rss(server.child.pid));
    }
    const deadline = Date.now() + 30000;
    while (received < total && Date.now() < deadline) await sleep(50);
    assert.equal(received, total);
    const growth = peak - before;
    console.log(`server RSS growth with a stuck reader and 50 MiB sent: ${(growth / 1048576).toFixed(1)} MiB`);
    assert.ok(growth < 48 * 1048576, `grew ${(growth / 1048576).toFixed(1)} MiB`);
    stuck.terminate();
  } finally {
    good.disconnect();
    sender.disconnect();
    await server.stop();
  }
});
