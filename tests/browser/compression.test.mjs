// HTTP compression as a browser meets it: Chromium sends Accept-Encoding, so the stock client's
// polling responses of 1 KiB or more come back gzip-encoded and the browser inflates them; with
// HTTP_COMPRESSION=off the same traffic is plain. Either way the client gets its data intact.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./launch.mjs";
import { startServer } from "../js/lib/server.mjs";

let on, off, context, browser;

before(async () => {
  [on, off] = await Promise.all([startServer(), startServer({ env: { HTTP_COMPRESSION: "off" } })]);
  browser = await launchChromium();
  context = browser.context;
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await Promise.all([on?.stop(), off?.stop()]);
});

/** Echoes a 40 KB string over polling from a page of `server`; returns the echo and the encodings seen. */
async function echoOverPolling(server) {
  const page = await context.newPage();
  const encodings = [];
  page.on("response", (res) => {
    if (res.url().includes("transport=polling") && res.request().method() === "GET") {
      encodings.push(res.headers()["content-encoding"] ?? "identity");
    }
  });
  await page.goto(`${server.url}/`, { timeout: 30_000 });
  const result = await page.evaluate(async () => {
    // The page's own bundle: window.io from /socket.io/socket.io.min.js.
    const s = window.io({ forceNew: true, transports: ["polling"], reconnection: false });
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("connect_error", reject);
    });
    const big = "bonjour le monde, ".repeat(2500);
    const back = await s.timeout(10_000).emitWithAck("echo", big);
    s.disconnect();
    return { same: back === big, length: back.length };
  });
  await page.close();
  return { ...result, encodings };
}

test("a browser gets gzip for large polling responses and reads them", async () => {
  const r = await echoOverPolling(on);
  assert.equal(r.same, true, `echo of ${r.length} chars`);
  assert.ok(r.encodings.includes("gzip"), `encodings seen: ${r.encodings}`);
  assert.ok(r.encodings.includes("identity"), "small responses (the handshake) stay plain");
});

test("with HTTP_COMPRESSION=off the browser gets the same data uncompressed", async () => {
  const r = await echoOverPolling(off);
  assert.equal(r.same, true);
  assert.deepEqual([...new Set(r.encodings)], ["identity"]);
});
