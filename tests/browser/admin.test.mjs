// The official Socket.IO Admin UI (embedded @socket.io/admin-ui 0.5.1 at /admin/) in a real
// browser (Debian's Chromium, driven by playwright-core) against a real sio-server with no
// internet: the UI loads nothing from a CDN, connects through its own form, shows the server and
// the demo page's socket, and disconnects that socket, which the demo page then shows. Leaves a
// screenshot in tests/artifacts/admin-ui.png (and, with UPDATE_SCREENSHOT=1, in docs/admin-ui.png).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";
import { startServer, binary } from "../js/lib/server.mjs";

/** A link of the UI's side navigation. */
const nav = (page, name) => page.getByRole("navigation").getByRole("link", { name });
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const PASSWORD = "browser-admin-pw";

let server, context, userDataDir, demo, ui;
const offsite = []; // requests that tried to leave the machine
const problems = [];

describe("Admin UI in Chromium", () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    const hashed = spawnSync(binary("sio-server"), ["admin-hash"], { input: PASSWORD, encoding: "utf8", timeout: 20_000 });
    assert.equal(hashed.status, 0, hashed.stderr);
    server = await startServer({
      env: { INSTANCE_ID: "admin-browser-1", ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: hashed.stdout.trim() },
    });
    userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1280, height: 800 },
    });
    // No internet in tests: anything not on loopback is refused at once (and recorded).
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => {
      offsite.push(route.request().url());
      return route.abort();
    });
    demo = await context.newPage();
    ui = context.pages()[0];
    ui.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    ui.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    await demo.goto(server.url);
  });
  after(async () => {
    await context?.close().catch(() => {});
    await server?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  test("the UI logs in, shows the server and the demo page's socket, and disconnects it", async () => {
    const status = demo.locator('[data-testid="status"]');
    await demo.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent === "connected", null, {
      timeout: 10_000,
    });
    const socketId = (await demo.locator('[data-testid="socket-id"]').textContent()).trim();
    assert.ok(socketId.length > 0);

    await ui.goto(`${server.url}/admin/`);
    // A wrong password is refused by the UI's form.
    await ui.getByLabel("Server URL").fill(server.url);
    await ui.getByLabel("Username").fill("admin");
    await ui.getByLabel("Password").fill("wrong");
    await ui.getByRole("button", { name: "Connect" }).click();
    await ui.getByText("Invalid credentials").waitFor({ timeout: 10_000 });
    await ui.getByLabel("Password").fill(PASSWORD);
    await ui.getByRole("button", { name: "Connect" }).click();
    await ui.getByText("connected", { exact: true }).first().waitFor({ timeout: 10_000 });

    // Servers page: this instance, healthy.
    await nav(ui, "Servers").click();
    const serverRow = ui.locator("tr", { hasText: "admin-browser-1" });
    await serverRow.waitFor({ timeout: 10_000 });
    assert.match(await serverRow.textContent(), /healthy/i);

    // Sockets page: the demo page's socket, then its disconnect button.
    await nav(ui, "Sockets").click();
    const row = ui.locator("tr", { hasText: socketId });
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.textContent(), /WebSocket/);
    const shot = path.join(root, "tests/artifacts/admin-ui.png");
    mkdirSync(path.dirname(shot), { recursive: true });
    await nav(ui, "Dashboard").click();
    // The charts and tables fill in with the next server_stats (every 2 s).
    await ui.getByText(/^\s*healthy\s*$/i).first().waitFor({ timeout: 10_000 });
    await ui.waitForTimeout(2500);
    await ui.screenshot({ path: shot });
    if (process.env.UPDATE_SCREENSHOT) copyFileSync(shot, path.join(root, "docs/admin-ui.png"));
    await nav(ui, "Sockets").click();
    await row.waitFor({ timeout: 10_000 });
    await row.locator("button").last().click();

    await demo.waitForFunction(
      () => /^disconnected/.test(document.querySelector('[data-testid="status"]')?.textContent ?? ""),
      null,
      { timeout: 10_000 },
    );
    assert.match(await status.textContent(), /io server disconnect/);
    if (process.env.ADMIN_SHOTS) await ui.screenshot({ path: path.join(process.env.ADMIN_SHOTS, "after-disconnect.png") });
    // The UI drops the socket from its list too.
    await nav(ui, "Sockets").click();
    await ui.locator("tbody tr", { hasText: socketId }).waitFor({ state: "detached", timeout: 10_000 });

    assert.deepEqual(offsite.filter((u) => !u.startsWith("data:")), [], "the UI loads nothing from the internet");
    assert.deepEqual(problems, []);
  });
});
