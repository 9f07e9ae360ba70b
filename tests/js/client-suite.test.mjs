// `sio-server client-suite`, the server of socket.io-client's own test suite (its
// test/support/server.ts), driven by the stock socket.io-client 4.8: the contract of that server
// (port, heartbeat, handshake hold, namespaces, middlewares, events and payloads) and what the
// client's suite relies on it for (reconnection and backoff, ack timeouts and acks upon
// disconnection, the retry queue, binary in order, multiplexing, autoUnref, connection state
// recovery).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { io, Manager } from "socket.io-client";
import { clientPool } from "./lib/clients.mjs";
import { startServer, freePort, binary, sleep, once, waitFor } from "./lib/server.mjs";
import { RawSocket } from "./lib/raw.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let server;
const { connect, connected, track, disconnectAll } = clientPool(() => server.url);

/**
 * The arguments of an event without its offset: with connection state recovery on (as in Node's
 * test server), every event without ack id carries its offset as a last string argument.
 */
function withoutOffset(args) {
  assert.equal(typeof args.at(-1), "string", `an offset ends ${JSON.stringify(args)}`);
  return args.slice(0, -1);
}

/** Resolves true if `event` arrives within `ms`, false otherwise. */
function arrives(socket, event, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      socket.off(event, on);
      resolve(false);
    }, ms);
    const on = () => {
      clearTimeout(t);
      resolve(true);
    };
    socket.once(event, on);
  });
}

before(async () => {
  server = await startServer({ args: ["client-suite"] });
});

after(async () => {
  disconnectAll();
  await server.stop();
});

describe("the server", () => {
  test("listens on 3210 unless PORT moves it, with pingInterval 2000", async () => {
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    const open = JSON.parse((await res.text()).slice(1));
    assert.equal(open.pingInterval, 2000);
    assert.equal(open.pingTimeout, 20000);
    assert.deepEqual(open.upgrades, ["websocket"]);

    // Without PORT it takes the suite's port (skipped only by failing: 3210 must be free here).
    const env = { ...process.env, HOST: "127.0.0.1", WEBHOOK_PORT: "off", RUST_LOG: "warn" };
    delete env.PORT;
    const child = spawn(binary("sio-server"), ["client-suite"], { env, stdio: "ignore" });
    try {
      await waitFor(
        async () => (await fetch("http://127.0.0.1:3210/socket.io/?EIO=4&transport=polling")).status === 200,
        10000,
        "sio-server client-suite answers on :3210",
      );
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });

  test("holds each handshake ~10 ms: a 1 ms connection timeout fails, requests of a session are not held", async () => {
    const t0 = performance.now();
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    const { sid } = JSON.parse((await res.text()).slice(1));
    assert.ok(performance.now() - t0 >= 9, "the handshake was held");

    const s = connect("/", { timeout: 1 });
    const [err] = await once(s, "connect_error");
    assert.equal(err.message, "timeout");

    // The session's own requests pass straight through (a held POST would still answer "ok").
    const post = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "1" });
    assert.equal(await post.text(), "ok");
  });

});

