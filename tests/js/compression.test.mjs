// HTTP compression of polling responses (HTTP_COMPRESSION, on by default, like Node's
// httpCompression with threshold 1024): raw HTTP with and without Accept-Encoding, and the stock
// client (which sends none in Node) over polling.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import zlib from "node:zlib";
import { io } from "socket.io-client";
import { startServer, once } from "./lib/server.mjs";

let on, off;

before(async () => {
  [on, off] = await Promise.all([startServer(), startServer({ env: { HTTP_COMPRESSION: "off" } })]);
});

after(async () => {
  await Promise.all([on?.stop(), off?.stop()]);
});

/** One HTTP request; resolves to { status, headers, body: Buffer } (never decompressed). */
function raw(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** A polling session connected to "/" that has a `size`-byte echo ack waiting; returns its URL. */
async function sessionWithPending(server, size) {
  const base = `http://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=polling`;
  const open = await raw(base, { headers: { "accept-encoding": "gzip" } });
  assert.equal(open.headers["content-encoding"], undefined, "the handshake is under the threshold");
  const { sid } = JSON.parse(open.body.toString().slice(1));
  const url = `${base}&sid=${sid}`;
  assert.equal((await raw(url, { method: "POST", body: "40" })).body.toString(), "ok");
  const first = await raw(url);
  assert.match(first.body.toString(), /^40\{"sid"/);
  const payload = `42["echo","${"a".repeat(size)}"]`.replace(/^42/, "421");
  assert.equal((await raw(url, { method: "POST", body: payload })).body.toString(), "ok");
  return url;
}

const decoders = { gzip: zlib.gunzipSync, deflate: zlib.inflateSync };

for (const [accept, expected] of [
  ["gzip, deflate, br", "gzip"],
  ["deflate", "deflate"],
  ["gzip;q=0.2, deflate;q=0.8", "deflate"],
]) {
  test(`Accept-Encoding: ${accept} gets ${expected} at 1 KiB and more`, async () => {
    const url = await sessionWithPending(on, 4000);
    const res = await raw(url, { headers: { "accept-encoding": accept } });
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-encoding"], expected);
    assert.equal(res.headers.vary, "Accept-Encoding");
    assert.ok(res.body.length < 1000, `compressed to ${res.body.length} bytes`);
    const text = decoders[expected](res.body).toString();
    assert.ok(text.includes(`431["${"a".repeat(4000)}"]`), text.slice(0, 80));
    assert.equal(Number(res.headers["content-length"]), res.body.length);
  });
}

test("no Accept-Encoding, a refused coding, a small body, or HTTP_COMPRESSION=off: sent as is", async () => {
  for (const [server, headers, size] of [
    [on, {}, 4000],
    [on, { "accept-encoding": "br, gzip;q=0" }, 4000],
    [on, { "accept-encoding": "gzip" }, 500],
    [off, { "accept-encoding": "gzip" }, 4000],
  ]) {
    const url = await sessionWithPending(server, size);
    const res = await raw(url, { headers });
    assert.equal(res.headers["content-encoding"], undefined, JSON.stringify(headers));
    assert.ok(res.body.toString().includes(`431["${"a".repeat(size)}"]`));
  }
});

test("the stock client over polling gets large messages (it sends no Accept-Encoding in Node)", async () => {
  const s = io(on.url, { forceNew: true, reconnection: false, transports: ["polling"] });
  try {
    await once(s, "connect");
    const big = "é".repeat(50_000);
    assert.equal(await s.timeout(5000).emitWithAck("echo", big), big);
  } finally {
    s.disconnect();
  }
});
