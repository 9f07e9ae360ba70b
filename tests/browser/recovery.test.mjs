// The demo page in Chromium after a dropped network: its connections run through a TCP proxy that
// the test cuts (every socket destroyed, new ones refused) and restores. The page comes back with
// connection state recovery: status "connected (recovered)", the same socket id, its room kept
// without a rejoin, and the message sent while it was away shown once.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from "./chromium.mjs";
import { startServer, freePort } from "../js/lib/server.mjs";

/** A TCP proxy to `target` that can cut every connection and refuse new ones until restored. */
async function startProxy(target) {
  const port = await freePort();
  const live = new Set();
  let up = true;
  const srv = net.createServer((client) => {
    if (!up) return client.destroy();
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      live.add(s);
      s.on("close", () => live.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((r) => srv.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      up = false;
      for (const s of live) s.destroy();
    },
    restore() {
      up = true;
    },
    close: () => new Promise((r) => srv.close(r)),
  };
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);
const text = async (page, id) => (await tid(page, id).textContent()).trim();

async function waitForText(page, id, pred, timeout = 5000) {
  await page.waitForFunction(
    ([id, src]) => {
      const el = document.querySelector(`[data-testid="${id}"]`);
      return el && new Function("t", `return (${src})(t)`)(el.textContent);
    },
    [id, pred.toString()],
    { timeout },
  );
}

async function join(page, room) {
  await tid(page, "room-input").fill(room);
  await tid(page, "join-button").click();
  await waitForText(page, "joined-rooms", new Function(`return (t) => t.includes(${JSON.stringify(room)})`)());
}

async function say(page, message) {
  await tid(page, "message-type").selectOption("text");
  await page.getByLabel("Message", { exact: true }).fill(message);
  await tid(page, "send-button").click();
}

const shown = (page, message) => tid(page, "messages").locator('[data-testid="message"]', { hasText: message });

let server, proxy, context, userDataDir, pageA, pageB;
const room = `recovery-${Date.now()}`;

describe("demo page after a dropped network", () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    server = await startServer({ env: { INSTANCE_ID: "browser-recovery" } });
    proxy = await startProxy(server.port);
    userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: ARGS, headless: true });
    pageA = context.pages()[0] ?? (await context.newPage());
    pageB = await context.newPage();
    await Promise.all([pageA.goto(proxy.url), pageB.goto(server.url)]);
  });

  after(async () => {
    await context?.close().catch(() => {});
    await proxy?.close();
    await server?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  test("shows 'connected (recovered)', keeps its id and room, and shows the missed message once", async () => {
    for (const page of [pageA, pageB]) {
      await waitForText(page, "status", (t) => t === "connected", 10000);
      await waitForText(page, "transport", (t) => t === "websocket", 10000);
      await join(page, room);
    }
    const id = await text(pageA, "socket-id");
    proxy.cut();
    await waitForText(pageA, "status", (t) => /disconnected|reconnecting/.test(t), 10000);
    await say(pageB, "sent while A was away");
    await shown(pageB, "sent while A was away").first().waitFor({ state: "visible", timeout: 5000 });
    proxy.restore();
    await waitForText(pageA, "status", (t) => t === "connected (recovered)", 20000);
    assert.equal(await text(pageA, "socket-id"), id);
    await shown(pageA, "sent while A was away").first().waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await shown(pageA, "sent while A was away").count(), 1);
    assert.match(await text(pageA, "joined-rooms"), new RegExp(room));
    // The room was kept on the server, not rejoined: a new message still reaches A.
    await say(pageB, "after the recovery");
    await shown(pageA, "after the recovery").first().waitFor({ state: "visible", timeout: 5000 });
  });
});