describe("upgrade", () => {
  test("a GET parked when the probe is answered gets its noop at once; one parked after it at the next 100 ms check", async () => {
    const base = `${server.url}/socket.io/?EIO=4`;
    const open = await fetch(`${base}&transport=polling`);
    const { sid } = JSON.parse((await open.text()).slice(1));
    let answered = null;
    const parked = fetch(`${base}&transport=polling&sid=${sid}`).then(async (r) => (answered = await r.text()));
    await sleep(20);
    const ws = new RawSocket(`${base.replace("http", "ws")}&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send("2probe");
    assert.equal(await ws.next(), "3probe");
    await parked;
    assert.equal(answered, "6", "released with a noop right after 3probe");
    // A client that polled again before it saw 3probe: that GET waits for the next check.
    let again = null;
    const second = fetch(`${base}&transport=polling&sid=${sid}`).then(async (r) => (again = await r.text()));
    await sleep(20);
    assert.equal(again, null, "a GET sent after the probe stays parked until the 100 ms check");
    await second;
    assert.equal(again, "6");
    ws.send("5");
    ws.send("40");
    const first = await ws.next();
    assert.match(first, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
    await ws.close();
  });

  test("with retries, an emit in the connect handler goes out once and is acked once", async () => {
    const s = connect("/", { retries: 3 });
    const sent = [];
    const received = [];
    s.io.on("open", () => {
      s.io.engine.on("packetCreate", ({ type, data }) => type === "message" && sent.push(data));
      s.io.engine.on("packet", ({ type, data }) => type === "message" && received.push(data));
    });
    const acked = new Promise((r) => s.on("connect", () => s.emit("echo", null, r)));
    await acked;
    await sleep(300);
    assert.deepEqual(
      sent.filter((d) => d.includes("echo")),
      ['20["echo",null]'],
    );
    assert.deepEqual(received, [`0{"sid":"${s.id}","pid":"${s._pid}"}`, "30[null]"]);
    s.disconnect();
  });
});

describe("namespaces and middlewares", () => {
  test("/foo acks getId with the socket id; /timeout_socket, /valid and /asd accept", async () => {
    const foo = await connected("/foo");
    assert.equal(await foo.emitWithAck("getId"), foo.id);
    assert.notEqual(foo.id, foo.io.engine.id);
    for (const nsp of ["/timeout_socket", "/valid", "/asd"]) {
      const s = await connected(nsp);
      assert.ok(s.connected, nsp);
      s.disconnect();
    }
    foo.disconnect();
  });

  test("an unregistered namespace is refused", async () => {
    const s = connect("/unregistered");
    const [err] = await once(s, "connect_error");
    assert.equal(err.message, "Invalid namespace");
  });

  test("/abc emits the handshake: query from the options and the URL, auth", async () => {
    const fromUrl = connect("/abc?b=c&d=e");
    const [hsUrl] = await once(fromUrl, "handshake");
    assert.equal(hsUrl.query.b, "c");
    assert.equal(hsUrl.query.d, "e");
    fromUrl.disconnect();
    const s = connect("/abc", { query: { "&a": "&=?a" }, auth: { token: "t1" } });
    const [hs] = await once(s, "handshake");
    assert.equal(hs.query["&a"], "&=?a", "percent-encoded parameters are decoded");
    assert.equal(hs.query.EIO, "4");
    assert.deepEqual(hs.auth, { token: "t1" });
    assert.equal(hs.query.token, undefined);
    assert.equal(hs.address, "127.0.0.1");
    assert.equal(typeof hs.issued, "number");
    s.disconnect();
  });

  test("auth given as a function reaches the handshake", async () => {
    const s = connect("/abc", { auth: (cb) => cb({ e: "f" }) });
    const [hs] = await once(s, "handshake");
    assert.deepEqual(hs.auth, { e: "f" });
  });

  test("the main namespace refuses ?fail with 'Auth failed (main namespace)', and the client does not retry", async () => {
    const s = connect("/", { query: { fail: true }, reconnection: true, reconnectionDelay: 10 });
    let attempts = 0;
    s.io.on("reconnect_attempt", () => attempts++);
    const [err] = await once(s, "connect_error");
    assert.equal(err.message, "Auth failed (main namespace)");
    await sleep(200);
    assert.equal(attempts, 0);
    assert.equal(s.connected, false);
    // An empty value is falsy in Node's check: it connects.
    const ok = await connected("/?fail=");
    ok.disconnect();
  });

  test("/no refuses with 'Auth failed (custom namespace)'", async () => {
    const s = connect("/no");
    const [err] = await once(s, "connect_error");
    assert.equal(err.message, "Auth failed (custom namespace)");
    assert.equal(s.connected, false);
  });

  test("namespaces multiplexed on one manager share one Engine.IO connection", async () => {
    const manager = new Manager(server.url, { reconnection: false });
    const main = manager.socket("/");
    const foo = manager.socket("/foo");
    const refused = manager.socket("/no");
    const refusal = once(refused, "connect_error");
    await Promise.all([once(main, "connect"), once(foo, "connect")]);
    assert.equal((await refusal)[0].message, "Auth failed (custom namespace)");
    assert.equal(main.io.engine.id, foo.io.engine.id);
    assert.notEqual(main.id, foo.id);
    assert.equal(await foo.emitWithAck("getId"), foo.id);
    assert.equal(await main.emitWithAck("getId"), main.id);
    // Leaving one namespace keeps the connection for the other.
    foo.disconnect();
    assert.equal(await main.emitWithAck("echo", "still here"), "still here");
    main.disconnect();
    manager._close();
  });
});

describe("events", () => {
  let s;
  before(async () => {
    s = await connected();
  });
  after(() => s.disconnect());

  test("hi, echo, false, getId, getHandshake", async () => {
    const hi = once(s, "hi");
    s.emit("hi");
    assert.deepEqual(withoutOffset(await hi), []);
    assert.deepEqual(await s.emitWithAck("echo", { a: [1, "b", null] }), { a: [1, "b", null] });
    assert.equal(await s.emitWithAck("echo"), null, "cb(undefined) is sent as null");
    const f = once(s, "false");
    s.emit("false");
    assert.deepEqual(withoutOffset(await f), [false]);
    assert.equal(await s.emitWithAck("getId"), s.id);
    const hs = await s.emitWithAck("getHandshake");
    assert.equal(hs.query.transport, "polling");
    assert.ok(hs.url.startsWith("/socket.io/?"), hs.url);
  });

  test("dates go out as JSON.stringify writes them", async () => {
    const date = await s.emitWithAck("getAckDate", { test: true });
    assert.match(date, ISO_DATE);
    assert.ok(Math.abs(Date.parse(date) - Date.now()) < 60000);
    const take = once(s, "takeDate");
    s.emit("getDate");
    assert.match((await take)[0], ISO_DATE);
    const takeObj = once(s, "takeDateObj");
    s.emit("getDateObj");
    const [obj] = await takeObj;
    assert.deepEqual(Object.keys(obj), ["date"]);
    assert.match(obj.date, ISO_DATE);
  });

  test("getUtf8 sends five multibyte strings in order", async () => {
    const got = [];
    const all = new Promise((resolve) =>
      s.on("takeUtf8", (t) => {
        got.push(t);
        if (got.length === 5) resolve();
      }),
    );
    s.emit("getUtf8");
    await all;
    s.off("takeUtf8");
    assert.deepEqual(got, ["てすと", "Я Б Г Д Ж Й", "Ä ä Ü ü ß", "utf8 — string", "utf8 — string"]);
  });

  test("the server's own ack: 'got it' only for (5, {test: truthy})", async () => {
    s.once("ack", (cb) => cb(5, { test: true }));
    const got = once(s, "got it");
    s.emit("ack");
    assert.deepEqual(withoutOffset(await got), []);

    s.once("ack", (cb) => cb(5, { test: false }));
    s.emit("ack");
    assert.equal(await arrives(s, "got it", 500), false);
  });
});

describe("binary", () => {
  for (const transports of [["polling", "websocket"], ["polling"]]) {
    describe(transports.join("+"), () => {
      let s;
      before(async () => {
        s = await connected("/", { transports });
      });
      after(() => s.disconnect());

      test("doge and getbin send Buffer 'asdfasdf'", async () => {
        for (const [ask, event] of [["doge", "doge"], ["getbin", "takebin"]]) {
          const p = once(s, event);
          s.emit(ask);
          const [buf] = await p;
          assert.ok(Buffer.isBuffer(buf), event);
          assert.equal(buf.toString(), "asdfasdf");
        }
      });

      test("buffa, blob, jsonbuff and jsonblob are acked only for binary", async () => {
        for (const [event, ack] of [["buffa", "buffack"], ["blob", "back"]]) {
          const p = once(s, ack);
          s.emit(event, Buffer.from("binary"));
          await p;
          s.emit(event, "not binary");
          assert.equal(await arrives(s, ack, 300), false, `${event} with a string`);
        }
        for (const [event, ack] of [["jsonbuff", "jsonbuff-ack"], ["jsonblob", "jsonblob-ack"]]) {
          const p = once(s, ack);
          s.emit(event, { hello: "lol", message: Buffer.from("x"), goodbye: "gotcha" });
          await p;
          s.emit(event, { hello: "lol", message: "x", goodbye: "gotcha" });
          assert.equal(await arrives(s, ack, 300), false, `${event} without a buffer`);
        }
      });

      test("buffers and blobs arrive in the order they were sent", async () => {
        const a = once(s, "abuff2-ack");
        s.emit("abuff1", Buffer.from("first"));
        s.emit("abuff2", "second");
        await a;
        const b = once(s, "blob3-ack");
        s.emit("blob1", Buffer.from("first"));
        s.emit("blob2", "second");
        s.emit("blob3", Buffer.from("third"));
        await b;
      });

      test("abuff2 and blob3 without their predecessors are not acked", async () => {
        const fresh = await connected("/", { transports });
        fresh.emit("abuff2", "second");
        fresh.emit("blob2", "second");
        fresh.emit("blob3", Buffer.from("third"));
        assert.equal(await arrives(fresh, "abuff2-ack", 300), false);
        assert.equal(await arrives(fresh, "blob3-ack", 100), false);
        fresh.disconnect();
      });
    });
  }
});

describe("acks", () => {
  test("timeouts: an unknown event times out, an echo within the timeout does not", async () => {
    const s = await connected();
    await assert.rejects(s.timeout(200).emitWithAck("unknown"), /operation has timed out/);
    assert.equal(await s.timeout(5000).emitWithAck("echo", 42), 42);
    const err = await new Promise((r) => s.timeout(200).emit("unknown", (e) => r(e)));
    assert.match(err.message, /operation has timed out/);
    s.disconnect();
  });

  test("upon disconnection: acks with a timeout fail at once, the default ackTimeout too", async () => {
    const s = await connected("/", { ackTimeout: 10000 });
    const withTimeout = new Promise((r) => s.timeout(10000).emit("unknown", (e) => r(e)));
    const withAckTimeout = s.emitWithAck("unknown").catch((e) => e);
    s.disconnect();
    assert.match((await withTimeout).message, /socket has been disconnected/);
    assert.match((await withAckTimeout).message, /socket has been disconnected/);
  });

  test("an ack answered by the server arrives after a reconnection of the same socket", async () => {
    const s = await connected("/", { reconnection: true, reconnectionDelay: 50 });
    const firstId = s.id;
    s.io.engine.close();
    await once(s, "connect", 5000);
    assert.notEqual(s.id, firstId, "no recovery yet (#17): a new session");
    assert.equal(await s.timeout(5000).emitWithAck("echo", "after"), "after");
    s.disconnect();
  });
});

describe("retry queue", () => {
  test("packets are sent one at a time, in order, and each is acked once", async () => {
    const s = connect("/", { retries: 3, ackTimeout: 2000 });
    const sent = [];
    s.io.on("open", () => s.io.engine.on("packetCreate", ({ data }) => sent.push(data)));
    const replies = await Promise.all([1, 2, 3].map((i) => s.emitWithAck("echo", i)));
    assert.deepEqual(replies, [1, 2, 3]);
    const echoes = sent.filter((d) => typeof d === "string" && d.includes('"echo"'));
    assert.deepEqual(
      echoes.map((d) => JSON.parse(d.slice(d.indexOf("[")))[1]),
      [1, 2, 3],
    );
    s.disconnect();
  });

  test("an unanswered packet fails after its retries", async () => {
    const s = await connected("/", { retries: 2, ackTimeout: 100 });
    let count = 0;
    s.io.engine.on("packetCreate", ({ data }) => {
      if (typeof data === "string" && data.includes('"unknown"')) count++;
    });
    await assert.rejects(s.emitWithAck("unknown"), /operation has timed out/);
    assert.equal(count, 3, "the first try and two retries");
    s.disconnect();
  });

  test("the queue is not drained while disconnected, and is once reconnected", async () => {
    const s = await connected("/", { retries: 3, ackTimeout: 1000, reconnection: true, reconnectionDelay: 200 });
    const down = once(s, "disconnect");
    s.io.engine.close();
    await down;
    const order = [];
    const reply = s.emitWithAck("echo", "queued").then((r) => order.push(`ack ${r}`));
    await once(s, "connect", 5000);
    order.push("connect");
    await reply;
    assert.deepEqual(order, ["connect", "ack queued"]);
    s.disconnect();
  });
});

describe("reconnection", () => {
  test("backoff: attempts wait longer each time up to reconnectionDelayMax, then the server comes back", async () => {
    const port = await freePort();
    let restartable = await startServer({ args: ["client-suite"], port });
    const s = io(restartable.url, {
      forceNew: true,
      transports: ["websocket"],
      reconnectionDelay: 100,
      reconnectionDelayMax: 400,
      randomizationFactor: 0,
    });
    track(s);
    try {
      await once(s, "connect");
      const firstId = s.id;
      const down = once(s, "disconnect");
      const at = [];
      s.io.on("reconnect_attempt", (n) => at.push([n, performance.now()]));
      await restartable.stop();
      assert.match((await down)[0], /^transport (close|error)$/);
      await waitFor(() => at.length >= 4, 10000, "four reconnection attempts");
      assert.deepEqual(
        at.slice(0, 4).map(([n]) => n),
        [1, 2, 3, 4],
      );
      const gaps = at.slice(1, 4).map(([, t], i) => t - at[i][1]);
      // 200, 400, 400 ms (plus the failed attempt itself): never shorter than the backoff.
      assert.ok(gaps[0] >= 190, `gap ${gaps[0]}`);
      assert.ok(gaps[1] >= 390 && gaps[2] >= 390, `gaps ${gaps}`);
      restartable = await startServer({ args: ["client-suite"], port });
      await once(s, "connect", 10000);
      assert.notEqual(s.id, firstId);
      assert.equal(await s.emitWithAck("getId"), s.id);
    } finally {
      s.disconnect();
      await restartable.stop();
    }
  });

  test("a closed engine reconnects every namespace of the manager with new ids", async () => {
    const manager = new Manager(server.url, { reconnectionDelay: 50 });
    const main = manager.socket("/");
    const foo = manager.socket("/foo");
    await Promise.all([once(main, "connect"), once(foo, "connect")]);
    const ids = [main.id, foo.id];
    manager.engine.close();
    await Promise.all([once(main, "connect", 5000), once(foo, "connect", 5000)]);
    assert.notEqual(main.id, ids[0]);
    assert.notEqual(foo.id, ids[1]);
    assert.equal(await foo.emitWithAck("getId"), foo.id);
    main.disconnect();
    foo.disconnect();
    manager._close();
  });
});

describe("autoUnref", () => {
  /** Runs a client in a child process; resolves with its exit code, or "running" after `ms`. */
  function runClient(opts, ms) {
    const code = `
      import { io } from "socket.io-client";
      const s = io(${JSON.stringify(server.url)}, ${JSON.stringify(opts)});
      s.on("connect", () => console.log("connected"));
      setTimeout(() => console.log("timer done"), 50);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: here, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        child.kill("SIGKILL");
        resolve({ code: "running", out });
      }, ms);
      child.on("exit", (code) => {
        clearTimeout(t);
        resolve({ code, out });
      });
    });
  }

  test("with autoUnref the process exits once its timers are done, on every transport", async () => {
    for (const transports of [["polling", "websocket"], ["polling"], ["websocket"]]) {
      const { code } = await runClient({ autoUnref: true, transports }, 10000);
      assert.equal(code, 0, transports.join("+"));
    }
  });

  test("with autoUnref, a client still reconnecting does not keep the process alive", async () => {
    const port = await freePort(); // nothing listens there
    const code = `
      import { io } from "socket.io-client";
      io("http://127.0.0.1:${port}", { autoUnref: true, reconnectionDelay: 100 });
      setTimeout(() => {}, 50);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: here, stdio: "ignore" });
    const exit = await new Promise((resolve) => {
      const t = setTimeout(() => {
        child.kill("SIGKILL");
        resolve("running");
      }, 10000);
      child.on("exit", (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.equal(exit, 0);
  });

  test("without autoUnref the connection keeps the process alive", async () => {
    const { code, out } = await runClient({ autoUnref: false }, 1500);
    assert.equal(code, "running");
    assert.match(out, /connected/);
  });
});

describe("connection state recovery", () => {
  test("after the engine closes, the client reconnects with the same id and recovered === true", async () => {
    const s = track(io(server.url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 100 }));
    assert.equal(s.recovered, false);
    const hi = once(s, "hi");
    s.emit("hi"); // the server's answer carries the first offset
    await hi;
    const id = s.id;
    assert.equal(typeof s._lastOffset, "string");
    const back = once(s, "connect", 10000);
    s.io.engine.close();
    await back;
    assert.equal(s.id, id);
    assert.equal(s.recovered, true);
    // A second drop recovers again (the session is persisted anew on each recoverable close).
    const again = once(s, "connect", 10000);
    s.io.engine.close();
    await again;
    assert.equal(s.id, id);
    assert.equal(s.recovered, true);
  });

  test("middlewares are skipped on recovery: ?fail is refused at first only", async () => {
    // The client's `query` is sent again on every handshake, so a recovered socket would be refused
    // by the main namespace's middleware if it ran. Node skips it (skipMiddlewares), as we do.
    const s = track(io(server.url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 100 }));
    const hi = once(s, "hi");
    s.emit("hi");
    await hi;
    const id = s.id;
    s.io.opts.query = { fail: "1" };
    const back = once(s, "connect", 10000);
    s.io.engine.close();
    await back;
    assert.equal(s.recovered, true);
    assert.equal(s.id, id);
    s.disconnect();
    const refused = once(track(io(server.url, { forceNew: true, query: { fail: "1" } })), "connect_error");
    const [err] = await refused;
    assert.equal(err.message, "Auth failed (main namespace)");
  });
});
