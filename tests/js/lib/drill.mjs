// The failover drill of issue #17: on a running `scripts/cluster` (startCluster), N stock clients in
// one room through nginx, a webhook stream of R messages/s each carrying a sequence number, and a
// signal (SIGKILL by default) to the instance with the most clients mid-stream. Counts, per client,
// the messages the webhook answered 200 for that never arrived (lost), duplicates, out-of-order
// arrivals, whether the reconnect was a recovery (`socket.recovered`, same socket id) and how long it
// took. runDrill() returns the numbers; the tests and bench/drill.mjs assert or print them.
import { io } from "socket.io-client";
import { INSTANCES } from "./cluster.mjs";
import { sleep, waitFor } from "./server.mjs";

/** Default drill parameters (issue #17). */
export const DRILL_DEFAULTS = {
  clients: 30,
  rate: 25,
  room: "drill",
  /** undefined: the stock default (polling, then the upgrade); or e.g. ["websocket"]. */
  transports: undefined,
  signal: "SIGKILL",
  /** Streaming time before and after the signal. */
  beforeMs: 2000,
  afterMs: 8000,
  /** How long the victim's clients get to come back. */
  reconnectDeadlineMs: 20_000,
  /** Quiet time after the last answer, for deliveries in flight. */
  settleMs: 2000,
};

/** A drill client: a stock socket.io-client with reconnection on, recording what it sees. */
function drillClient(url, index, { room, transports }) {
  const sock = io(url, { forceNew: true, ...(transports ? { transports } : {}) });
  const c = {
    index,
    sock,
    instance: null,
    ids: [], // socket id at each connect
    connects: [], // { at, recovered, id }
    disconnects: [], // { at, reason }
    joins: 0,
    seqs: [], // sequence numbers in arrival order
  };
  sock.on("welcome", (w) => (c.instance = w?.instanceId ?? c.instance));
  sock.on("connect", () => {
    c.ids.push(sock.id);
    c.connects.push({ at: Date.now(), recovered: sock.recovered === true, id: sock.id, joinedAt: null });
    const rec = c.connects.at(-1);
    if (sock.recovered) {
      rec.joinedAt = rec.at;
      return;
    }
    sock.emit("join", room, (ack) => {
      if (ack?.ok) {
        c.joins++;
        rec.joinedAt = Date.now();
        if (ack.instanceId) c.instance = ack.instanceId;
      }
    });
  });
  sock.on("disconnect", (reason) => c.disconnects.push({ at: Date.now(), reason }));
  sock.on("message", (m) => {
    if (m?.roomId !== room) return;
    const seq = typeof m.metadata?.seq === "number" ? m.metadata.seq : Number(/#(\d+)$/.exec(m.text ?? "")?.[1]);
    if (Number.isInteger(seq)) c.seqs.push(seq);
  });
  return c;
}

/** POSTs one drill message; resolves to {seq, sentAt, status|error, answeredAt}. */
async function postMessage(webhookUrl, room, seq) {
  const rec = { seq, sentAt: Date.now() };
  try {
    const res = await fetch(`${webhookUrl}/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ roomId: room, message: `drill #${seq}`, sender: "drill", metadata: { seq } }),
      signal: AbortSignal.timeout(30_000),
    });
    rec.status = res.status;
    await res.text();
  } catch (e) {
    rec.error = String(e?.cause ?? e);
  }
  rec.answeredAt = Date.now();
  return rec;
}

/**
 * Delivery of the acknowledged sequence numbers `acked` to one client that received `seqs` (in
 * arrival order): lost (acked, never arrived), duplicates (extra arrivals of any number),
 * outOfOrder (acked numbers that arrived before an acked number that `happensBefore` them) and
 * unacked (distinct numbers that arrived although their POST was not answered 200, e.g. a 504
 * "may still arrive"). The drill's `happensBefore(k, m)` is causal: k's POST was answered before
 * m's was sent (concurrent POSTs have no order to keep); the default is numeric.
 */
export function deliveryOf(seqs, acked, happensBefore = (k, m) => k < m) {
  const ackedSet = new Set(acked);
  const counts = new Map();
  const first = []; // acked numbers in order of first arrival
  for (const s of seqs) {
    counts.set(s, (counts.get(s) ?? 0) + 1);
    if (ackedSet.has(s) && counts.get(s) === 1) first.push(s);
  }
  let outOfOrder = 0;
  for (let i = 0; i < first.length; i++) {
    if (first.slice(i + 1).some((k) => happensBefore(k, first[i]))) outOfOrder++;
  }
  const lost = acked.filter((s) => !counts.has(s));
  const duplicates = [...counts.values()].reduce((n, k) => n + (k - 1), 0);
  const unacked = [...counts.keys()].filter((s) => !ackedSet.has(s)).length;
  return { lost, duplicates, outOfOrder, unacked };
}

