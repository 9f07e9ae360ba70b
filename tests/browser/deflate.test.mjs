// permessage-deflate as a browser meets it: Chromium offers the extension on every WebSocket, so
// with PER_MESSAGE_DEFLATE=on the stock client's WebSocket runs compressed (no context takeover
// either way) and big and small, text and binary messages come back intact; off, it runs plain.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./launch.mjs";
import { startServer } from "../js/lib/server.mjs";

let on, off, context, browser;

before(async () => {
  [on, off] = await Promise.all([startServer({ env: { PER_MESSAGE_DEFLATE: "on" } }), startServer()]);
  browser = await launchChromium();
  context = browser.context;
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await Promise.all([on?.stop(), off?.stop()]);
});

/** From a page of `server`, on the default path (polling, then upgrade): the WebSocket's
 * negotiated extensions and whether echoes of several sizes and a binary came back intact. */
async function echoOverWebSocket(server) {
  const page = await context.newPage();
  await page.goto(`${server.url}/`, { timeout: 30_000 });
  const result = await page.evaluate(async () => {
    const s = window.io({ forceNew: true, reconnection: false });
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("connect_error", reject);
    });
    const engine = s.io.engine;
    for (let i = 0; i < 100 && engine.transport.name !== "websocket"; i++) await new Promise((r) => setTimeout(r, 50));
    const extensions = engine.transport.ws?.extensions ?? null;
    const same = [];
    for (const size of [10, 1500, 50_000, 300_000]) {
      const text = "bonjour le monde, ".repeat(Math.ceil(size / 18)).slice(0, size);
      same.push((await s.timeout(10_000).emitWithAck("echo", text)) === text);
    }
    const bin = new Uint8Array(100_000).map((_, i) => (i * 31) & 255);
    const back = new Uint8Array(await s.timeout(10_000).emitWithAck("echo", bin));
    same.push(back.length === bin.length && back.every((b, i) => b === bin[i]));
    s.disconnect();
    return { transport: engine.transport?.name, extensions, same };
  });
  await page.close();
  return result;
}

test("Chromium negotiates permessage-deflate and every echo comes back intact", async () => {
  const r = await echoOverWebSocket(on);
  assert.equal(r.extensions, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  assert.deepEqual(r.same, [true, true, true, true, true]);
});

test("off by default: Chromium's offer is declined and the same echoes pass plain", async () => {
  const r = await echoOverWebSocket(off);
  assert.equal(r.extensions, "");
  assert.deepEqual(r.same, [true, true, true, true, true]);
});
