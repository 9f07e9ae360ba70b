// Stock socket.io-client connections that a test file opens and closes together.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { once } from "./server.mjs";

/**
 * A pool of clients of the server at `url()` (a function: the server starts in `before`).
 * `connect(nsp, opts)` opens one (forceNew, no reconnection unless `opts` says so),
 * `connected(nsp, opts)` waits for its connect, `track(socket)` adds one made elsewhere, and
 * `disconnectAll()` closes them all.
 */
export function clientPool(url) {
  const clients = [];
  const track = (s) => {
    clients.push(s);
    return s;
  };
  const connect = (nsp = "/", opts = {}) => track(io(`${url()}${nsp}`, { forceNew: true, reconnection: false, ...opts }));
  const connected = async (nsp, opts) => {
    const s = connect(nsp, opts);
    await once(s, "connect");
    return s;
  };
  const disconnectAll = () => {
    for (const c of clients) c.disconnect();
  };
  return { connect, connected, track, disconnectAll };
}

/** A stock client of `pool` in `room` (chat `join`), recording the text of every `message` it gets. */
export async function member(pool, room, opts = {}) {
  const s = await pool.connected("/", opts);
  const ack = await s.timeout(4000).emitWithAck("join", room);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  s.texts = [];
  s.on("message", (m) => s.texts.push(m.text));
  return s;
}

/** Sends a chat message to `room` from `sender` and checks it was acknowledged. */
export async function say(sender, room, text) {
  const ack = await sender.timeout(4000).emitWithAck("message", { roomId: room, message: text });
  assert.equal(ack.ok, true, JSON.stringify(ack));
}
