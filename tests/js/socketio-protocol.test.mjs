// Socket.IO v5 protocol behaviour of `sio-server conformance` on `/socket.io/` (the v5 test
// server: pingInterval 300 ms, pingTimeout 200 ms, connectTimeout 1000 ms; `/` and `/custom`
// namespaces; `auth` emitted on connection; `message` → `message-back`; `message-with-ack` →
// ack), driven with raw WebSockets (ws) and raw long-polling requests (fetch).
//
// Unless a test answers pings (autoPong), the server closes the session about 500 ms after it
// opens, so such tests finish well inside that window.
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, sleep } from "./lib/server.mjs";
import { RawSocket, terminateAll, request } from "./lib/raw.mjs";

const CONNECT_TIMEOUT = 1000;
const OPTS = { timeout: 5000 };

let server;
let HTTP_BASE; // http://127.0.0.1:PORT/socket.io/
let WS_BASE; // ws://127.0.0.1:PORT/socket.io/

// ---------------------------------------------------------------------------------------------
// helpers


const pollUrl = (sid) => `${HTTP_BASE}?EIO=4&transport=polling&sid=${sid}`;
const poll = (sid) => request(pollUrl(sid));
const post = (sid, body) => request(pollUrl(sid), { method: "POST", body });

/** Opens an Engine.IO long-polling session and returns its sid. */
async function pollingSession() {
  const res = await request(`${HTTP_BASE}?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  assert.ok(res.body.startsWith("0"));
  return JSON.parse(res.body.substring(1)).sid;
}

/** Opens an Engine.IO WebSocket session (no Socket.IO namespace yet). */
async function engineSocket(opts) {
  const socket = new RawSocket(`${WS_BASE}?EIO=4&transport=websocket`, opts);
  const open = await socket.next();
  assert.equal(typeof open, "string");
  assert.ok(open.startsWith("0"), `expected an Engine.IO open packet, got ${JSON.stringify(open)}`);
  return socket;
}

/** Asserts a CONNECT reply (`40<nsp,>{"sid":"…"}`) and returns the sid. */
function assertConnectReply(msg, prefix) {
  assert.equal(typeof msg, "string");
  assert.ok(msg.startsWith(prefix), `expected ${prefix}…, got ${JSON.stringify(msg)}`);
  const data = JSON.parse(msg.substring(prefix.length));
  assert.deepEqual(Object.keys(data), ["sid"]);
  assert.equal(typeof data.sid, "string");
  assert.ok(data.sid.length > 0);
  return data.sid;
}

/** An Engine.IO WebSocket session connected to the main namespace (CONNECT reply + auth read). */
async function mainNamespaceSocket(opts) {
  const socket = await engineSocket(opts);
  socket.send("40");
  assertConnectReply(await socket.next(), "40");
  assert.equal(await socket.next(), '42["auth",{}]');
  return socket;
}

/** Sends an invalid packet on a socket whose pings are answered; it must be closed promptly. */
async function assertClosedPromptly(socket, packet) {
  const sentAt = Date.now();
  socket.send(packet);
  const { at } = await socket.waitClose(1500);
  assert.ok(at - sentAt < 500, `closed ${at - sentAt} ms after ${JSON.stringify(packet)}`);
}

before(async () => {
  server = await startServer({ args: ["conformance"] });
  HTTP_BASE = `${server.url}/socket.io/`;
  WS_BASE = HTTP_BASE.replace(/^http/, "ws");
});

afterEach(() => terminateAll());

after(async () => {
  terminateAll();
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------

describe("connect", () => {
  test("connects to the main namespace", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    socket.send("40");
    assertConnectReply(await socket.next(), "40");
    assert.equal(await socket.next(), '42["auth",{}]');
    await socket.close();
  });

  test("connects to the main namespace with an auth payload", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    socket.send('40{"token":"123"}');
    assertConnectReply(await socket.next(), "40");
    assert.equal(await socket.next(), '42["auth",{"token":"123"}]');
    await socket.close();
  });

  test("connects to a custom namespace", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    socket.send("40/custom,");
    assertConnectReply(await socket.next(), "40/custom,");
    assert.equal(await socket.next(), '42/custom,["auth",{}]');
    await socket.close();
  });

  test("connects to a custom namespace with an auth payload", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    socket.send('40/custom,{"token":"abc"}');
    assertConnectReply(await socket.next(), "40/custom,");
    assert.equal(await socket.next(), '42/custom,["auth",{"token":"abc"}]');
    await socket.close();
  });

  test("refuses an unknown namespace with a CONNECT_ERROR", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    socket.send("40/random");
    assert.equal(await socket.next(), '44/random,{"message":"Invalid namespace"}');
    assert.ok(socket.isOpen);
    await socket.close();
  });

  test("closes the connection upon an invalid handshake", OPTS, async () => {
    const socket = await engineSocket({ autoPong: true });
    await assertClosedPromptly(socket, "4abc");
  });

  test("closes the connection when no CONNECT arrives within connectTimeout", OPTS, async () => {
    // pings are answered, so only the connect timeout can close this connection
    const socket = await engineSocket({ autoPong: true });
    const { at } = await socket.waitClose(CONNECT_TIMEOUT + 1500);
    const elapsed = at - socket.openedAt;
    assert.ok(elapsed >= CONNECT_TIMEOUT - 100, `closed after only ${elapsed} ms`);
    assert.ok(elapsed < CONNECT_TIMEOUT + 500, `closed after ${elapsed} ms`);
    assert.ok(socket.pings >= 2, `expected pings to keep the session alive, got ${socket.pings}`);
    assert.deepEqual(socket.queue, []);
  });
});

describe("disconnect", () => {
  test("disconnecting from the main namespace gets no reply and keeps the connection", OPTS, async () => {
    const socket = await mainNamespaceSocket();
    socket.send("41");
    // nothing is answered: the next message is the Engine.IO ping (~300 ms after the open)
    assert.equal(await socket.next(), "2");
    assert.ok(socket.isOpen);
    socket.send("3");
    // the Engine.IO session is still alive: the next ping comes one interval later
    assert.equal(await socket.next(), "2");
    assert.ok(socket.isOpen);
    await socket.close();
  });

  test("connects then disconnects a custom namespace, then messages the main one", OPTS, async () => {
    const socket = await mainNamespaceSocket();
    assert.equal(await socket.next(), "2");
    socket.send("3");
    socket.send("40/custom");
    assertConnectReply(await socket.next(), "40/custom,");
    assert.equal(await socket.next(), '42/custom,["auth",{}]');
    socket.send("41/custom");
    socket.send('42["message","message to main namespace"]');
    assert.equal(await socket.next(), '42["message-back","message to main namespace"]');
    await socket.close();
  });
});

describe("message", () => {
  test("echoes a plain-text event", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    socket.send('42["message",1,"2",{"3":[true]}]');
    assert.equal(await socket.next(), '42["message-back",1,"2",{"3":[true]}]');
    await socket.close();
  });

  test("echoes an event with binary attachments", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    socket.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    socket.send(Uint8Array.from([1, 2, 3]));
    socket.send(Uint8Array.from([4, 5, 6]));
    assert.equal(
      await socket.next(),
      '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
    );
    assert.deepEqual(await socket.next(), Uint8Array.from([1, 2, 3]));
    assert.deepEqual(await socket.next(), Uint8Array.from([4, 5, 6]));
    await socket.close();
  });

  test("acknowledges a plain-text event", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    socket.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await socket.next(), '43456[1,"2",{"3":[false]}]');
    await socket.close();
  });

  test("acknowledges an event with binary attachments with a binary ack", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    socket.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    socket.send(Uint8Array.from([1, 2, 3]));
    socket.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await socket.next(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await socket.next(), Uint8Array.from([1, 2, 3]));
    assert.deepEqual(await socket.next(), Uint8Array.from([4, 5, 6]));
    await socket.close();
  });

  test("closes the connection upon an unknown packet type", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    await assertClosedPromptly(socket, "4abc");
  });

  test("closes the connection upon an event payload that is not an array", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    await assertClosedPromptly(socket, "42{}");
  });

  test("closes the connection upon an invalid ack id", OPTS, async () => {
    const socket = await mainNamespaceSocket({ autoPong: true });
    await assertClosedPromptly(socket, '42abc["message-with-ack",1,"2",{"3":[false]}]');
  });
});

describe("protocol violations over HTTP long-polling", () => {
  test("an event before CONNECT closes the session", OPTS, async () => {
    const sid = await pollingSession();
    const sent = await post(sid, '42["some event"]');
    assert.equal(sent.status, 200);
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "6\x1e1");
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("a duplicate CONNECT closes the session", OPTS, async () => {
    const sid = await pollingSession();
    assert.equal((await post(sid, "40")).status, 200);
    const connected = await poll(sid);
    assert.equal(connected.status, 200);
    const [reply, auth] = connected.body.split("\x1e");
    assertConnectReply(reply, "40");
    assert.equal(auth, '42["auth",{}]');
    assert.equal((await post(sid, "40")).status, 200);
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "6\x1e1");
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });

  test("an invalid packet after CONNECT closes the session", OPTS, async () => {
    const sid = await pollingSession();
    assert.equal((await post(sid, "40")).status, 200);
    const connected = await poll(sid);
    assert.equal(connected.status, 200);
    assertConnectReply(connected.body.split("\x1e")[0], "40");
    assert.equal((await post(sid, "4abc")).status, 200);
    const got = await poll(sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, "6\x1e1");
    const after = await poll(sid);
    assert.equal(after.status, 400);
  });
});
