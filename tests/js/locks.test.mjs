// Lock re-entry under contention (issue #13 item 10): fetch_sockets reads every target socket's
// rooms while other sockets join and leave. With the rooms read lock held across the per-socket
// callback, a waiting writer (a join) made the second read block forever and the server hung.
// Real testbed process, stock clients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once } from "./lib/server.mjs";

const CLIENTS = 40;
const ROUNDS = 150;

test("fetch_sockets runs concurrently with joins and leaves and always completes", async () => {
  const server = await startServer({ name: "testbed" });
  const clients = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] }));
    }
    await Promise.all(clients.map((c) => once(c, "connect")));
    // Everybody in "hot", so one fetch walks many sockets (a long read-locked section).
    await Promise.all(clients.map((c) => c.emitWithAck("join", "hot")));
    const churners = clients.slice(0, CLIENTS / 2);
    const fetchers = clients.slice(CLIENTS / 2);
    let fetched = 0;
    let churned = 0;
    const deadline = Date.now() + 60_000; // a bound, not a speed assertion
    const churn = churners.map(async (c, i) => {
      for (let r = 0; r < ROUNDS && Date.now() < deadline; r++) {
        const room = `r${(i + r) % 7}`;
        await c.timeout(10_000).emitWithAck("join", room);
        await c.timeout(10_000).emitWithAck("leave", room);
        churned++;
      }
    });
    const fetch = fetchers.map(async (c) => {
      for (let r = 0; r < ROUNDS / 3 && Date.now() < deadline; r++) {
        const ids = await c.timeout(10_000).emitWithAck("fetch", "hot");
        assert.equal(ids.length, CLIENTS, "every member of the room is listed");
        fetched++;
      }
    });
    const started = Date.now();
    try {
      await Promise.all([...churn, ...fetch]);
    } catch (e) {
      throw new Error(`server stopped answering after ${churned} join/leave rounds and ${fetched} fetches (${Date.now() - started} ms): ${e.message}`);
    }
    assert.equal(churned, (CLIENTS / 2) * ROUNDS, "every join/leave round was acked");
    assert.equal(fetched, (CLIENTS / 2) * Math.floor(ROUNDS / 3), "every fetch was acked");
    // Still responsive afterwards.
    assert.equal(await clients[0].timeout(5000).emitWithAck("echo", "alive"), "alive");
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop("SIGKILL");
  }
});
