// Connection state recovery under load and abuse (review of #17/#18): restoring an admin socket
// must not deadlock the server, one restore replays at most its byte budget (past it: a fresh
// session), and saved sessions are bounded in bytes (RECOVERY_SESSION_BYTES).
import { test, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once, waitFor, fresh } from "./lib/server.mjs";

const servers = [];
const clients = [];

after(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
});

async function start(env) {
  const s = await startServer({ env });
  servers.push(s);
  return s;
}

/** A stock client (reconnection fast, websocket only), connected. */
async function connect(url, opts = {}) {
  const s = io(url, { forceNew: true, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 100, ...opts });
  clients.push(s);
  await once(s, "connect", 10_000);
  return s;
}

/** Drops `s`'s transport and waits for its automatic reconnection. */
async function bounce(s) {
  const again = once(s, "connect", 15_000);
  s.io.engine.close();
  await again;
}

/** GET /health within 3 s: "ok" or the error. */
async function health(url) {
  return fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) })
    .then((r) => r.status)
    .catch((e) => `ERR ${e.message}`);
}

describe("an admin socket recovers without deadlocking the server", () => {
  test("two development-mode admin UIs, one bounces: recovered, and the server still answers", async () => {
    const server = await start({ ADMIN_AUTH: "off", ADMIN_MODE: "development" });
    const a1 = await connect(`${server.url}/admin`);
    const a2 = await connect(`${server.url}/admin`);
    // The UI joins nothing itself; a chat client gives the live events something to report.
    const chat = await connect(server.url);
    await chat.timeout(4000).emitWithAck("join", fresh("room"));
    const id = a2.id;
    await bounce(a2);
    assert.equal(a2.recovered, true, "the admin socket's session is restored");
    assert.equal(a2.id, id);
    assert.equal(await health(server.url), 200, "the server is not stuck");
    // Still delivering: a new chat client shows up at both UIs.
    let got = 0;
    for (const a of [a1, a2]) a.on("socket_connected", () => got++);
    await connect(server.url);
    await waitFor(() => got >= 2, 5000, "socket_connected at both UIs");
    const t = Date.now();
    await server.stop();
    assert.ok(Date.now() - t < 12_000, "SIGTERM ends it within the grace period");
  });
});
