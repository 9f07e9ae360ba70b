// The command lines of sio-server and sio-webhook (clap, one table of settings): --help lists
// every setting the README's Configuration table documents and no other, --version works, a bad
// flag or value exits with status 2 naming the variable, a flag wins over its variable, and an
// empty variable counts as unset.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { binary, freePort, startServer } from "./lib/server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Runs a binary to completion (10 s at most) with extra environment variables. */
function run(name, args, env = {}) {
  const res = spawnSync(binary(name), args, { env: { ...process.env, ...env }, encoding: "utf8", timeout: 10_000 });
  return { status: res.status, out: res.stdout + res.stderr };
}

/** Variables named in the first column of the README's Configuration table. */
function readmeVariables() {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = readme.split("\n## Configuration\n")[1].split("\n## ")[0];
  const vars = new Set();
  for (const line of section.split("\n").filter((l) => l.startsWith("| `"))) {
    const first = line.split("|")[1];
    for (const [, v] of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) vars.add(v);
  }
  return vars;
}

const helpVariables = (text) => new Set([...text.matchAll(/\[env: ([A-Z0-9_]+)/g)].map((m) => m[1]));

test("--help of both binaries lists exactly the README's settings, each with its flag", () => {
  const server = run("sio-server", ["--help"]);
  const webhook = run("sio-webhook", ["--help"]);
  assert.equal(server.status, 0, server.out);
  assert.equal(webhook.status, 0, webhook.out);
  const listed = new Set([...helpVariables(server.out), ...helpVariables(webhook.out)]);
  const documented = readmeVariables();
  documented.delete("RUST_LOG"); // read by the log filter, not a setting of the table
  assert.ok(documented.size >= 38, `README table parsed: ${[...documented]}`);
  assert.deepEqual([...listed].sort(), [...documented].sort());
  for (const v of helpVariables(server.out)) {
    assert.ok(server.out.includes(`--${v.toLowerCase().replaceAll("_", "-")} <${v}>`), `flag of ${v}`);
  }
  assert.match(server.out, /\[default: 25000\]/);
  assert.match(server.out, /conformance/);
  assert.match(server.out, /client-suite/);
  assert.ok(!helpVariables(webhook.out).has("PING_INTERVAL"), "server-only settings stay out of sio-webhook --help");
});

test("--help never shows a secret's value", () => {
  const secret = "s3cret-".repeat(6);
  const { status, out } = run("sio-server", ["--help"], { WEBHOOK_SECRET: secret, REDIS_PASSWORD: secret, REDIS_URL: `redis://:${secret}@h:1` });
  assert.equal(status, 0, out);
  assert.ok(!out.includes(secret), out);
});

test("--version prints the version and exits 0", () => {
  for (const name of ["sio-server", "sio-webhook"]) {
    const { status, out } = run(name, ["--version"]);
    assert.equal(status, 0, out);
    assert.match(out, new RegExp(`^${name} \\d+\\.\\d+\\.\\d+\\n$`));
  }
});

test("an unknown flag, a bad mode or a bad value exits 2 naming what is wrong", () => {
  const cases = [
    ["sio-server", ["--no-such-setting", "1"], {}, /--no-such-setting/],
    ["sio-server", ["serve"], {}, /invalid value 'serve'/],
    ["sio-server", ["--ping-interval", "0"], {}, /PING_INTERVAL="0": must be greater than 0/],
    ["sio-server", [], { PORT: "http" }, /PORT="http": expected a port number/],
    ["sio-server", ["--port", "http"], {}, /PORT="http": expected a port number/],
    ["sio-webhook", [], { WEBHOOK_MODE: "kafka" }, /WEBHOOK_MODE="kafka"/],
    ["sio-webhook", ["--webhook-timeout-ms", "x"], {}, /WEBHOOK_TIMEOUT_MS="x"/],
  ];
  for (const [name, args, env, expected] of cases) {
    // sio-server must not try the webhook's default port; sio-webhook refuses WEBHOOK_PORT=off.
    const { status, out } = run(name, args, { ...(name === "sio-server" ? { WEBHOOK_PORT: "off" } : {}), ...env });
    assert.equal(status, 2, `${name} ${args.join(" ")}: ${out}`);
    assert.match(out, expected);
  }
});

test("a flag wins over its variable; an empty variable is unset", { timeout: 30_000 }, async () => {
  const [flagPort, envPort] = [await freePort(), await freePort()];
  const server = await startServer({ port: flagPort, args: ["--port", String(flagPort)], env: { PORT: String(envPort), PING_INTERVAL: "" } });
  try {
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    const open = JSON.parse((await res.text()).slice(1));
    assert.equal(open.pingInterval, 25000, "PING_INTERVAL= takes the default");
    await assert.rejects(fetch(`http://127.0.0.1:${envPort}/health`), "nothing listens on the variable's port");
  } finally {
    await server.stop();
  }
});
