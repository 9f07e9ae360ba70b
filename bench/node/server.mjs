// The Node reference server for scripts/bench: socket.io 4.8, with @socket.io/redis-adapter 8.3
// when REDIS_URL is set. It implements the same contract as sio-server's chat app for the events
// the bench uses: `welcome` on connect, `join`/`leave` (room id or {roomId}), `message` (validated,
// given an id and timestamp, broadcast to the room as {id,text,sender,timestamp,roomId,metadata})
// and `echo` (acks its arguments). Stock options, as a Node deployment would run it; `bufferutil`
// is installed, as socket.io's performance guide recommends.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 3000);
const instanceId = process.env.INSTANCE_ID ?? "node-1";
const http = createServer((req, res) => {
  res.writeHead(req.url === "/health" ? 200 : 404, { "content-type": "application/json" });
  res.end(JSON.stringify({ ok: req.url === "/health" }));
});
// PER_MESSAGE_DEFLATE=on: ws's permessage-deflate as socket.io users turn it on (1 KiB threshold,
// ws's defaults otherwise: context takeover, one zlib pair per connection).
const io = new Server(http, process.env.PER_MESSAGE_DEFLATE === "on" ? { perMessageDeflate: { threshold: 1024 } } : {});
// Engine.IO session ids prefixed with the instance id, like sio-server's ("sio-2.Xk9…"), so the
// repository's nginx config routes a session's requests to its instance (reconnect-storm runs Node
// with INSTANCE_ID=sio-N behind it). The rest is engine.io's own id: 15 random bytes, base64url.
io.engine.generateId = () => `${instanceId}.${randomBytes(15).toString("base64url")}`;
let clients = [];
if (process.env.REDIS_URL) {
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { createClient } = await import("redis");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
  clients = [pub, sub];
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
let counter = 0;
// A 26-character time-ordered id, like sio-server's (ms, counter, random).
function newId() {
  let v = (BigInt(Date.now()) << 80n) | (BigInt(counter++ & 0xffff) << 64n) | randomBytes(8).readBigUInt64BE();
  let s = "";
  for (let i = 0; i < 26; i++) { s = CROCKFORD[Number(v & 31n)] + s; v >>= 5n; }
  return s;
}

const roomOf = (arg) => (typeof arg === "string" ? arg : arg?.roomId);
const bad = (field) => ({ ok: false, error: { field, code: "required" } });

io.on("connection", (socket) => {
  socket.emit("welcome", { instanceId, socketId: socket.id });
  socket.on("join", (arg, cb) => {
    const room = roomOf(arg);
    if (typeof room !== "string" || room === "") return cb?.(bad("roomId"));
    socket.join(room);
    cb?.({ ok: true, roomId: room, instanceId });
  });
  socket.on("leave", (arg, cb) => {
    const room = roomOf(arg);
    if (typeof room !== "string" || room === "") return cb?.(bad("roomId"));
    socket.leave(room);
    cb?.({ ok: true, roomId: room });
  });
  socket.on("message", (payload, cb) => {
    const { roomId, message, sender, metadata, ...rest } = payload ?? {};
    if (typeof roomId !== "string" || roomId === "") return cb?.(bad("roomId"));
    if (typeof message !== "string" || message === "") return cb?.(bad("message"));
    const msg = {
      id: newId(),
      text: message,
      sender: typeof sender === "string" && sender !== "" ? sender : "Anonymous",
      timestamp: new Date().toISOString(),
      roomId,
      metadata: { ...(metadata ?? {}), ...rest, type: "text" },
    };
    io.to(roomId).emit("message", msg);
    cb?.({ ok: true, id: msg.id });
  });
  socket.on("echo", (...args) => {
    const cb = typeof args.at(-1) === "function" ? args.pop() : null;
    cb?.(...args);
  });
});

http.listen(port, "127.0.0.1", () => console.error(`node socket.io listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => {
  io.close();
  Promise.all(clients.map((c) => c.quit())).finally(() => process.exit(0));
});
