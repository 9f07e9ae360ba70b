// Engine.IO v4 protocol behaviour of `sio-server conformance` on `/engine.io/` (a bare echo
// server: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1000000, CORS any origin),
// driven with raw HTTP requests (fetch) and raw WebSockets (ws).
//
// Sessions that do not answer pings are closed by the server about 500 ms after they open, so
// every such test finishes well inside that window.
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, sleep } from "./lib/server.mjs";
import { RawSocket, terminateAll, request } from "./lib/raw.mjs";

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const MAX_PAYLOAD = 1_000_000;
const OPTS = { timeout: 5000 };

let server;
let HTTP_BASE; // http://127.0.0.1:PORT/engine.io/
let WS_BASE; // ws://127.0.0.1:PORT/engine.io/

// ---------------------------------------------------------------------------------------------
// helpers


const pollUrl = (sid, extra = "") => `${HTTP_BASE}?EIO=4&transport=polling&sid=${sid}${extra}`;
const wsUrl = (sid) => `${WS_BASE}?EIO=4&transport=websocket${sid ? `&sid=${sid}` : ""}`;
const poll = (sid, extra) => request(pollUrl(sid, extra));
const post = (sid, body) => request(pollUrl(sid), { method: "POST", body });

/** Opens a long-polling session and returns its sid. */
async function pollingSession() {
  const res = await request(`${HTTP_BASE}?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  return JSON.parse(res.body.substring(1)).sid;
}

/** Opens a WebSocket session and waits for its open packet. */
async function wsSession(opts) {
  const socket = new RawSocket(wsUrl(), opts);
  const open = await socket.next();
  assert.equal(typeof open, "string");
  assert.ok(open.startsWith("0"), `expected an open packet, got ${JSON.stringify(open)}`);
  return socket;
}

function assertOpenPacket(body, upgrades) {
  assert.equal(typeof body, "string");
  assert.ok(body.startsWith("0"), `expected an open packet, got ${JSON.stringify(body)}`);
  const open = JSON.parse(body.substring(1));
  assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
  assert.equal(typeof open.sid, "string");
  assert.ok(open.sid.length > 0);
  assert.deepEqual(open.upgrades, upgrades);
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.equal(open.maxPayload, MAX_PAYLOAD);
  return open;
}

async function assertHttpError(method, query, code, message) {
  const res = await request(`${HTTP_BASE}${query}`, { method });
  assert.equal(res.status, 400, `${method} ${query}: status`);
  assert.deepEqual(JSON.parse(res.body), { code, message }, `${method} ${query}: body`);
}

/** A WebSocket that must be refused or closed without ever opening an Engine.IO session. */
async function assertWsRefused(query) {
  const socket = new RawSocket(`${WS_BASE}${query}`);
  await socket.waitClose(1500);
  assert.equal(
    socket.received.filter((m) => typeof m === "string" && m.startsWith("0")).length,
    0,
    `${query}: no open packet may be sent`,
  );
}

before(async () => {
  server = await startServer({ args: ["conformance"] });
  HTTP_BASE = `${server.url}/engine.io/`;
  WS_BASE = HTTP_BASE.replace(/^http/, "ws");
});

afterEach(() => terminateAll());

after(async () => {
  terminateAll();
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------

describe("handshake over HTTP long-polling", () => {
  test("opens a session with the expected open packet", OPTS, async () => {
    const res = await request(`${HTTP_BASE}?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    assertOpenPacket(res.body, ["websocket"]);
  });

  test("rejects a missing or invalid EIO parameter with 400 code 5", OPTS, async () => {
    await assertHttpError("GET", "?transport=polling", 5, "Unsupported protocol version");
    await assertHttpError("GET", "?EIO=abc&transport=polling", 5, "Unsupported protocol version");
  });

  test("rejects a missing or unknown transport with 400 code 0", OPTS, async () => {
    await assertHttpError("GET", "?EIO=4", 0, "Transport unknown");
    await assertHttpError("GET", "?EIO=4&transport=abc", 0, "Transport unknown");
  });

  test("rejects a handshake with a method other than GET with 400 code 2", OPTS, async () => {
    await assertHttpError("POST", "?EIO=4&transport=polling", 2, "Bad handshake method");
    await assertHttpError("PUT", "?EIO=4&transport=polling", 2, "Bad handshake method");
  });

  test("rejects an unknown sid with 400 code 1", OPTS, async () => {
    await assertHttpError("GET", "?EIO=4&transport=polling&sid=doesnotexist", 1, "Session ID unknown");
  });
});

