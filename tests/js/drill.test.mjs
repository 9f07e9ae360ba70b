// The failover drill of issue #17 (lib/drill.mjs) in its BASELINE form: today's classic adapter has
// no connection state recovery, so clients of the killed instance lose messages and come back as
// new sockets. This file asserts only what is true today and must stay true. When the streams
// adapter lands (REDIS_ADAPTER=streams, the default of scripts/cluster), turn
// "baseline: ..." into the zero-loss assertion: lost === 0, duplicates === 0, outOfOrder === 0,
// recovered === sameId === victimClients, for SIGKILL and SIGTERM, default transports and websocket.
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

describe("failover drill, baseline (REDIS_ADAPTER=classic)", () => {
  let cluster;
  let failed = false;
  before(async () => {
    cluster = await startCluster({ env: { REDIS_ADAPTER: "classic", RUST_LOG: "warn" } });
  }, { timeout: 260_000 });
  after(async () => {
    await cluster?.down({ keep: failed });
  }, { timeout: 120_000 });

  test("baseline: kill -9 of the busiest instance: every client reconnects, every POST is answered, survivors lose nothing", { timeout: 180_000 }, async () => {
    try {
      const r = await runDrill(cluster, { clients: 30, rate: 25, signal: "SIGKILL" }, (l) => console.log(`# ${l}`));
      const { perClient, ...summary } = r;
      console.log(`# drill ${JSON.stringify(summary)}`);
      assert.ok(r.victimClients > 0, "the victim had clients");
      assert.equal(r.notReconnected, 0, `every client of ${r.victim} came back: ${JSON.stringify(perClient.filter((p) => p.victim && !p.reconnected))}`);
      assert.equal(r.postErrors, 0, "every POST got an HTTP answer");
      assert.ok(r.acked > 0.5 * r.posted, `most POSTs answered 200: ${JSON.stringify(r.answered)}`);
      assert.equal(r.lostOnSurvivors, 0, "clients of the surviving instances lose nothing");
      assert.equal(r.duplicates, 0, "nothing is delivered twice");
      assert.equal(r.outOfOrder, 0, "no message overtakes one the webhook had answered before it was sent");
      // Today's gap (what the streams adapter must close): losses on the victim's clients and new
      // socket ids. Not asserted, printed above.
    } catch (e) {
      failed = true;
      throw e;
    }
  });
});
