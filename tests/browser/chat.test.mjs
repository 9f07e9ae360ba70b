// The demo page in a real browser (Debian's Chromium, driven by playwright-core) against a real
// sio-server: two pages chat through a room, every message type renders, the layout fits a 375px
// phone, and the pages log no errors. Leaves a screenshot in tests/artifacts/chat.png (and, with
// UPDATE_SCREENSHOT=1, in docs/screenshot.png for the README).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { deflateSync } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from "./chromium.mjs";
import { startServer, freePort } from "../js/lib/server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const DELIVERY_MS = 2000;

// --- a tiny PNG and a static server for media URLs (the chat server serves no images) ----------
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** A width×height RGB gradient PNG. */
function gradientPng(width, height) {
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = Math.round((x / width) * 255);
      row[2 + x * 3] = Math.round((y / height) * 200);
      row[3 + x * 3] = 220;
    }
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function startAssets() {
  const png = gradientPng(240, 120);
  const port = await freePort();
  const srv = createServer((req, res) => {
    if (req.url === "/picture.png") {
      res.writeHead(200, { "content-type": "image/png", "content-length": png.length });
      res.end(png);
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise((r) => srv.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(r)) };
}

// --- fixtures -------------------------------------------------------------------------------------
let server, assets, context, userDataDir;
let pageA, pageB;
const problems = new Map(); // page label -> recorded console errors / page errors

function watch(page, label) {
  const list = [];
  problems.set(label, list);
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().includes("Failed to load resource")) list.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => list.push(`pageerror: ${err.message}`));
  return page;
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

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

async function send(page, { type = "text", sender, fields }) {
  if (sender !== undefined) await tid(page, "sender-input").fill(sender);
  await tid(page, "message-type").selectOption(type);
  for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(String(value));
  await tid(page, "send-button").click();
}

/** The message item in `page` of `type` whose text contains `text`, once visible. */
async function received(page, type, text, timeout = DELIVERY_MS) {
  const item = tid(page, "messages").locator(`[data-testid="message"][data-type="${type}"]`, { hasText: text });
  await item.first().waitFor({ state: "visible", timeout });
  return item;
}

async function noHorizontalScroll(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
}

const room = `browser-${Date.now()}`;

describe("demo page in Chromium", () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    server = await startServer({ env: { INSTANCE_ID: "browser-test-1" } });
    assets = await startAssets();
    userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 375, height: 812 },
      deviceScaleFactor: 2,
    });
    pageA = watch(context.pages()[0] ?? (await context.newPage()), "A");
    pageB = watch(await context.newPage(), "B");
    await Promise.all([pageA.goto(server.url), pageB.goto(server.url)]);
  });

  after(async () => {
    await context?.close().catch(() => {});
    await server?.stop();
    await assets?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  test("both pages connect and show the instance, socket id and transport", async () => {
    for (const page of [pageA, pageB]) {
      await waitForText(page, "instance", (t) => t.trim() !== "");
      assert.equal((await tid(page, "instance").textContent()).trim(), "browser-test-1");
      await waitForText(page, "status", (t) => t === "connected");
      await waitForText(page, "socket-id", (t) => t.trim().length > 0);
      await waitForText(page, "transport", (t) => t === "websocket", 10000);
    }
    const [idA, idB] = await Promise.all([tid(pageA, "socket-id").textContent(), tid(pageB, "socket-id").textContent()]);
    assert.notEqual(idA, idB);
  });

  test("every control has a label", async () => {
    const unlabeled = await pageA.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea")]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
        .map((el) => el.id || el.name || el.outerHTML),
    );
    assert.deepEqual(unlabeled, []);
  });

  test("the type selector shows the fields of the chosen type", async () => {
    const visible = async (label) => pageA.getByLabel(label, { exact: true }).isVisible();
    await tid(pageA, "message-type").selectOption("image");
    assert.equal(await visible("Image URL"), true);
    assert.equal(await visible("Message"), false);
    await tid(pageA, "message-type").selectOption("location");
    assert.equal(await visible("Latitude"), true);
    assert.equal(await visible("Image URL"), false);
    await tid(pageA, "message-type").selectOption("zalo");
    assert.equal(await visible("Message"), true);
    assert.equal(await visible("Zalo user id (optional)"), true);
    await tid(pageA, "message-type").selectOption("text");
    assert.equal(await visible("Message"), true);
    assert.equal(await visible("Zalo user id (optional)"), false);
  });

  test("both pages join the same room", async () => {
    for (const page of [pageA, pageB]) {
      await tid(page, "room-input").fill(room);
      await tid(page, "join-button").click();
      await waitForText(page, "joined-rooms", new Function(`return (t) => t.includes(${JSON.stringify(room)})`)());
    }
  });

  test("a text message typed in page A appears once in page B within 2 s", async () => {
    await send(pageA, { sender: "Alice", fields: { Message: "Hello from page A" } });
    const item = await received(pageB, "text", "Hello from page A");
    assert.equal(await item.count(), 1, "rendered once (generic event only)");
    const text = await item.textContent();
    assert.ok(text.includes("Alice"), `sender shown: ${text}`);
    assert.ok(text.includes("browser-test-1"), `sending instance shown: ${text}`);
    assert.equal(await item.locator("time").count(), 1);
    // The input is cleared once the ack arrives.
    await pageA.waitForFunction(() => document.querySelector('[data-testid="message-input"]').value === "", null, { timeout: 2000 });
    // The sender's own page shows it as well.
    await received(pageA, "text", "Hello from page A");
  });

  test("page B can answer, with its own sender name", async () => {
    await send(pageB, { sender: "Bob", fields: { Message: "Hi Alice" } });
    const item = await received(pageA, "text", "Hi Alice");
    assert.ok((await item.textContent()).includes("Bob"));
  });

  test("an image message renders an <img> in page B", async () => {
    const url = `${assets.url}/picture.png`;
    await send(pageA, { type: "image", fields: { "Image URL": url, "Caption (optional)": "A gradient" } });
    const item = await received(pageB, "image", "A gradient");
    const img = item.locator("img");
    assert.equal(await img.count(), 1);
    assert.equal(await img.getAttribute("src"), url);
    assert.equal(await img.getAttribute("alt"), "A gradient");
    await pageB.waitForFunction((u) => [...document.images].some((i) => i.src === u && i.complete && i.naturalWidth > 0), url);
  });

  test("a location message renders coordinates and a map link in page B", async () => {
    await send(pageA, { type: "location", fields: { Latitude: "10.7769", Longitude: "106.7009", "Address (optional)": "Ben Thanh Market" } });
    const item = await received(pageB, "location", "Ben Thanh Market");
    const link = item.locator('a[href^="https://www.openstreetmap.org/?mlat=10.7769&mlon=106.7009"]');
    assert.equal(await link.count(), 1);
    assert.ok((await item.textContent()).includes("10.77690, 106.70090"));
  });

  test("file, audio and Zalo messages render their parts", async () => {
    await send(pageA, {
      type: "file",
      fields: { "File URL": `${assets.url}/report.pdf`, "File name": "report.pdf", "File size in bytes (optional)": "2048" },
    });
    const file = await received(pageB, "file", "report.pdf");
    const a = file.locator(`a[href="${assets.url}/report.pdf"]`);
    assert.equal(await a.count(), 1);
    assert.ok((await a.textContent()).includes("2.0 KB"));

    await send(pageA, { type: "audio", fields: { "Audio URL": `${assets.url}/voice.ogg`, "Duration in seconds (optional)": "4.5" } });
    const audio = await received(pageB, "audio", "sent a voice message");
    assert.equal(await audio.locator("audio[controls]").count(), 1);

    await send(pageA, { type: "zalo", fields: { Message: "Chào bạn", "Zalo user id (optional)": "zl-42" } });
    const zalo = await received(pageB, "zalo", "Chào bạn");
    assert.ok((await zalo.textContent()).includes("Zalo"));
  });

  test("screenshot of page B", async () => {
    await pageB.evaluate(() => window.scrollTo(0, 0));
    const artifacts = path.join(root, "tests/artifacts");
    mkdirSync(artifacts, { recursive: true });
    const file = path.join(artifacts, "chat.png");
    await pageB.screenshot({ path: file, fullPage: true });
    assert.ok(existsSync(file));
    // UPDATE_SCREENSHOT=1 refreshes the README's screenshot; otherwise the committed one stays.
    if (process.env.UPDATE_SCREENSHOT === "1") {
      const docs = path.join(root, "docs");
      mkdirSync(docs, { recursive: true });
      copyFileSync(file, path.join(docs, "screenshot.png"));
    }
  });

  test("an image that fails to load still renders an <img>", async () => {
    const url = `${server.url}/nope.png`;
    await send(pageA, { type: "image", fields: { "Image URL": url } });
    const img = tid(pageB, "messages").locator(`[data-testid="message"][data-type="image"] img[src="${url}"]`);
    await img.waitFor({ state: "attached", timeout: DELIVERY_MS });
    assert.equal(await img.count(), 1);
    assert.equal(await img.getAttribute("alt"), "sent an image");
  });

  test("message data is rendered as text, never as HTML", async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    await send(pageA, { type: "text", sender: "<i>Mallory</i>", fields: { Message: evil } });
    const item = await received(pageB, "text", "<b>bold</b>");
    assert.equal(await item.locator("b, i, img").count(), 0);
    assert.equal(await pageB.evaluate(() => window.__pwned), undefined);
    await tid(pageA, "sender-input").fill("Alice");
  });

  test("an invalid message shows the ack error inline and is not delivered", async () => {
    const before = await tid(pageB, "message").count();
    await send(pageA, { type: "image", fields: { "Image URL": "not-a-url" } });
    await waitForText(pageA, "send-error", (t) => t.includes("imageUrl"));
    const error = await tid(pageA, "send-error").textContent();
    assert.match(error, /absolute http\(s\) URL/);
    assert.match(error, /field: imageUrl/);
    await pageB.waitForTimeout(300);
    assert.equal(await tid(pageB, "message").count(), before);
    // A later valid message clears the error.
    await send(pageA, { type: "text", fields: { Message: "fixed it" } });
    await received(pageB, "text", "fixed it");
    assert.equal((await tid(pageA, "send-error").textContent()).trim(), "");
  });

  test("no horizontal scrolling at 375px", async () => {
    for (const page of [pageA, pageB]) {
      for (const type of ["text", "zalo", "image", "file", "location", "audio"]) {
        await tid(page, "message-type").selectOption(type);
        const { scrollWidth, clientWidth } = await noHorizontalScroll(page);
        assert.equal(clientWidth, 375);
        assert.ok(scrollWidth <= clientWidth, `${type}: scrollWidth ${scrollWidth} > ${clientWidth}`);
      }
      await tid(page, "message-type").selectOption("text");
    }
  });

  test("leaving the room stops delivery to that page", async () => {
    await tid(pageB, "leave-button").click();
    await waitForText(pageB, "joined-rooms", (t) => t.includes("none"));
    const before = await tid(pageB, "message").count();
    await send(pageA, { fields: { Message: "B has left" } });
    await received(pageA, "text", "B has left");
    await pageB.waitForTimeout(300);
    assert.equal(await tid(pageB, "message").count(), before);
    await tid(pageB, "join-button").click();
    await waitForText(pageB, "joined-rooms", new Function(`return (t) => t.includes(${JSON.stringify(room)})`)());
  });

  test("no console errors or page errors on either page", () => {
    assert.deepEqual(Object.fromEntries(problems), { A: [], B: [] });
  });

  test("status shows reconnect attempts; after a restart the page reconnects and rejoins its room", async () => {
    const port = server.port;
    await server.stop();
    await waitForText(pageA, "status", (t) => /reconnecting \(attempt \d+\)/.test(t), 10000);
    server = await startServer({ port, env: { INSTANCE_ID: "browser-test-2" } });
    for (const page of [pageA, pageB]) {
      await waitForText(page, "status", (t) => t === "connected", 15000);
      await waitForText(page, "instance", (t) => t === "browser-test-2");
    }
    // The pages joined their rooms again on reconnect: messages flow without clicking join.
    await pageA.waitForTimeout(200);
    await send(pageA, { fields: { Message: "after restart" } });
    const item = await received(pageB, "text", "after restart");
    assert.ok((await item.textContent()).includes("browser-test-2"));
  });
});