describe("handshake over WebSocket", () => {
  test("opens a session whose open packet offers no upgrades", OPTS, async () => {
    const socket = new RawSocket(wsUrl());
    const open = await socket.next();
    assertOpenPacket(open, []);
    await socket.close();
  });

  test("refuses a missing or invalid EIO parameter", OPTS, async () => {
    await assertWsRefused("?transport=websocket");
    await assertWsRefused("?EIO=abc&transport=websocket");
  });

  test("refuses a missing or unknown transport", OPTS, async () => {
    await assertWsRefused("?EIO=4");
    await assertWsRefused("?EIO=4&transport=abc");
  });
});

describe("messages over HTTP long-polling", () => {
  test("echoes one plain-text packet", OPTS, async () => {
    const sid = await pollingSession();
    const sent = await post(sid, "4hello");
    assert.equal(sent.status, 200);
    assert.equal(sent.body, "ok");
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "4hello");
  });

  test("batches the echoes of several plain-text packets into one response", OPTS, async () => {
    const sid = await pollingSession();
    const sent = await post(sid, "4test1\x1e4test2\x1e4test3");
    assert.equal(sent.status, 200);
    assert.equal(sent.body, "ok");
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "4test1\x1e4test2\x1e4test3");
  });

  test("echoes plain-text and base64 binary packets", OPTS, async () => {
    const sid = await pollingSession();
    const sent = await post(sid, "4hello\x1ebAQIDBA==");
    assert.equal(sent.status, 200);
    assert.equal(sent.body, "ok");
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "4hello\x1ebAQIDBA==");
  });

  test("closes the session upon an invalid packet format", OPTS, async () => {
    const sid = await pollingSession();
    try {
      const res = await post(sid, "abc");
      assert.equal(res.status, 400);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      // the server may also drop the connection instead of answering
    }
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("closes the session upon duplicate poll requests", OPTS, async () => {
    const sid = await pollingSession();
    const [first, second] = await Promise.all([poll(sid), sleep(5).then(() => poll(sid, "&t=burst"))]);
    assert.equal(first.status, 200);
    assert.equal(first.body, "1");
    assert.ok([400, 500].includes(second.status), `second poll status ${second.status}`);
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("closes the session upon a cancelled polling request", OPTS, async () => {
    const sid = await pollingSession();
    const controller = new AbortController();
    const pending = fetch(pollUrl(sid), { signal: controller.signal }).then((r) => r.text());
    await sleep(5);
    controller.abort();
    await assert.rejects(pending);
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("rejects a POST body larger than maxPayload with 413", OPTS, async () => {
    const sid = await pollingSession();
    const res = await post(sid, "4" + "a".repeat(MAX_PAYLOAD));
    assert.equal(res.status, 413);
  });

  test("answers a CORS preflight with 204 and allow-origin *", OPTS, async () => {
    const res = await request(`${HTTP_BASE}?EIO=4&transport=polling`, {
      method: "OPTIONS",
      headers: {
        Origin: "http://example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.body, "");
  });

  test("uses text/plain for GET responses and answers POST with exactly ok", OPTS, async () => {
    const handshake = await request(`${HTTP_BASE}?EIO=4&transport=polling`, {
      headers: { Origin: "http://example.com" },
    });
    assert.equal(handshake.status, 200);
    assert.equal(handshake.headers.get("content-type"), "text/plain; charset=UTF-8");
    assert.equal(handshake.headers.get("access-control-allow-origin"), "*");
    const sid = JSON.parse(handshake.body.substring(1)).sid;
    const sent = await post(sid, "4x");
    assert.equal(sent.status, 200);
    assert.equal(sent.body, "ok");
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "text/plain; charset=UTF-8");
    assert.equal(got.body, "4x");
  });
});

describe("messages over WebSocket", () => {
  test("echoes a plain-text packet", OPTS, async () => {
    const socket = await wsSession();
    socket.send("4hello");
    assert.equal(await socket.next(), "4hello");
    await socket.close();
  });

  test("echoes a binary packet as a raw binary frame", OPTS, async () => {
    const socket = await wsSession();
    socket.send(Uint8Array.from([1, 2, 3, 4]));
    assert.deepEqual(await socket.next(), Uint8Array.from([1, 2, 3, 4]));
    await socket.close();
  });

  test("closes the session upon an invalid packet format", OPTS, async () => {
    // pings are answered, so only the invalid packet can close the connection quickly
    const socket = await wsSession({ autoPong: true });
    const sentAt = Date.now();
    socket.send("abc");
    const { at } = await socket.waitClose(1000);
    assert.ok(at - sentAt < 250, `closed ${at - sentAt} ms after the invalid packet`);
  });
});

describe("heartbeat", () => {
  test("polling: sends ping packets and accepts pong packets", OPTS, async () => {
    const sid = await pollingSession();
    for (let i = 0; i < 3; i++) {
      const ping = await poll(sid);
      assert.equal(ping.status, 200);
      assert.equal(ping.body, "2");
      const pong = await post(sid, "3");
      assert.equal(pong.status, 200);
    }
  });

  test("polling: closes the session upon ping timeout", OPTS, async () => {
    const sid = await pollingSession();
    await sleep(PING_INTERVAL + PING_TIMEOUT);
    const res = await poll(sid);
    assert.equal(res.status, 400);
  });

  test("websocket: sends ping packets and accepts pong packets", OPTS, async () => {
    const socket = await wsSession();
    for (let i = 0; i < 3; i++) {
      assert.equal(await socket.next(), "2");
      socket.send("3");
    }
    assert.ok(socket.isOpen);
    await socket.close();
  });

  test("websocket: closes the session upon ping timeout", OPTS, async () => {
    const socket = await wsSession();
    assert.equal(await socket.next(), "2");
    const { at } = await socket.waitClose(1500);
    const elapsed = at - socket.openedAt;
    assert.ok(elapsed >= PING_INTERVAL + PING_TIMEOUT - 100, `closed after ${elapsed} ms`);
  });
});

describe("close", () => {
  test("polling: a close packet ends the pending poll with a noop and closes the session", OPTS, async () => {
    const sid = await pollingSession();
    const pending = poll(sid);
    await sleep(20); // let the GET be parked before the close packet arrives
    const [got, sent] = await Promise.all([pending, post(sid, "1")]);
    assert.equal(got.status, 200);
    assert.equal(got.body, "6");
    assert.equal(sent.status, 200);
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("websocket: a close packet closes the session", OPTS, async () => {
    const socket = await wsSession();
    socket.send("1");
    await socket.waitClose(1500);
  });
});

describe("upgrade", () => {
  test("upgrades from HTTP long-polling to WebSocket", OPTS, async () => {
    const sid = await pollingSession();
    const socket = new RawSocket(wsUrl(sid));
    await socket.opened;
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    const pending = await poll(sid);
    assert.equal(pending.status, 200);
    assert.equal(pending.body, "6");
    socket.send("5");
    socket.send("4hello");
    assert.equal(await socket.next(), "4hello");
    await socket.close();
  });

  test("ignores HTTP requests with the same sid after the upgrade", OPTS, async () => {
    const sid = await pollingSession();
    const socket = new RawSocket(wsUrl(sid), { autoPong: true });
    await socket.opened;
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    socket.send("5");
    socket.send("4hello");
    // the echo proves the upgrade packet has been processed
    assert.equal(await socket.next(), "4hello");
    const res = await poll(sid);
    assert.equal(res.status, 400);
    assert.deepEqual(JSON.parse(res.body), { code: 3, message: "Bad request" });
    socket.send("4world");
    assert.equal(await socket.next(), "4world");
    await socket.close();
  });

  test("ignores a WebSocket connection with the same sid after the upgrade", OPTS, async () => {
    const sid = await pollingSession();
    const socket = new RawSocket(wsUrl(sid), { autoPong: true });
    await socket.opened;
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    socket.send("5");
    const second = new RawSocket(wsUrl(sid));
    await second.waitClose(1000);
    assert.deepEqual(second.received, []);
    socket.send("4hello");
    assert.equal(await socket.next(), "4hello");
    await socket.close();
  });
});
