// LOG_FORMAT=json: every line is one JSON object carrying the instance id; payloads are not logged
// at info level.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { spawn, spawnSync } from "node:child_process";
import { startServer, once, binary, waitFor, freePort } from "./lib/server.mjs";
import { startRedis } from "./lib/redis.mjs";

test("json logs carry instanceId on every line and no payload contents", { timeout: 20000 }, async () => {
  const server = await startServer({ env: { LOG_FORMAT: "json", RUST_LOG: "info", INSTANCE_ID: "log-test-7" } });
  const c = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await once(c, "connect");
    await c.emitWithAck("join", "r");
    await c.emitWithAck("message", { roomId: "r", message: "top-secret-payload" });
    await c.emitWithAck("message", { roomId: "r", message: "" });
  } finally {
    c.disconnect();
    await server.stop();
  }
  const lines = server.logs().split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length >= 3, server.logs());
  for (const line of lines) {
    const entry = JSON.parse(line);
    assert.equal(entry.instanceId, "log-test-7");
    assert.ok(entry.level && entry.timestamp, line);
  }
  assert.ok(!server.logs().includes("top-secret-payload"), "payloads are not logged at info level");
});

test("Redis passwords never reach the logs (URL, REDIS_PASSWORD, config errors, outages)", { timeout: 60000 }, async () => {
  const secret = `hunter2-${Date.now().toString(36)}`;
  const redis = await startRedis(["--requirepass", secret]);
  const servers = [];
  const outputs = [];
  try {
    // A bad REDIS_URL is refused at startup, naming the variable, without echoing the password.
    const bad = spawnSync(binary("sio-server"), [], {
      env: { ...process.env, REDIS_URL: `http://:${secret}@127.0.0.1:1`, WEBHOOK_PORT: "off" },
      encoding: "utf8",
      timeout: 10000,
    });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /REDIS_URL/);
    outputs.push(bad.stdout + bad.stderr);

    // A wrong password: the instance retries, logging the target, until stopped.
    const wrong = `wrongpass-${Date.now().toString(36)}`;
    const port = await freePort();
    const child = spawn(binary("sio-server"), [], {
      env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), WEBHOOK_PORT: "off", LOG_FORMAT: "json", RUST_LOG: "debug", REDIS_URL: `redis://:${wrong}@127.0.0.1:${redis.port}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    try {
      await waitFor(() => out.includes("cannot connect to redis"), 15000, () => `no connection error logged: ${out}`);
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    assert.ok(!out.includes(wrong), `the wrong password is logged:\n${out}`);
    assert.match(out, /\*\*\*@127\.0\.0\.1/, "the target is logged, redacted");
    outputs.push(out);

    // The right password, as a URL and as REDIS_PASSWORD; then Redis goes away and comes back.
    const env = { LOG_FORMAT: "json", RUST_LOG: "debug", INSTANCE_ID: "log-redis" };
    servers.push(await startServer({ env: { ...env, REDIS_URL: `redis://:${secret}@127.0.0.1:${redis.port}` } }));
    servers.push(await startServer({ env: { ...env, REDIS_HOST: "127.0.0.1", REDIS_PORT: String(redis.port), REDIS_PASSWORD: secret } }));
    for (const s of servers) await waitFor(() => s.logs().includes("connected to redis"), 10000, () => s.logs());
    await redis.kill();
    for (const s of servers) await waitFor(() => s.logs().includes("redis unreachable"), 15000, () => s.logs());
    await redis.start();
    for (const s of servers) await waitFor(() => s.logs().includes("redis reachable again"), 15000, () => s.logs());
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
  }
  for (const s of servers) outputs.push(s.logs());
  for (const out of outputs) assert.ok(!out.includes(secret), `the Redis password is logged:\n${out}`);
  assert.ok(servers.every((s) => s.logs().includes("***@127.0.0.1")), "the target is logged, redacted");
});
