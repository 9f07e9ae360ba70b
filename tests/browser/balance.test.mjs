// Load balancing as a person sees it (issue #14): tabs of the demo page opened one after another
// through the real nginx of scripts/cluster in front of sio-1..3 must spread over the instances,
// 2/2/2 for 6 tabs, in every round; after kill -9 of one instance new tabs land only on the live
// ones. A message posted to the webhook shows "via webhook" in the page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";
import { startCluster, INSTANCES } from "../js/lib/cluster.mjs";
import { sleep } from "../js/lib/server.mjs";

const TABS = 6;
const ROUNDS = 3;
let cluster, context, userDataDir;
let failed = false;
const errors = [];

/** Runs `fn`, remembering a failure so after() keeps the cluster logs. */
async function tracked(fn) {
  try {
    return await fn();
  } catch (e) {
    failed = true;
    throw e;
  }
}

/** Opens the demo page through nginx in a new tab; resolves to { page, instance } once connected. */
async function openTab() {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  const res = await page.goto(cluster.nginxUrl, { timeout: 30_000 });
  assert.equal(res.status(), 200);
  await page.waitForFunction(() => (document.querySelector('[data-testid="instance"]')?.textContent ?? "").trim() !== "", null, { timeout: 30_000 });
  const instance = (await page.locator('[data-testid="instance"]').textContent()).trim();
  return { page, instance };
}

/** { instance: count } over `tabs`, every instance listed. */
function spread(tabs) {
  const out = Object.fromEntries(INSTANCES.map((id) => [id, 0]));
  for (const t of tabs) out[t.instance] = (out[t.instance] ?? 0) + 1;
  return out;
}

before(
  async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    cluster = await startCluster();
    userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
  },
  { timeout: 300_000 },
);

after(
  async () => {
    await context?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await cluster?.down({ keep: failed });
  },
  { timeout: 120_000 },
);

test(`${TABS} tabs opened one after another land 2/2/2 on sio-1..3, in each of ${ROUNDS} rounds`, { timeout: 240_000 }, () =>
  tracked(async () => {
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const tabs = [];
      for (let i = 0; i < TABS; i++) tabs.push(await openTab());
      rounds.push(spread(tabs));
      console.log(`round ${r + 1}: ${tabs.map((t) => t.instance).join(" ")} → ${JSON.stringify(rounds.at(-1))}`);
      for (const t of tabs) await t.page.close();
    }
    for (const [r, s] of rounds.entries()) {
      assert.deepEqual(s, Object.fromEntries(INSTANCES.map((id) => [id, TABS / INSTANCES.length])), `round ${r + 1}`);
    }
    assert.deepEqual(errors, []);
  }),
);

test("a webhook message shows where it came from", { timeout: 60_000 }, () =>
  tracked(async () => {
    const { page } = await openTab();
    const room = `lb-webhook-${Date.now()}`;
    await page.locator('[data-testid="room-input"]').fill(room);
    await page.locator('[data-testid="join-button"]').click();
    await page.waitForFunction((r) => document.querySelector('[data-testid="joined-rooms"]')?.textContent.includes(r), room, { timeout: 10_000 });
    const text = `from outside ${Date.now()}`;
    const res = await fetch(`${cluster.webhookUrl}/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ roomId: room, message: text, sender: "Webhook Test" }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200, await res.text());
    const item = page.locator('[data-testid="message"]', { hasText: text }).first();
    await item.waitFor({ state: "visible", timeout: 10_000 });
    const via = (await item.locator(".instance").textContent()).trim();
    console.log(`webhook message in the page: "${via}"`);
    assert.equal(via, "via webhook");
    await page.close();
  }),
);

test("after kill -9 of sio-2, new tabs land only on the live instances", { timeout: 120_000 }, () =>
  tracked(async () => {
    const victim = "sio-2";
    const pid = cluster.pid(victim);
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await sleep(50);
    }
    const tabs = [];
    for (let i = 0; i < TABS; i++) tabs.push(await openTab());
    const s = spread(tabs);
    console.log(`after kill -9 ${victim}: ${tabs.map((t) => t.instance).join(" ")} → ${JSON.stringify(s)}`);
    assert.equal(s[victim], 0, `no tab on ${victim}`);
    for (const id of INSTANCES.filter((id) => id !== victim)) assert.ok(s[id] >= 1, `${id} got a tab: ${JSON.stringify(s)}`);
    for (const t of tabs) await t.page.close();
    assert.deepEqual(errors, []);
  }),
);