/**
 * Runs the drill on `cluster` (from startCluster). `opts` override DRILL_DEFAULTS; `log(line)`
 * gets progress lines. Resolves to the numbers: {signal, transports, clients, rate, victim,
 * victimClients, posted, answered: {status: count}, postErrors, acked, lost, lostClients,
 * lostOnSurvivors, duplicates, outOfOrder, unackedArrived, reconnected, notReconnected, recovered, sameId, worstReconnectMs,
 * worstRejoinMs, perClient: [...]}. Always disconnects its clients.
 */
export async function runDrill(cluster, opts = {}, log = () => {}) {
  const o = { ...DRILL_DEFAULTS, ...opts };
  const clients = [];
  try {
    for (let i = 0; i < o.clients; i++) clients.push(drillClient(cluster.nginxUrl, i, o));
    await waitFor(() => clients.every((c) => c.connects.at(-1)?.joinedAt && c.instance), 30_000, () =>
      `all ${o.clients} clients joined ${o.room} (${clients.filter((c) => !c.connects.at(-1)?.joinedAt).length} missing)`,
    );
    // Warm-up: a message every client receives proves the webhook and every room member are ready.
    await waitFor(async () => {
      await postMessage(cluster.webhookUrl, o.room, 0);
      await sleep(300);
      return clients.every((c) => c.seqs.includes(0));
    }, 30_000, "warm-up message at every client");
    for (const c of clients) c.seqs.length = 0;

    const per = Object.fromEntries(INSTANCES.map((id) => [id, clients.filter((c) => c.instance === id).length]));
    const victim = o.victim ?? INSTANCES.reduce((a, b) => (per[b] > per[a] ? b : a));
    const pid = cluster.pid(victim);
    const before = new Map(clients.map((c) => [c, { id: c.sock.id, connects: c.connects.length }]));
    const victims = clients.filter((c) => c.instance === victim);
    log(`clients per instance ${JSON.stringify(per)}; ${o.signal} ${victim} (pid ${pid}, ${victims.length} clients)`);

    const posts = [];
    let seq = 0;
    let posting = true;
    const poster = (async () => {
      const start = Date.now();
      while (posting) {
        posts.push(postMessage(cluster.webhookUrl, o.room, ++seq));
        const next = start + (seq * 1000) / o.rate;
        await sleep(Math.max(0, next - Date.now()));
      }
    })();
    await sleep(o.beforeMs);
    process.kill(pid, o.signal);
    const killedAt = Date.now();
    await sleep(o.afterMs);
    posting = false;
    await poster;
    const answers = await Promise.all(posts);
    const back = (c) => c.connects.length > before.get(c).connects && c.connects.at(-1).joinedAt;
    await waitFor(() => victims.every(back), Math.max(0, killedAt + o.reconnectDeadlineMs - Date.now()), "").catch(() => {});
    await sleep(o.settleMs);

    const acked = answers.filter((a) => a.status === 200).map((a) => a.seq);
    const answered = {};
    for (const a of answers) if (a.status) answered[a.status] = (answered[a.status] ?? 0) + 1;
    const bySeq = new Map(answers.map((a) => [a.seq, a]));
    const causal = (k, m) => bySeq.get(k).answeredAt < bySeq.get(m).sentAt;
    const perClient = clients.map((c) => {
      const d = deliveryOf(c.seqs, acked, causal);
      const wasVictim = victims.includes(c);
      const next = c.connects[before.get(c).connects];
      return {
        index: c.index,
        victim: wasVictim,
        lost: d.lost.length,
        duplicates: d.duplicates,
        outOfOrder: d.outOfOrder,
        unacked: d.unacked,
        reconnected: wasVictim ? Boolean(back(c)) : null,
        recovered: next ? next.recovered : null,
        sameId: next ? next.id === before.get(c).id : null,
        reconnectMs: next ? next.at - killedAt : null,
        rejoinMs: next?.joinedAt ? next.joinedAt - killedAt : null,
        firstLost: d.lost[0],
      };
    });
    const sum = (k) => perClient.reduce((n, p) => n + p[k], 0);
    const vs = perClient.filter((p) => p.victim);
    return {
      signal: o.signal,
      transports: o.transports ?? "default",
      clients: o.clients,
      rate: o.rate,
      victim,
      victimClients: victims.length,
      posted: answers.length,
      answered,
      postErrors: answers.filter((a) => a.error).length,
      acked: acked.length,
      lost: sum("lost"),
      lostClients: perClient.filter((p) => p.lost > 0).length,
      lostOnSurvivors: perClient.filter((p) => !p.victim).reduce((n, p) => n + p.lost, 0),
      duplicates: sum("duplicates"),
      outOfOrder: sum("outOfOrder"),
      unackedArrived: sum("unacked"),
      reconnected: vs.filter((p) => p.reconnected).length,
      notReconnected: vs.filter((p) => !p.reconnected).length,
      recovered: vs.filter((p) => p.recovered).length,
      sameId: vs.filter((p) => p.sameId).length,
      worstReconnectMs: Math.max(0, ...vs.map((p) => p.reconnectMs ?? Infinity)),
      worstRejoinMs: Math.max(0, ...vs.map((p) => p.rejoinMs ?? Infinity)),
      perClient,
    };
  } finally {
    for (const c of clients) c.sock.disconnect();
  }
}
