// Two demo pages in Chromium on two sio-server instances sharing one Redis: each page shows its
// own instance, and messages typed in one appear in the other (through the Redis adapter).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from "./chromium.mjs";
import { startServer } from "../js/lib/server.mjs";
import { startRedis } from "../js/lib/redis.mjs";


let redis, one, two, context, userDataDir, pageA, pageB;
const errors = [];
const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
  redis = await startRedis();
  [one, two] = await Promise.all([
    startServer({ env: { INSTANCE_ID: "page-host-1", REDIS_URL: redis.url } }),
    startServer({ env: { INSTANCE_ID: "page-host-2", REDIS_URL: redis.url } }),
  ]);
  userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: ARGS, headless: true });
  pageA = context.pages()[0] ?? (await context.newPage());
  pageB = await context.newPage();
  for (const page of [pageA, pageB]) {
    page.on("console", (m) => m.type() === "error" && !m.text().includes("Failed to load resource") && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
  }
  await Promise.all([pageA.goto(one.url), pageB.goto(two.url)]);
});

after(async () => {
  await context?.close().catch(() => {});
  await Promise.all([one?.stop(), two?.stop()]);
  await redis?.stop();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test("pages on different instances see each other's messages", { timeout: 30000 }, async () => {
  await pageA.waitForFunction(() => document.querySelector('[data-testid="instance"]')?.textContent.trim() === "page-host-1");
  await pageB.waitForFunction(() => document.querySelector('[data-testid="instance"]')?.textContent.trim() === "page-host-2");
  const room = `cross-${Date.now()}`;
  for (const page of [pageA, pageB]) {
    await tid(page, "room-input").fill(room);
    await tid(page, "join-button").click();
    await page.waitForFunction((r) => document.querySelector('[data-testid="joined-rooms"]')?.textContent.includes(r), room);
  }
  await tid(pageA, "sender-input").fill("Alice");
  await tid(pageA, "message-type").selectOption("text");
  await pageA.getByLabel("Message", { exact: true }).fill("hello from instance one");
  await tid(pageA, "send-button").click();
  const inB = tid(pageB, "messages").locator('[data-testid="message"][data-type="text"]', { hasText: "hello from instance one" });
  await inB.first().waitFor({ state: "visible", timeout: 2000 });
  assert.match(await inB.first().textContent(), /Alice/);

  await tid(pageB, "sender-input").fill("Bob");
  await tid(pageB, "message-type").selectOption("location");
  await pageB.getByLabel("Latitude", { exact: true }).fill("10.7769");
  await pageB.getByLabel("Longitude", { exact: true }).fill("106.7009");
  await tid(pageB, "send-button").click();
  const inA = tid(pageA, "messages").locator('[data-testid="message"][data-type="location"]');
  await inA.first().waitFor({ state: "visible", timeout: 2000 });
  assert.equal(await inA.first().locator("a").count() >= 1, true, "location renders a map link");
  assert.match(await inA.first().textContent(), /Bob/);
  assert.deepEqual(errors, []);
});
