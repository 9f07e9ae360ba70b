// Graceful shutdown of a real sio-server: SIGTERM closes every session so clients reconnect
// elsewhere, flushes what was queued, and exits promptly with status 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once } from "./lib/server.mjs";

test("SIGTERM tells clients to reconnect, flushes queued messages and exits 0", { timeout: 30000 }, async () => {
  const server = await startServer({ env: { SHUTDOWN_GRACE_MS: "5000" } });
  const ws = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  const polling = io(server.url, { forceNew: true, reconnection: false, transports: ["polling"] });
  try {
    await Promise.all([once(ws, "connect"), once(polling, "connect")]);
    await ws.emitWithAck("join", "bye");
    await polling.emitWithAck("join", "bye");
    const got = [];
    ws.on("message", (m) => got.push(["ws", m.text]));
    polling.on("message", (m) => got.push(["polling", m.text]));
    // Queue a message, then stop the server at once: it must still be delivered before the close.
    const sent = ws.emitWithAck("message", { roomId: "bye", message: "last words" });
    const reasons = Promise.all([once(ws, "disconnect", 10000), once(polling, "disconnect", 10000)]);
    assert.deepEqual(await sent, { ok: true, id: (await sent).id });
    const exited = new Promise((resolve) => server.child.once("exit", (code, signal) => resolve({ code, signal })));
    const t0 = Date.now();
    server.child.kill("SIGTERM");
    const [[wsReason], [pollReason]] = await reasons;
    // Not "io server disconnect": the client library reconnects after these.
    assert.equal(wsReason, "transport close");
    assert.match(pollReason, /^transport (close|error)$/);
    assert.deepEqual(got.sort(), [["polling", "last words"], ["ws", "last words"]]);
    const { code } = await exited;
    assert.equal(code, 0, server.logs());
    assert.ok(Date.now() - t0 < 5000, `exited within the grace period (took ${Date.now() - t0} ms)`);
  } finally {
    ws.disconnect();
    polling.disconnect();
    await server.stop("SIGKILL");
  }
});
