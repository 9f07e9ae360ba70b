// Stock socket.io-client connections that a test file opens and closes together.
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
