// The Socket.IO Admin UI namespace (@socket.io/admin-ui 0.5.1 protocol, issue #18), driven from
// outside with the stock socket.io-client as the UI does: auth (basic + sessions), config,
// server_stats, all_sockets, the development-mode events and the commands, on one instance and on
// three instances sharing a real Redis; readonly/production/auth-off settings; the embedded UI;
// and a mixed cluster with a Node server instrumented by the real @socket.io/admin-ui.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { io } from "socket.io-client";
import { Server as NodeServer } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { instrument } from "@socket.io/admin-ui";
import { createClient } from "redis";
import { startServer, binary, sleep, once, waitFor, fresh, freePort } from "./lib/server.mjs";
import { startRedis, redisCli } from "./lib/redis.mjs";

const PASSWORD = "correct horse battery staple";
/** How long to watch for a command's effect that must not happen. */
const QUIET_MS = 500;
const FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"];

/** `sio-server admin-hash`: the bcrypt hash of `password`. */
function adminHash(password) {
  const r = spawnSync(binary("sio-server"), ["admin-hash"], { input: `${password}\n`, encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, /^\$2[aby]\$10\$.{53}$/);
  return hash;
}

/** Clients that record every event they get (`s.events`), all closed by `close()`. */
function pool() {
  const clients = [];
  const open = (url, nsp, opts = {}) => {
    const s = io(`${url}${nsp}`, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
    clients.push(s);
    s.events = [];
    s.onAny((event, ...args) => s.events.push([event, ...args]));
    return s;
  };
  return {
    open,
    /** A chat client on `/`, connected. */
    async chat(url, opts) {
      const s = open(url, "/", opts);
      await once(s, "connect");
      return s;
    },
    /** An admin client; resolves once connected (and its config arrived). */
    async admin(url, auth = { username: "admin", password: PASSWORD }, nsp = "/admin") {
      const s = open(url, nsp, { auth });
      await once(s, "connect", 10_000);
      await waitFor(() => s.events.some(([e]) => e === "config"), 5000, "config");
      return s;
    },
    close() {
      for (const c of clients) c.disconnect();
    },
  };
}

/** The connect_error message of an admin connection attempt with `auth`. */
async function refusal(p, url, auth) {
  const s = p.open(url, "/admin", { auth });
  const [err] = await once(s, "connect_error", 10_000);
  return err.message;
}

const named = (s, name) => s.events.filter(([e]) => e === name).map(([, ...args]) => args);
const lastStatsByServer = (s) => {
  const by = new Map();
  for (const [stats] of named(s, "server_stats")) by.set(stats.serverId, stats);
  return by;
};
const join = (s, room) => s.emitWithAck("join", room);
/** Node's `clientId` for one of our sids: 12 characters of its random part (after `INSTANCE_ID.`). */
const clientIdOf = (sid) => sid.slice(sid.lastIndexOf(".") + 1).slice(0, 12);

describe("admin namespace on one instance", () => {
  let server;
  let hash;
  const p = pool();

  before(async () => {
    hash = adminHash(PASSWORD);
    server = await startServer({ env: { ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: hash, INSTANCE_ID: "solo" } });
  });
  after(async () => {
    p.close();
    await server?.stop();
  });

  test("a guesser from 127.0.0.2 is slowed down; the operator on 127.0.0.1 still logs in", async () => {
    const guess = (i) =>
      new Promise((resolve) => {
        const s = p.open(server.url, "/admin", { auth: { username: "admin", password: `guess-${i}` }, localAddress: "127.0.0.2" });
        s.once("connect_error", (e) => resolve(e.message));
        s.once("connect", () => resolve("connected"));
      });
    const answers = [];
    const flood = (async () => {
      for (let i = 0; i < 8; i++) answers.push(await guess(i));
    })();
    await waitFor(() => answers.length >= 2, 20_000, "the flood under way");
    const admin = await p.admin(server.url);
    assert.ok(admin.connected, "the operator is not locked out");
    await flood;
    assert.ok(!answers.includes("connected"), answers.join());
    assert.deepEqual(answers.slice(0, 6), Array(6).fill("invalid credentials"), "5 free failures, then the 6th check");
    assert.deepEqual(answers.slice(6), Array(2).fill("too many failed logins, retry later"), answers.join());
    assert.ok((await p.admin(server.url)).connected, "and still after it");
  });

  test("missing and bad credentials are refused", async () => {
    assert.equal(await refusal(p, server.url, {}), "invalid credentials");
    assert.equal(await refusal(p, server.url, { username: "admin", password: "wrong" }), "invalid credentials");
    assert.equal(await refusal(p, server.url, { username: "root", password: PASSWORD }), "invalid credentials");
    assert.equal(await refusal(p, server.url, { username: "admin", password: 12345 }), "invalid credentials");
    assert.equal(await refusal(p, server.url, { sessionId: "not-a-session" }), "invalid credentials");
    assert.equal(await refusal(p, server.url, { username: "admin", password: "x".repeat(100_000) }), "invalid credentials");
  });

  test("a login gets a session, the config, the server's stats and every socket", async () => {
    const chat = await p.chat(server.url);
    const room = fresh("room");
    assert.equal((await join(chat, room)).ok, true);
    const admin = await p.admin(server.url);
    const [[session]] = named(admin, "session");
    assert.match(session, /^\S{10,}$/);
    const [[config]] = named(admin, "config");
    assert.deepEqual(config.supportedFeatures, FEATURES);
    const sockets = await waitFor(() => named(admin, "all_sockets")[0]?.[0], 5000, "all_sockets");
    const mine = sockets.find((s) => s.id === chat.id);
    assert.ok(mine, JSON.stringify(sockets));
    assert.equal(mine.nsp, "/");
    assert.equal(mine.transport, "websocket");
    assert.equal(mine.clientId, clientIdOf(chat.io.engine.id));
    assert.ok(!mine.clientId.startsWith("solo"), "not the instance tag");
    const other = await p.chat(server.url);
    const theirs = await waitFor(() => named(admin, "socket_connected").find(([s]) => s.id === other.id)?.[0], 5000, "socket_connected");
    assert.notEqual(theirs.clientId, mine.clientId, "two connections, two client ids");
    assert.equal(theirs.clientId, clientIdOf(other.io.engine.id));
    assert.deepEqual(mine.rooms.sort(), [chat.id, room].sort());
    assert.deepEqual(mine.data, {});
    assert.equal(mine.handshake.address, "127.0.0.1");
    assert.equal(mine.handshake.auth, undefined, "auth is not shown");
    assert.ok(sockets.some((s) => s.id === admin.id && s.nsp === "/admin"), "the admin's own socket is listed, as in Node");
    const stats = await waitFor(() => lastStatsByServer(admin).get("solo"), 5000, "server_stats");
    assert.equal(stats.pid > 0, true);
    assert.equal(typeof stats.hostname, "string");
    assert.equal(typeof stats.uptime, "number");
    assert.equal(stats.clientsCount >= 2, true);
    assert.equal(stats.pollingClientsCount, 0);
    assert.ok(Array.isArray(stats.aggregatedEvents));
    assert.ok(stats.namespaces.some((n) => n.name === "/" && n.socketsCount >= 1), JSON.stringify(stats.namespaces));
    assert.ok(stats.namespaces.some((n) => n.name === "/admin" && n.socketsCount >= 1));
    // Stats keep coming every 2 s, with the traffic since the last one counted.
    await chat.emitWithAck("echo", "counted");
    await waitFor(
      () => named(admin, "server_stats").some(([s]) => s.aggregatedEvents.some((e) => e.type === "packetsIn" && e.count > 0)),
      8000,
      "aggregated packetsIn",
    );
    // The session logs in again without the password (what the UI does on reconnect).
    const again = await p.admin(server.url, { sessionId: session });
    assert.equal(named(again, "session").length, 0, "no new session for a session login");
  });

  test("live events: connect, join, events both ways, leave, disconnect", async () => {
    const admin = await p.admin(server.url);
    const chat = await p.chat(server.url);
    const connected = await waitFor(() => named(admin, "socket_connected").find(([s]) => s.id === chat.id), 5000, "socket_connected");
    assert.equal(connected[0].nsp, "/");
    assert.equal(typeof connected[1], "string", "a date");
    const room = fresh("live");
    await join(chat, room);
    await waitFor(() => named(admin, "room_joined").some(([nsp, r, id]) => nsp === "/" && r === room && id === chat.id), 5000, "room_joined");
    await waitFor(
      () => named(admin, "event_received").some(([nsp, id, args]) => nsp === "/" && id === chat.id && args[0] === "join" && args[1] === room),
      5000,
      "event_received",
    );
    await waitFor(
      () => named(admin, "event_sent").some(([nsp, id, args]) => nsp === "/" && id === chat.id && args[0] === "welcome"),
      5000,
      "event_sent welcome",
    );
    chat.emit("leave", room);
    await waitFor(() => named(admin, "room_left").some(([, r, id]) => r === room && id === chat.id), 5000, "room_left");
    const chatId = chat.id;
    chat.disconnect();
    const gone = await waitFor(() => named(admin, "socket_disconnected").find(([, id]) => id === chatId), 5000, "socket_disconnected");
    assert.equal(gone[0], "/");
    assert.equal(gone[2], "client namespace disconnect");
  });

  test("commands: emit, join, leave, disconnect, with a socket or room filter", async () => {
    const admin = await p.admin(server.url);
    const a = await p.chat(server.url);
    const b = await p.chat(server.url);
    const room = fresh("cmd");
    admin.emit("join", "/", room, a.id);
    await waitFor(() => named(admin, "room_joined").some(([, r, id]) => r === room && id === a.id), 5000, "join by id");
    admin.emit("emit", "/", room, "notice", 42, { x: "y" });
    await waitFor(() => named(a, "notice").length === 1, 5000, "emit to a room");
    // With recovery on (the default) Node appends the packet's offset, a string, as the last argument.
    const [n, obj, offset] = named(a, "notice")[0];
    assert.deepEqual([n, obj], [42, { x: "y" }]);
    assert.equal(typeof offset, "string");
    admin.emit("emit", "/", b.id, "only-b");
    await waitFor(() => named(b, "only-b").length === 1, 5000, "emit to a socket");
    admin.emit("emit", "/", undefined, "everyone");
    await waitFor(() => named(a, "everyone").length === 1 && named(b, "everyone").length === 1, 5000, "emit to all");
    // join with a room filter: every member of `room` joins `room2`.
    const room2 = fresh("cmd2");
    admin.emit("join", "/", room2, room);
    await waitFor(() => named(admin, "room_joined").some(([, r, id]) => r === room2 && id === a.id), 5000, "join by room");
    admin.emit("leave", "/", room, a.id);
    await waitFor(() => named(admin, "room_left").some(([, r, id]) => r === room && id === a.id), 5000, "leave");
    admin.emit("emit", "/", room, "after-leave");
    // Malformed commands are dropped without harm.
    admin.emit("join", 5);
    admin.emit("_disconnect", "/", "yes", b.id);
    admin.emit("emit", "/nope", undefined, "x");
    admin.emit("emit", "/", undefined, "connect");
    await sleep(QUIET_MS);
    assert.equal(named(a, "after-leave").length, 0);
    assert.ok(b.connected && admin.connected);
    const bId = b.id;
    admin.emit("_disconnect", "/", false, bId);
    const [reason] = await once(b, "disconnect", 5000);
    assert.equal(reason, "io server disconnect");
    assert.ok(a.connected, "only the filtered socket");
    await waitFor(
      () => named(admin, "socket_disconnected").some(([, id, r]) => id === bId && r === "server namespace disconnect"),
      5000,
      () => JSON.stringify(named(admin, "socket_disconnected")),
    );
  });

  test("/stats does not count admin connections", async () => {
    await p.admin(server.url);
    const chat = await p.chat(server.url);
    const sessions = (await (await fetch(`${server.url}/health`)).json()).connections;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const engine = Number(metrics.match(/^sio_connections (\d+)/m)[1]);
    assert.ok(engine > sessions, `engine sessions ${engine} include the admin UIs, /health's ${sessions} do not`);
    const stats = await (await fetch(`${server.url}/stats`)).json();
    assert.equal(stats.totalConnections, sessions);
    chat.disconnect();
  });

  test("the UI is served at /admin/ with nothing from a CDN", async () => {
    const redirect = await fetch(`${server.url}/admin`, { redirect: "manual" });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get("location"), "/admin/");
    const index = await fetch(`${server.url}/admin/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(index.headers.get("cache-control"), "no-cache");
    const html = await index.text();
    assert.doesNotMatch(html, /https?:\/\//);
    const assets = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.length >= 5, html);
    for (const asset of assets) {
      const res = await fetch(`${server.url}/admin/${asset}`);
      assert.equal(res.status, 200, asset);
      const type = res.headers.get("content-type");
      if (asset.endsWith(".js")) assert.equal(type, "application/javascript; charset=utf-8");
      if (asset.endsWith(".css")) assert.equal(type, "text/css; charset=utf-8");
      await res.arrayBuffer();
    }
    const font = await fetch(`${server.url}/admin/mdi/fonts/materialdesignicons-webfont.woff2?v=7.4.47`);
    assert.equal(font.status, 200);
    assert.equal(font.headers.get("content-type"), "font/woff2");
    const etag = index.headers.get("etag");
    assert.equal((await fetch(`${server.url}/admin/`, { headers: { "if-none-match": etag } })).status, 304);
    const missing = await fetch(`${server.url}/admin/../../etc/passwd`);
    assert.equal(missing.status, 404);
  });
});

describe("admin settings", () => {
  const p = pool();
  const servers = [];
  after(async () => {
    p.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  test("off unless configured: /admin is an unknown namespace", async () => {
    const server = await startServer();
    servers.push(server);
    assert.equal(await refusal(p, server.url, { username: "admin", password: PASSWORD }), "Invalid namespace");
  });

  test("ADMIN_AUTH=off, ADMIN_MODE=production, ADMIN_READONLY, ADMIN_NAMESPACE", async () => {
    const server = await startServer({
      env: { ADMIN_AUTH: "off", ADMIN_MODE: "production", ADMIN_READONLY: "true", ADMIN_NAMESPACE: "/ops", RUST_LOG: "warn" },
    });
    servers.push(server);
    assert.match(server.logs(), /ADMIN_AUTH=off/, "a startup warning");
    const chat = await p.chat(server.url);
    const admin = await p.admin(server.url, {}, "/ops");
    assert.deepEqual(named(admin, "config")[0][0].supportedFeatures, ["AGGREGATED_EVENTS"]);
    await waitFor(() => named(admin, "server_stats").length > 0, 5000, "server_stats in production mode");
    admin.emit("_disconnect", "/", false, chat.id);
    admin.emit("emit", "/", undefined, "from-admin");
    await join(chat, fresh("quiet"));
    await sleep(QUIET_MS);
    assert.ok(chat.connected, "readonly drops commands");
    assert.equal(named(chat, "from-admin").length, 0);
    for (const e of ["all_sockets", "socket_connected", "room_joined", "event_received", "session"]) {
      assert.equal(named(admin, e).length, 0, `${e} is not sent in production mode`);
    }
  });

  test("bad settings stop the server with the variable named", async () => {
    for (const [env, variable] of [
      [{ ADMIN_USERNAME: "admin" }, "ADMIN_PASSWORD_HASH"],
      [{ ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: "plaintext" }, "ADMIN_PASSWORD_HASH"],
      [{ ADMIN_AUTH: "off", ADMIN_MODE: "debug" }, "ADMIN_MODE"],
    ]) {
      const r = spawnSync(binary("sio-server"), [], { env: { ...process.env, ...env, PORT: "0", WEBHOOK_PORT: "off" }, encoding: "utf8", timeout: 10_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`invalid ${variable}=`));
      assert.doesNotMatch(r.stderr, /plaintext/);
    }
  });
});

for (const adapter of ["classic", "sharded"]) describe(`admin across three instances on Redis (${adapter} adapter)`, () => {
  let redis;
  const servers = [];
  const p = pool();
  const ids = ["adm-a", "adm-b", "adm-c"];

  before(async () => {
    redis = await startRedis();
    const hash = adminHash(PASSWORD);
    for (const id of ids) {
      servers.push(
        await startServer({
          env: { REDIS_URL: redis.url, REDIS_ADAPTER: adapter, INSTANCE_ID: id, ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: hash },
        }),
      );
    }
  });
  after(async () => {
    p.close();
    await Promise.all(servers.map((s) => s.stop()));
    await redis?.stop();
  });

  test("one UI sees every server, socket, room and event, and commands reach every instance", async () => {
    const chats = await Promise.all(servers.map((s) => p.chat(s.url)));
    const rooms = chats.map(() => fresh("cluster"));
    await Promise.all(chats.map((c, i) => join(c, rooms[i])));
    const admin = await p.admin(servers[0].url);
    // server_stats from all three instances.
    await waitFor(() => ids.every((id) => lastStatsByServer(admin).has(id)), 10_000, () => [...lastStatsByServer(admin).keys()].join());
    for (const id of ids) {
      const stats = lastStatsByServer(admin).get(id);
      assert.ok(stats.namespaces.some((n) => n.name === "/" && n.socketsCount >= 1), id);
    }
    // all_sockets lists the chat sockets of every instance, with their rooms and client ids.
    const [[sockets]] = await waitFor(() => named(admin, "all_sockets").length && named(admin, "all_sockets"), 10_000, "all_sockets");
    chats.forEach((c, i) => {
      const s = sockets.find((x) => x.id === c.id);
      assert.ok(s, `socket of instance ${i} in all_sockets`);
      assert.ok(s.rooms.includes(rooms[i]));
      assert.equal(s.clientId, clientIdOf(c.io.engine.id));
      assert.equal(s.transport, "websocket");
    });
    // Live events from another instance.
    const late = await p.chat(servers[2].url);
    await waitFor(() => named(admin, "socket_connected").some(([s]) => s.id === late.id), 5000, "socket_connected from instance 3");
    const lateRoom = fresh("late");
    await join(late, lateRoom);
    await waitFor(() => named(admin, "room_joined").some(([, r, id]) => r === lateRoom && id === late.id), 5000, "room_joined from instance 3");
    await waitFor(() => named(admin, "event_received").some(([, id, args]) => id === late.id && args[0] === "join"), 5000, "event_received");
    // Commands across the cluster: join by socket id on instance 2, emit to that room, leave,
    // and disconnect a socket of instance 3.
    const shared = fresh("shared");
    admin.emit("join", "/", shared, chats[1].id);
    admin.emit("join", "/", shared, rooms[2]);
    await waitFor(
      () => named(admin, "room_joined").filter(([, r]) => r === shared).length === 2,
      5000,
      "remote joins reported",
    );
    admin.emit("emit", "/", shared, "cluster-notice", "hi");
    await waitFor(() => named(chats[1], "cluster-notice").length === 1 && named(chats[2], "cluster-notice").length === 1, 5000, "emit across instances");
    admin.emit("leave", "/", shared, chats[1].id);
    await waitFor(() => named(admin, "room_left").some(([, r, id]) => r === shared && id === chats[1].id), 5000, "remote leave");
    admin.emit("_disconnect", "/", false, late.id);
    const [reason] = await once(late, "disconnect", 5000);
    assert.equal(reason, "io server disconnect");
    await sleep(QUIET_MS);
    assert.equal(named(chats[0], "cluster-notice").length, 0);
    assert.ok(chats.every((c) => c.connected));
  });

  test("sessions live in Redis and work on every instance", async () => {
    const first = await p.admin(servers[0].url);
    const [[session]] = named(first, "session");
    const exists = await redisCli(["-p", String(redis.port), "EXISTS", `socket.io-admin#${session}`]);
    assert.equal(exists, "1");
    const ttl = Number(await redisCli(["-p", String(redis.port), "TTL", `socket.io-admin#${session}`]));
    assert.ok(ttl > 86_000 && ttl <= 86_400, `ttl ${ttl}`);
    const other = await p.admin(servers[2].url, { sessionId: session });
    assert.ok(other.connected);
    assert.equal(await refusal(p, servers[1].url, { sessionId: `${session}x` }), "invalid credentials");
  });

  test("/stats and the presence hashes leave the admin UIs out", async () => {
    // Open now: the three chat clients of the first test, and several admin UIs.
    await p.admin(servers[1].url);
    await p.admin(servers[1].url);
    const chat = await p.chat(servers[1].url);
    let last;
    await waitFor(
      async () => (last = await (await fetch(`${servers[1].url}/stats`)).json()).totalConnections === 4,
      10_000,
      () => `four chat clients, no admin: ${JSON.stringify(last)}`,
    );
    await sleep(2500);
    const counts = await redisCli(["-p", String(redis.port), "HGET", "socket:clients:counts", "adm-b"]);
    const health = (await (await fetch(`${servers[1].url}/health`)).json()).connections;
    assert.equal(Number(counts), health);
    chat.disconnect();
  });
});

describe("interop: a Node server instrumented by @socket.io/admin-ui on the same Redis", () => {
  let redis, rust, node, pubClient, subClient;
  const p = pool();

  before(async () => {
    redis = await startRedis();
    pubClient = createClient({ url: redis.url });
    subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    const http = createHttpServer();
    const port = await freePort();
    await new Promise((resolve, reject) => {
      http.once("error", reject);
      http.listen(port, "127.0.0.1", resolve);
    });
    node = new NodeServer(http, { adapter: createAdapter(pubClient, subClient) });
    node.url = `http://127.0.0.1:${port}`;
    instrument(node, { auth: false, serverId: "node-1" });
    node.on("connection", (s) => s.join("node-room"));
    rust = await startServer({
      env: { REDIS_URL: redis.url, INSTANCE_ID: "rust-1", ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: adminHash(PASSWORD) },
    });
  });
  after(async () => {
    p.close();
    await new Promise((resolve) => (node ? node.close(resolve) : resolve()));
    await rust?.stop();
    await Promise.allSettled([pubClient?.quit(), subClient?.quit()]);
    await redis?.stop();
  });

  test("a UI on either server sees both servers, both sockets and both servers' live events", async () => {
    const onNode = await p.chat(node.url);
    const onRust = await p.chat(rust.url);
    for (const admin of [await p.admin(rust.url), await p.admin(node.url, {})]) {
      await waitFor(() => ["node-1", "rust-1"].every((id) => lastStatsByServer(admin).has(id)), 10_000, "stats of both servers");
      const [[sockets]] = await waitFor(() => named(admin, "all_sockets").length && named(admin, "all_sockets"), 10_000, "all_sockets");
      const n = sockets.find((s) => s.id === onNode.id);
      const r = sockets.find((s) => s.id === onRust.id);
      assert.ok(n && r, JSON.stringify(sockets.map((s) => s.id)));
      assert.ok(n.rooms.includes("node-room"));
      assert.equal(n.clientId, onNode.io.engine.id.slice(0, 12));
      assert.equal(r.clientId, clientIdOf(onRust.io.engine.id));
      assert.equal(r.transport, "websocket");
      const tag = fresh("ping");
      onNode.emit(tag);
      onRust.emit(tag);
      await waitFor(
        () => [onNode.id, onRust.id].every((id) => named(admin, "event_received").some(([, sid, args]) => sid === id && args[0] === tag)),
        5000,
        "live events from both servers",
      );
    }
  });
});
