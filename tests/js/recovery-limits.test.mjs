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

describe("one restore replays at most 8 MiB", () => {
  const text = "y".repeat(2000);

  async function missed(count) {
    const server = await start({});
    const room = fresh("big");
    const v = await connect(server.url);
    await v.timeout(4000).emitWithAck("join", room);
    let got = 0;
    v.on("message", () => got++);
    const sender = await connect(server.url);
    const back = once(v, "connect", 20_000);
    v.io.reconnection(false);
    v.io.engine.close();
    await waitFor(() => !v.connected, 5000, "victim disconnected");
    for (let i = 0; i < count; i += 100) {
      const n = Math.min(100, count - i);
      const acks = await Promise.all(
        Array.from({ length: n }, (_, k) => sender.timeout(10_000).emitWithAck("message", { roomId: room, message: text + (i + k) })),
      );
      assert.ok(acks.every((a) => a.ok), JSON.stringify(acks.find((a) => !a.ok)));
    }
    v.io.reconnection(true);
    v.connect();
    await back;
    return { v, got: () => got };
  }

  test("under the budget: recovered, every missed message once", async () => {
    const { v, got } = await missed(500);
    assert.equal(v.recovered, true);
    await waitFor(() => got() >= 500, 10_000, "500 missed messages");
    assert.equal(got(), 500);
  });

  test("past it (about 9 MB missed): a fresh session, nothing replayed, the server healthy", async () => {
    const { v, got } = await missed(4500);
    assert.equal(v.recovered, false, "a fresh session instead of a 9 MB replay");
    assert.equal(got(), 0);
    assert.equal(await health(servers.at(-1).url), 200);
  });
});

describe("saved sessions are bounded in bytes", () => {
  test("RECOVERY_SESSION_BYTES too small for one session: the client gets a fresh one", async () => {
    const server = await start({ RECOVERY_SESSION_BYTES: "64" });
    const s = await connect(server.url);
    await s.timeout(4000).emitWithAck("join", fresh("r"));
    await bounce(s);
    assert.equal(s.recovered, false);
  });

  test("with room for it (default budget): recovered", async () => {
    const server = await start({});
    const s = await connect(server.url);
    await s.timeout(4000).emitWithAck("join", fresh("r"));
    await bounce(s);
    assert.equal(s.recovered, true);
  });

  test("RECOVERY_SESSION_BYTES=0 is refused at startup, naming the variable", async () => {
    await assert.rejects(start({ RECOVERY_SESSION_BYTES: "0" }), /RECOVERY_SESSION_BYTES/);
  });
});
