// Helpers for the webhook suites: JSON requests, signing, and a group of clients and processes
// with one cleanup.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";
import { once } from "./server.mjs";

/** A JSON answer: {status, headers, text, json}. */
export async function request(base, path, { method = "POST", body, raw, headers = {}, contentType = "application/json", signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (contentType) init.headers["content-type"] = contentType;
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) init.body = JSON.stringify(body);
  // fetch labels a string body text/plain; bytes go out without a Content-Type.
  if (!contentType && init.body !== undefined) init.body = Buffer.from(init.body);
  if (method === "GET") delete init.headers["content-type"];
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export const post = (base, path, body, opts = {}) => request(base, path, { body, ...opts });
export const get = (base, path) => request(base, path, { method: "GET" });
export const show = (r) => `${r.status} ${r.text}`;

/** Clients and processes with one cleanup. */
export function group() {
  const clients = [];
  const procs = [];
  return {
    procs,
    /** Connects a stock client, records every event in `s.events`, resolves once connected. */
    async client(url, opts = {}) {
      const s = io(url, { forceNew: true, reconnection: false, ...opts });
      clients.push(s);
      s.events = [];
      s.onAny((event, ...args) => s.events.push([event, ...args]));
      await once(s, "connect", 5000);
      return s;
    },
    /** A client that joined `room`. */
    async member(url, room, opts = {}) {
      const s = await this.client(url, opts);
      const res = await s.emitWithAck("join", room);
      assert.equal(res.ok, true, `join ${room}: ${JSON.stringify(res)}`);
      return s;
    },
    track(proc) {
      procs.push(proc);
      return proc;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await Promise.all(procs.map((p) => p.stop()));
    },
    logs(lines = 30) {
      return procs
        .map((p) => `--- :${p.port}\n${p.logs().split("\n").slice(-lines).join("\n")}`)
        .join("\n");
    },
  };
}

/** The events of `s` named `name` (their first argument). */
export const eventsNamed = (s, name) => s.events.filter(([e]) => e === name).map(([, a]) => a);
export const messageEvents = (s) => s.events.filter(([e]) => e === "message" || e.startsWith("message:"));

/**
 * Headers of a request signed with `secret` at `ts` (unix seconds, default now):
 * X-Webhook-Timestamp and X-Webhook-Signature = sha256=HMAC-SHA256("<ts>.<raw>").
 */
export function signed(secret, raw, ts = Math.floor(Date.now() / 1000)) {
  const sig = createHmac("sha256", secret).update(`${ts}.${raw}`).digest("hex");
  return { "X-Webhook-Timestamp": String(ts), "X-Webhook-Signature": `sha256=${sig}` };
}
