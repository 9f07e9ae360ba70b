// A Chromium for one suite: CHROMIUM with CHROMIUM_ARGS and a fresh profile directory, removed on close.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";

/** Launches Chromium with a fresh profile directory; `close()` closes it and removes the profile. */
export async function launchChromium(options = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), "sio-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 60_000, ...options });
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}
