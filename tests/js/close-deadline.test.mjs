// Clients that stop reading, seen from outside: once the server has closed them, their TCP
// connections are gone (as `ss` shows them) within the close deadline, and the memory they held
// comes back. A polling response that is never read is cut by the write timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { io } from "socket.io-client";
import { stuckReader } from "./lib/raw.mjs";
import { startServer, once, sleep, waitFor, metric } from "./lib/server.mjs";

/** The server's TCP sockets (any state) whose peer port is in `peerPorts`, as `ss` lists them. */
function serverSockets(port, peerPorts) {
  const out = execFileSync("ss", ["-tanH", `( sport = :${port} )`], { encoding: "utf8" });
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/))
    .map(([state, recvQ, sendQ, local, peer]) => ({ state, sendQ: Number(sendQ), peerPort: Number(peer.split(":").pop()) }))
    .filter((s) => peerPorts.includes(s.peerPort));
}

/** Resident memory of a process, MiB. */
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) / 1024;
}

test("WebSocket clients that stop reading are gone from ss within 10 s of their disconnect, and RSS comes back", { timeout: 120000 }, async () => {
  // Recovery (on by default) keeps the room's recent frames for its window by design, and those
  // pin heap pages glibc could otherwise return: off here, so "RSS comes back" is about the dropped
  // connections (recovery-limits.test.mjs bounds what recovery keeps).
  const server = await startServer({ env: { OUTBOUND_QUEUE_BYTES: String(2 << 20), RECOVERY: "false" } });
  const pid = server.child.pid;
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const stuck = [];
  try {
    await once(sender, "connect");
    for (let i = 0; i < 4; i++) stuck.push(await stuckReader(server, "busy"));
    const ports = stuck.map((ws) => ws._socket.localPort);
    const rssBefore = rssMiB(pid);
    const payload = "x".repeat(8192);
    let sent = 0;
    // Flood the room until the server has disconnected all four (bounded: ~200 MB at most).
    while ((await metric(server.url, "sio_slow_client_disconnects_total")) < 4 && sent < 25000) {
      await Promise.all(Array.from({ length: 100 }, () => sender.emitWithAck("message", { roomId: "busy", message: payload })));
      sent += 100;
    }
    assert.equal(await metric(server.url, "sio_slow_client_disconnects_total"), 4, `all four disconnected after ${sent} messages`);
    const disconnectedAt = Date.now();
    const rssPeak = rssMiB(pid);
    const gone = await waitFor(() => serverSockets(server.port, ports).length === 0, 10000, "the stuck sockets to be gone").then(
      () => true,
      () => false,
    );
    const left = serverSockets(server.port, ports);
    console.log(
      `# ${sent} messages; RSS ${rssBefore.toFixed(1)} → ${rssPeak.toFixed(1)} MiB at the disconnect; ` +
        `sockets ${gone ? `gone after ${Date.now() - disconnectedAt} ms` : `still there: ${JSON.stringify(left)}`}`,
    );
    assert.ok(gone, `the server still holds ${JSON.stringify(left)} 10 s after disconnecting them`);
    assert.equal(await metric(server.url, "sio_connections"), 1, "only the sender is left");
    // The memory they held is freed (glibc keeps some of it for reuse: allow a little).
    await sleep(500);
    const rssAfter = rssMiB(pid);
    console.log(`# RSS after: ${rssAfter.toFixed(1)} MiB`);
    assert.ok(rssAfter < rssBefore + 8, `RSS ${rssBefore.toFixed(1)} → ${rssAfter.toFixed(1)} MiB`);
    assert.equal(await sender.timeout(5000).emitWithAck("echo", "still here"), "still here");
  } finally {
    for (const ws of stuck) ws.terminate();
    sender.disconnect();
    await server.stop();
  }
});

test("a polling response that is never read is cut by the write timeout", { timeout: 60000 }, async () => {
  const server = await startServer({ env: { OUTBOUND_QUEUE_BYTES: String(64 << 20), WRITE_TIMEOUT_MS: "2000" } });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  let raw;
  try {
    await once(sender, "connect");
    // A polling session in room "jam", driven by hand.
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    const sid = JSON.parse(open.slice(1)).sid;
    await fetch(`${base}&sid=${sid}`, { method: "POST", body: '40\x1e420["join","jam"]' });
    let got = "";
    while (!got.includes('430[')) got += await (await fetch(`${base}&sid=${sid}`)).text();
    // ~12 MB queued for it, more than the kernel buffers hold.
    const payload = "y".repeat(65536);
    for (let i = 0; i < 192; i += 32) {
      await Promise.all(Array.from({ length: 32 }, () => sender.emitWithAck("message", { roomId: "jam", message: payload })));
    }
    // The GET that would carry it all, on a socket that never reads.
    raw = connect(server.port, "127.0.0.1");
    await once(raw, "connect");
    raw.pause();
    raw.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const port = raw.localPort;
    await waitFor(() => serverSockets(server.port, [port]).some((s) => s.sendQ > 0), 5000, "the response to back up");
    const t0 = Date.now();
    await waitFor(() => serverSockets(server.port, [port]).length === 0, 8000, "the stalled response to be cut");
    console.log(`# stalled polling response cut after ${Date.now() - t0} ms (WRITE_TIMEOUT_MS=2000)`);
    assert.ok((await metric(server.url, "sio_write_timeouts_total")) >= 1);
    assert.equal(await sender.timeout(5000).emitWithAck("echo", "ok"), "ok");
  } finally {
    raw?.destroy();
    sender.disconnect();
    await server.stop();
  }
});

test("a closed WebSocket whose peer never reads the close frame is reset within the close deadline", { timeout: 60000 }, async () => {
  // The server closes the session itself (ping timeout), while the peer reads nothing.
  const server = await startServer({ env: { PING_INTERVAL: "3000", PING_TIMEOUT: "2000", OUTBOUND_QUEUE_BYTES: String(64 << 20) } });
  const sender = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  let ws;
  try {
    await once(sender, "connect");
    ws = await stuckReader(server, "quiet");
    const port = ws._socket.localPort;
    // Fill its socket buffers (~6 MB) so even the close frame cannot be written.
    const payload = "z".repeat(65536);
    for (let i = 0; i < 96; i += 16) {
      await Promise.all(Array.from({ length: 16 }, () => sender.emitWithAck("message", { roomId: "quiet", message: payload })));
    }
    await waitFor(() => serverSockets(server.port, [port]).some((s) => s.sendQ > 0), 5000, "its socket to back up");
    await waitFor(async () => (await metric(server.url, "sio_connections")) === 1, 10000, "the ping timeout");
    const t0 = Date.now();
    await waitFor(() => serverSockets(server.port, [port]).length === 0, 10000, "the socket to be reset");
    console.log(`# closed session's socket gone ${Date.now() - t0} ms after its ping timeout`);
    assert.ok((await metric(server.url, "sio_close_deadline_resets_total")) + (await metric(server.url, "sio_write_timeouts_total")) >= 1);
  } finally {
    ws?.terminate();
    sender.disconnect();
    await server.stop();
  }
});
