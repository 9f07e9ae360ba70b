// LOG_FORMAT=json: every line is one JSON object carrying the instance id; payloads are not logged
// at info level.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once } from "./lib/server.mjs";

test("json logs carry instanceId on every line and no payload contents", { timeout: 20000 }, async () => {
  const server = await startServer({ env: { LOG_FORMAT: "json", RUST_LOG: "info", INSTANCE_ID: "log-test-7" } });
  const c = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(c, "connect");
    await c.emitWithAck("join", "r");
    await c.emitWithAck("message", { roomId: "r", message: "top-secret-payload" });
    await c.emitWithAck("message", { roomId: "r", message: "" });
  } finally {
    c.disconnect();
    await server.stop();
  }
  const lines = server.logs().split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length >= 3, server.logs());
  for (const line of lines) {
    const entry = JSON.parse(line);
    assert.equal(entry.instanceId, "log-test-7");
    assert.ok(entry.level && entry.timestamp, line);
  }
  assert.ok(!server.logs().includes("top-secret-payload"), "payloads are not logged at info level");
});
