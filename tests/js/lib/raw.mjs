// Raw protocol clients for the protocol suites: a WebSocket that queues every message, and a
// bounded fetch. Every socket opened here is tracked so a suite can terminate them all.
import assert from "node:assert/strict";
import WebSocket from "ws";
import http from "node:http";
import { sleep, once } from "./server.mjs";

const sockets = new Set();

/** A raw WebSocket that queues every message (text → string, binary → Uint8Array). */
export class RawSocket {
  constructor(url, { autoPong = false } = {}) {
    this.ws = new WebSocket(url);
    this.autoPong = autoPong;
    this.received = []; // every message, in order (pings included)
    this.queue = [];
    this.waiters = [];
    this.pings = 0;
    this.closeInfo = null;
    sockets.add(this);
    this.ws.on("error", (err) => {
      this.error = err;
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => {
        this.openedAt = Date.now();
        resolve();
      });
      this.ws.once("close", () => reject(new Error("socket closed before it opened")));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        sockets.delete(this);
        resolve(this.closeInfo);
        for (const w of this.waiters.splice(0)) w.reject(new Error("socket closed while waiting for a message"));
      });
    });
    this.ws.on("message", (data, isBinary) => {
      const msg = isBinary ? new Uint8Array(data) : data.toString();
      this.received.push(msg);
      if (this.autoPong && msg === "2") {
        this.pings++;
        this.ws.send("3");
        return;
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(msg);
      else this.queue.push(msg);
    });
  }

  /** The next queued message (pings are skipped only when autoPong is on). */
  next(timeoutMs = 2000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) return Promise.reject(new Error("socket is closed"));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  send(data) {
    this.ws.send(data);
  }

  /** Resolves with { code, reason, at } when the socket closes; rejects after timeoutMs. */
  waitClose(timeoutMs = 2000) {
    return Promise.race([
      this.closed,
      sleep(timeoutMs).then(() => {
        if (!this.closeInfo) throw new Error(`socket still open after ${timeoutMs} ms`);
        return this.closeInfo;
      }),
    ]);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  async close() {
    if (this.closeInfo) return;
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
      await Promise.race([this.closed, sleep(500)]);
    }
    if (!this.closeInfo) this.ws.terminate();
  }
}

/**
 * A raw WebSocket that joins namespace `nsp` with `auth`. Resolves to { raw, sid, pid, before },
 * `before` being the packets received before the CONNECT reply (the replayed ones).
 */
export async function rawConnect(url, auth, nsp = "/") {
  const raw = new RawSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`, { autoPong: true });
  await raw.opened;
  assert.match(await raw.next(), /^0\{/);
  const prefix = nsp === "/" ? "" : `${nsp},`;
  raw.send(`40${prefix}${auth === undefined ? "" : JSON.stringify(auth)}`);
  const before = [];
  for (;;) {
    const msg = await raw.next(4000);
    if (msg.startsWith(`40${prefix}`)) {
      const reply = JSON.parse(msg.slice(2 + prefix.length));
      return { raw, sid: reply.sid, pid: reply.pid, reply, before };
    }
    before.push(msg);
  }
}

/** The events of a raw connection until `ms` passes without one. */
export async function drain(raw, ms = 300) {
  const out = [];
  for (;;) {
    try {
      out.push(await raw.next(ms));
    } catch {
      return out;
    }
  }
}

export function terminateAll() {
  for (const s of sockets) s.ws.terminate();
  sockets.clear();
}

/** fetch with a bounded time; resolves to { status, body, headers }. */
export async function request(url, init = {}) {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000), ...init });
  const body = await res.text();
  return { status: res.status, body, headers: res.headers };
}

/**
 * An HTTP request from a chosen local address (`localAddress`, e.g. "127.0.0.2": fetch cannot
 * pick one), bounded in time; resolves to { status, body, headers }.
 */
export function requestFrom(url, { localAddress = "127.0.0.1", method = "GET", headers = {}, body, timeoutMs = 4000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, localAddress, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data, headers: res.headers }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** A raw WebSocket client that joins `room` through the chat app, then stops reading its socket. */
export async function stuckReader(server, room) {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  await once(ws, "open");
  ws.send("40");
  ws.send(`420["join","${room}"]`);
  await new Promise((resolve) => ws.on("message", (d) => String(d).startsWith("430") && resolve()));
  ws._socket.pause();
  return ws;
}
