// The failover drill of issue #17 (lib/drill.mjs) on scripts/cluster with its default
// REDIS_ADAPTER=streams: 30 stock clients in one room through nginx, a webhook stream at 25/s, the
// busiest instance killed (SIGKILL) or stopped (SIGTERM) mid-stream, with the default transports
// and websocket only. Zero loss: every message the webhook answered 200 for reaches every client
// exactly once and in order, and the victim's clients come back recovered, with their socket id.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startCluster } from "./lib/cluster.mjs";
import { runDrill, deliveryOf } from "./lib/drill.mjs";

test("deliveryOf counts lost, duplicated and out-of-order sequence numbers", () => {
  assert.deepEqual(deliveryOf([1, 2, 3], [1, 2, 3]), { lost: [], duplicates: 0, outOfOrder: 0, unacked: 0 });
  assert.deepEqual(deliveryOf([1, 3, 3, 2], [1, 2, 3, 4]), { lost: [4], duplicates: 1, outOfOrder: 1, unacked: 0 });
  assert.deepEqual(deliveryOf([4, 1, 2, 3], [1, 2, 3, 4]), { lost: [], duplicates: 0, outOfOrder: 1, unacked: 0 });
  // Causal order: 2 was sent before 1 was answered, so 2 may overtake 1; 3 may not overtake 1.
  const hb = (k, m) => ({ "1-3": true, "2-3": true })[`${k}-${m}`] ?? false;
  assert.deepEqual(deliveryOf([2, 1, 3], [1, 2, 3], hb), { lost: [], duplicates: 0, outOfOrder: 0, unacked: 0 });
  assert.deepEqual(deliveryOf([3, 2, 1], [1, 2, 3], hb), { lost: [], duplicates: 0, outOfOrder: 1, unacked: 0 });
  // 7 was not acked (e.g. a 504): it counts as unacked, not as out of order.
  assert.deepEqual(deliveryOf([1, 7, 2], [1, 2]), { lost: [], duplicates: 0, outOfOrder: 0, unacked: 1 });
  assert.deepEqual(deliveryOf([], [5]), { lost: [5], duplicates: 0, outOfOrder: 0, unacked: 0 });
});

describe("failover drill, zero loss (REDIS_ADAPTER=streams, the scripts/cluster default)", () => {
  let cluster;
  let failed = false;
  before(async () => {
    cluster = await startCluster({ env: { RUST_LOG: "warn" } });
  }, { timeout: 260_000 });
  after(async () => {
    await cluster?.down({ keep: failed });
  }, { timeout: 120_000 });

  // Each drill kills (or stops) the busiest instance; the next one first brings it back.
  const drills = [
    { signal: "SIGKILL" },
    { signal: "SIGKILL", transports: ["websocket"] },
    { signal: "SIGTERM" },
    { signal: "SIGTERM", transports: ["websocket"] },
  ];
  for (const d of drills) {
    const name = `${d.signal}, ${d.transports ? "websocket only" : "default transports"}`;
    test(`${name}: every acknowledged message reaches every client once and in order; the victim's clients recover with their id`, { timeout: 120_000 }, async () => {
      try {
        await cluster.up();
        const r = await runDrill(cluster, { clients: 30, rate: 25, beforeMs: 1500, afterMs: 5000, ...d }, (l) => console.log(`# ${l}`));
        const { perClient, ...summary } = r;
        console.log(`# drill ${JSON.stringify(summary)}`);
        const bad = (pred) => JSON.stringify(perClient.filter(pred));
        assert.ok(r.victimClients > 0, "the victim had clients");
        assert.equal(r.postErrors, 0, "every POST got an HTTP answer");
        assert.ok(r.acked > 0.5 * r.posted, `most POSTs answered 200: ${JSON.stringify(r.answered)}`);
        assert.equal(r.notReconnected, 0, `every client of ${r.victim} came back: ${bad((p) => p.victim && !p.reconnected)}`);
        assert.equal(r.lost, 0, `no acknowledged message lost: ${bad((p) => p.lost > 0)}`);
        assert.equal(r.duplicates, 0, `nothing delivered twice: ${bad((p) => p.duplicates > 0)}`);
        assert.equal(r.outOfOrder, 0, `nothing out of order: ${bad((p) => p.outOfOrder > 0)}`);
        assert.equal(r.recovered, r.victimClients, `every client of ${r.victim} recovered: ${bad((p) => p.victim && !p.recovered)}`);
        assert.equal(r.sameId, r.victimClients, `and kept its socket id: ${bad((p) => p.victim && !p.sameId)}`);
      } catch (e) {
        failed = true;
        throw e;
      }
    });
  }
});
