// Static checks of the deployment files (no Docker engine here): the compose files, the two
// Dockerfiles and the nginx configuration. nginx itself validates the configuration (`nginx -t`)
// on a temporary copy in which the compose service names point at loopback ports.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, statSync, mkdtempSync, rmSync, readdirSync } from "node:fs";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { NGINX, prepareNginx, nginxTest as runNginxTest } from "./lib/nginx.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const read = (rel) => readFileSync(path.join(root, rel), "utf8");

// --- helpers ---------------------------------------------------------------------------------------

/** A compose file parsed as YAML, with `<<` merge keys resolved (compose uses YAML 1.1 merges). */
function compose(file) {
  return parse(read(file), { merge: true });
}

/** A service's environment as an object (compose accepts a map or a list of KEY=VALUE). */
function envOf(service) {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((e) => {
        const i = String(e).indexOf("=");
        return i < 0 ? [e, undefined] : [e.slice(0, i), e.slice(i + 1)];
      }),
    );
  }
  return env;
}

/** depends_on as [{ name, condition }] (compose accepts a list of names or a map). */
function dependsOn(service) {
  const d = service.depends_on;
  if (!d) return [];
  if (Array.isArray(d)) return d.map((name) => ({ name, condition: undefined }));
  return Object.entries(d).map(([name, v]) => ({ name, condition: v?.condition }));
}

/** A Dockerfile as stages of instructions ({ op, args }), continuation lines joined. */
function dockerfile(rel) {
  const lines = read(rel).split("\n");
  const instructions = [];
  let current = "";
  for (const raw of lines) {
    const line = raw.replace(/\r$/, "");
    if (!current && (/^\s*#/.test(line) || line.trim() === "")) continue;
    if (current && /^\s*#/.test(line)) continue; // comments inside continuations
    if (/\\\s*$/.test(line)) {
      current += line.replace(/\\\s*$/, " ");
      continue;
    }
    current += line;
    const m = current.trim().match(/^(\S+)\s*(.*)$/s);
    if (m) instructions.push({ op: m[1].toUpperCase(), args: m[2].trim() });
    current = "";
  }
  const stages = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") stages.push({ from: ins.args, instructions: [] });
    else if (stages.length) stages.at(-1).instructions.push(ins);
    else if (ins.op !== "ARG") throw new Error(`${rel}: ${ins.op} before the first FROM`);
  }
  return stages;
}

/** Variables the programs read: every "NAME" string literal in the configuration sources. */
function variablesRead() {
  const vars = new Set();
  for (const rel of ["src/config.rs", "src/webhook/config.rs"]) {
    for (const m of read(rel).matchAll(/"([A-Z][A-Z0-9_]*)"/g)) vars.add(m[1]);
  }
  // RUST_LOG is read by tracing-subscriber's EnvFilter::try_from_default_env in both mains.
  if (/try_from_default_env/.test(read("src/main.rs")) && /try_from_default_env/.test(read("webhook/src/main.rs"))) {
    vars.add("RUST_LOG");
  }
  return vars;
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, ...opts }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr), error }),
    );
  });
}

/** Text of the `upstream NAME { … }` blocks of an nginx config: { name: body }. */
function upstreams(conf) {
  const out = {};
  for (const m of conf.matchAll(/upstream\s+(\S+)\s*\{([^}]*)\}/g)) out[m[1]] = m[2];
  return out;
}

/** `server host:port` lines of an upstream body (comments removed). */
function upstreamServers(body) {
  return [...body.replace(/#[^\n]*/g, "").matchAll(/\bserver\s+([^\s;]+)/g)].map((m) => m[1]);
}

const FILES = ["docker-compose.yml", "docker-compose.cluster.yml"];
const INSTANCES = [1, 2, 3];
// Services whose images are built from this repository, and what runs in them.
const OWN_IMAGES = { Dockerfile: { binary: "sio-server", port: "3000", portVar: "PORT" }, "webhook/Dockerfile": { binary: "sio-webhook", port: "4000", portVar: "WEBHOOK_PORT" } };

// --- compose files -------------------------------------------------------------------------------

for (const file of FILES) {
  describe(file, () => {
    let doc, services;
    before(() => {
      doc = compose(file);
      services = doc?.services ?? {};
    });

    test("parses as YAML and has services", () => {
      assert.equal(typeof doc, "object");
      assert.ok(services && typeof services === "object", "a services map");
      for (const [name, svc] of Object.entries(services)) {
        assert.ok(svc && typeof svc === "object", `service ${name} is a map`);
        assert.ok(svc.image || svc.build, `service ${name} has an image or a build`);
      }
    });

    test("redis", () => {
      if (file === "docker-compose.yml") {
        const redis = services.redis;
        assert.ok(redis, "service redis");
        assert.match(String(redis.image), /^redis:/);
        assert.ok(redis.healthcheck?.test, "redis has a healthcheck");
      } else {
        for (const i of INSTANCES) {
          const r = services[`redis-${i}`];
          assert.ok(r, `service redis-${i}`);
          assert.match(String(r.image), /^redis:(7|8)/, "sharded pub/sub needs Redis >= 7");
          assert.ok(r.command.join(" ").includes("--cluster-enabled yes"), `redis-${i} runs in cluster mode`);
          assert.ok(r.healthcheck?.test, `redis-${i} has a healthcheck`);
        }
        const init = services["redis-cluster-init"];
        assert.ok(init, "service redis-cluster-init");
        for (const i of INSTANCES) assert.ok(String(init.command).includes(`redis-${i}:6379`), `init joins redis-${i}`);
      }
    });

    for (const i of INSTANCES) {
      test(`socketio-${i}`, () => {
        const svc = services[`socketio-${i}`];
        assert.ok(svc, `service socketio-${i}`);
        assert.equal(svc.container_name, `socketio-${i}`);
        const env = envOf(svc);
        assert.equal(env.INSTANCE_ID, `sio-${i}`);
        assert.equal(String(env.WEBHOOK_PORT), "off", "instances leave the webhook to the webhook service");
        assert.equal(String(env.PORT ?? "3000"), "3000", "nginx proxies to socketio-N:3000");
        assert.ok(svc.build, "built from this repository");
        assert.equal(svc.build.dockerfile ?? "Dockerfile", "Dockerfile");
        if (file === "docker-compose.yml") {
          assert.equal(env.REDIS_HOST, "redis", "REDIS_HOST names the redis service");
          assert.equal(String(env.REDIS_PORT), "6379");
          assert.equal(env.REDIS_ADAPTER, "streams", "the default cluster loses nothing on failover");
        } else {
          assert.equal(env.REDIS_MODE, "cluster");
          assert.equal(env.REDIS_ADAPTER, "sharded");
          const nodes = JSON.parse(env.REDIS_NODES);
          assert.deepEqual(
            nodes.map((n) => `${n.host}:${n.port}`),
            INSTANCES.map((k) => `redis-${k}:6379`),
          );
          for (const n of nodes) assert.ok(services[n.host], `REDIS_NODES host ${n.host} is a service`);
        }
        assert.ok(
          Object.keys(env).some((k) => k.startsWith("REDIS_")),
          "REDIS_* set (else the instance runs the in-memory adapter and the cluster does not share rooms)",
        );
      });
    }

    test("instance ids are distinct and usable as sid prefixes (no dots or spaces)", () => {
      const ids = INSTANCES.map((i) => envOf(services[`socketio-${i}`]).INSTANCE_ID);
      assert.equal(new Set(ids).size, ids.length);
      for (const id of ids) assert.match(id, /^[^.\s]{1,64}$/);
    });

    test("nginx: port 3000, mounts nginx.conf and conf.d (which exist)", () => {
      const nginx = services.nginx;
      assert.ok(nginx, "service nginx");
      assert.match(String(nginx.image), /^nginx:/);
      assert.ok((nginx.ports ?? []).map(String).includes("3000:3000"), `ports ${JSON.stringify(nginx.ports)}`);
      const volumes = (nginx.volumes ?? []).map(String);
      const mounts = Object.fromEntries(
        volumes.map((v) => {
          const [src, dst] = v.split(":");
          return [dst, src];
        }),
      );
      assert.equal(mounts["/etc/nginx/nginx.conf"], "./nginx/nginx.conf", `volumes ${JSON.stringify(volumes)}`);
      assert.equal(mounts["/etc/nginx/conf.d"], "./nginx/conf.d", `volumes ${JSON.stringify(volumes)}`);
      assert.ok(statSync(path.join(root, "nginx/nginx.conf")).isFile());
      assert.ok(statSync(path.join(root, "nginx/conf.d")).isDirectory());
      assert.ok(readdirSync(path.join(root, "nginx/conf.d")).some((f) => f.endsWith(".conf")), "conf.d holds a .conf");
      for (const v of volumes) assert.ok(existsSync(path.join(root, v.split(":")[0])), `volume source ${v} exists`);
      assert.ok(nginx.healthcheck?.test, "nginx has a healthcheck (the webhook waits for it)");
    });

    test("webhook: port 4000, SOCKETIO_URL points at nginx", () => {
      const wh = services.webhook;
      assert.ok(wh, "service webhook");
      assert.ok((wh.ports ?? []).map(String).includes("4000:4000"), `ports ${JSON.stringify(wh.ports)}`);
      assert.equal(wh.build?.dockerfile, "webhook/Dockerfile");
      const env = envOf(wh);
      assert.equal(String(env.WEBHOOK_PORT ?? "4000"), "4000");
      assert.ok(env.SOCKETIO_URL, "SOCKETIO_URL set");
      const url = new URL(env.SOCKETIO_URL);
      assert.equal(url.protocol, "http:");
      assert.ok(services[url.hostname], `SOCKETIO_URL host ${url.hostname} is a service`);
      assert.equal(url.hostname, "nginx", "the webhook goes through nginx, so it survives the loss of one instance");
      assert.equal(url.port, "3000");
    });

    test("every depends_on names an existing service and waits on a health condition", () => {
      const healthy = (name) => {
        const svc = services[name];
        if (svc.healthcheck?.test && !svc.healthcheck.disable) return true;
        if (svc.build) {
          const stages = dockerfile(svc.build.dockerfile ?? "Dockerfile");
          return stages.at(-1).instructions.some((i) => i.op === "HEALTHCHECK" && !/^NONE\b/i.test(i.args));
        }
        return false;
      };
      let count = 0;
      for (const [name, svc] of Object.entries(services)) {
        for (const dep of dependsOn(svc)) {
          count++;
          assert.ok(services[dep.name], `${name} depends on ${dep.name}, which is not a service`);
          assert.ok(
            ["service_healthy", "service_completed_successfully"].includes(dep.condition),
            `${name} → ${dep.name}: condition ${dep.condition} (expected service_healthy or service_completed_successfully)`,
          );
          if (dep.condition === "service_healthy") assert.ok(healthy(dep.name), `${name} waits for ${dep.name} to be healthy, but it has no healthcheck`);
          if (dep.condition === "service_completed_successfully") assert.ok(!services[dep.name].restart, `${dep.name} is one-shot`);
        }
      }
      assert.ok(count >= 5);
      for (const i of INSTANCES) {
        assert.ok(dependsOn(services.nginx).some((d) => d.name === `socketio-${i}`), `nginx waits for socketio-${i}`);
      }
      assert.ok(dependsOn(services.webhook).some((d) => d.name === "nginx"), "webhook waits for nginx");
    });

    test("every build context and Dockerfile exists", () => {
      let count = 0;
      for (const [name, svc] of Object.entries(services)) {
        if (!svc.build) continue;
        count++;
        const build = typeof svc.build === "string" ? { context: svc.build } : svc.build;
        const context = path.resolve(root, build.context ?? ".");
        assert.ok(existsSync(context) && statSync(context).isDirectory(), `${name}: context ${build.context}`);
        const df = path.resolve(context, build.dockerfile ?? "Dockerfile");
        assert.ok(existsSync(df) && statSync(df).isFile(), `${name}: dockerfile ${build.dockerfile}`);
        assert.ok(Object.keys(OWN_IMAGES).includes(path.relative(root, df)), `${name}: ${df} is one of ours`);
      }
      assert.equal(count, 4, "socketio-1..3 and webhook are built");
    });

    test("every environment variable set for our programs is one they read", () => {
      const known = variablesRead();
      const unknown = [];
      for (const [name, svc] of Object.entries(services)) {
        if (!svc.build) continue; // redis and nginx images have their own variables
        for (const k of Object.keys(envOf(svc))) if (!known.has(k)) unknown.push(`${name}: ${k}`);
      }
      assert.deepEqual(unknown, [], `variables no program reads (known: ${[...known].sort().join(" ")})`);
    });
  });
}

// --- Dockerfiles -----------------------------------------------------------------------------------

for (const [rel, { binary, port, portVar }] of Object.entries(OWN_IMAGES)) {
  describe(rel, () => {
    test("multi-stage; the runtime stage copies the binary from the build stage", () => {
      const stages = dockerfile(rel);
      assert.ok(stages.length >= 2, `${stages.length} stage(s)`);
      const buildStage = stages[0].from.match(/\bAS\s+(\S+)/i)?.[1];
      assert.ok(buildStage, "the build stage is named");
      const final = stages.at(-1);
      const copy = final.instructions.find((i) => i.op === "COPY" && i.args.includes(`--from=${buildStage}`));
      assert.ok(copy, "COPY --from=<build stage>");
      assert.ok(copy.args.includes(`/target/release/${binary}`), `copies target/release/${binary}: ${copy.args}`);
      const cmd = final.instructions.filter((i) => i.op === "CMD" || i.op === "ENTRYPOINT").at(-1);
      assert.ok(cmd, "CMD or ENTRYPOINT");
      assert.ok(cmd.args.includes(binary), `runs ${binary}: ${cmd.args}`);
      const cargo = stages[0].instructions.filter((i) => i.op === "RUN" && i.args.includes("cargo build")).map((i) => i.args).join(" ");
      assert.match(cargo, /--release/);
      assert.match(cargo, /--locked/);
      assert.ok(cargo.includes(binary), `the build stage builds ${binary}: ${cargo}`);
    });

    test("runs as a non-root USER", () => {
      const final = dockerfile(rel).at(-1);
      const user = final.instructions.filter((i) => i.op === "USER").at(-1);
      assert.ok(user, "USER in the runtime stage");
      const name = user.args.split(":")[0];
      assert.ok(!["root", "0"].includes(name), `USER ${user.args}`);
      const created = final.instructions.some((i) => i.op === "RUN" && new RegExp(`(useradd|adduser)\\b[^&|;]*\\b${name}\\b`).test(i.args));
      assert.ok(created || /^\d+$/.test(name), `user ${name} is created in the runtime stage`);
    });

    test(`HEALTHCHECK on /health and EXPOSE ${port}`, () => {
      const final = dockerfile(rel).at(-1);
      const hc = final.instructions.filter((i) => i.op === "HEALTHCHECK").at(-1);
      assert.ok(hc, "HEALTHCHECK in the runtime stage");
      assert.match(hc.args, /CMD\b/);
      assert.match(hc.args, /\/health\b/);
      assert.ok(hc.args.includes(`\${${portVar}}`) || hc.args.includes(`:${port}/`), `checks the service port: ${hc.args}`);
      const tool = hc.args.match(/CMD\s+(?:\[\s*")?(\S+?)"?[\s,]/)?.[1];
      if (tool === "curl" || tool === "wget") {
        const installed = final.instructions.some((i) => i.op === "RUN" && i.args.includes(tool));
        assert.ok(installed, `${tool} is installed in the runtime stage`);
      }
      const exposed = final.instructions.filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(/\s+/)).map((p) => p.split("/")[0]);
      assert.ok(exposed.includes(port), `EXPOSE ${exposed.join(" ")}`);
      const env = final.instructions.filter((i) => i.op === "ENV").map((i) => i.args).join(" ");
      if (env.includes(`${portVar}=`)) assert.ok(env.includes(`${portVar}=${port}`), `ENV ${env}`);
      assert.ok(!/HOST=127\.0\.0\.1/.test(env), "listens on all interfaces in the container");
    });

    test("the ENV variables are ones the program reads", () => {
      const known = variablesRead();
      const final = dockerfile(rel).at(-1);
      const names = final.instructions
        .filter((i) => i.op === "ENV")
        .flatMap((i) => [...i.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]));
      assert.ok(names.length > 0);
      assert.deepEqual(names.filter((n) => !known.has(n)), []);
    });
  });
}

test(".dockerignore keeps target/ and node_modules out of the build context", () => {
  const lines = read(".dockerignore").split("\n").map((l) => l.trim());
  assert.ok(lines.some((l) => /^\/?target\/?$/.test(l)), `.dockerignore: ${lines.join(", ")}`);
  assert.ok(lines.some((l) => /node_modules/.test(l)));
});

// --- nginx -----------------------------------------------------------------------------------------

describe("nginx configuration", () => {
  const conf = () => read("nginx/conf.d/socketio.conf");
  let work;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), "sio-nginx-test-"));
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Copies nginx/ (or with `alternative` as conf.d/socketio.conf) into work/label. */
  async function prepare(label, alternative) {
    return (await prepareNginx(path.join(work, label), { alternative })).dir;
  }

  async function nginxTest(dir) {
    const res = await runNginxTest(dir);
    assert.equal(res.code, 0, `nginx -t failed:\n${res.out}`);
    assert.match(res.out, /syntax is ok/);
    assert.match(res.out, /test is successful/);
  }

  test("nginx -t passes on conf.d/socketio.conf", { timeout: 120_000 }, async () => {
    assert.ok(existsSync(NGINX), `nginx not found at ${NGINX}`);
    await nginxTest(await prepare("sid-map"));
  });

  test("nginx -t passes on the ip-hash alternative", { timeout: 120_000 }, async () => {
    assert.ok(existsSync(path.join(root, "nginx/alternatives/ip-hash.conf")));
    await nginxTest(await prepare("ip-hash", "alternatives/ip-hash.conf"));
  });

  test("the map routes sio-N. sid prefixes to the upstream holding socketio-N only", () => {
    const text = conf().replace(/#[^\n]*/g, "");
    const map = text.match(/map\s+\$sio_sid\s+\$(\w+)\s*\{([^}]*)\}/);
    assert.ok(map, "a map on $sio_sid");
    const [, variable, body] = map;
    const entries = [...body.matchAll(/^\s*("[^"]*"|\S+)\s+(\S+)\s*;/gm)].map((m) => [m[1].replace(/^"|"$/g, ""), m[2]]);
    const routes = Object.fromEntries(entries);
    const ups = upstreams(text);
    assert.ok(routes.default, "a default route");
    assert.deepEqual(
      upstreamServers(ups[routes.default]).sort(),
      INSTANCES.map((i) => `socketio-${i}:3000`),
      "the default (handshakes without a sid) balances over all instances",
    );
    assert.doesNotMatch(ups[routes.default], /\bip_hash\b/, "no ip_hash for new handshakes");
    // Every instance id of the compose file gets its own route.
    const ids = INSTANCES.map((i) => envOf(compose("docker-compose.yml").services[`socketio-${i}`]).INSTANCE_ID);
    for (const [n, id] of ids.entries()) {
      const i = n + 1;
      const matching = entries.filter(([k]) => k.startsWith("~") && new RegExp(k.slice(1)).test(`${id}.AbCdEfGhIjKlMnOpQrSt`));
      assert.equal(matching.length, 1, `exactly one map entry matches a sid of ${id}: ${JSON.stringify(matching)}`);
      const upstream = matching[0][1];
      assert.deepEqual(upstreamServers(ups[upstream] ?? ""), [`socketio-${i}:3000`], `${id} → ${upstream}`);
      // The prefix is anchored and ends at the separator: sio-1 must not catch sio-10… or xsio-1.
      assert.ok(!new RegExp(matching[0][0].slice(1)).test(`${id}0.AbCdEfGhIjKlMnOpQrSt`), `${matching[0][0]} is not anchored at the dot`);
      assert.ok(!new RegExp(matching[0][0].slice(1)).test(`x${id}.AbCdEfGhIjKlMnOpQrSt`), `${matching[0][0]} is not anchored at the start`);
    }
    // A sid without a known prefix (or no sid) takes the default.
    assert.equal(entries.filter(([k]) => k.startsWith("~") && new RegExp(k.slice(1)).test("AbCdEfGhIjKlMnOpQrSt")).length, 0);
    // The Socket.IO location proxies through the mapped variable, with WebSocket upgrades.
    const loc = text.match(/location\s+\/socket\.io\/\s*\{([^}]*)\}/);
    assert.ok(loc, "location /socket.io/");
    assert.match(loc[1], new RegExp(`proxy_pass\\s+http://\\$${variable}\\s*;`));
    // Headers are set once at server level: a location with a proxy_set_header of its own would
    // drop all of them (nginx inherits the directive only when a level sets none).
    const locations = [...text.matchAll(/location\s+[^{]*\{([^}]*)\}/g)].map((m) => m[1]);
    assert.ok(locations.every((l) => !/proxy_set_header/.test(l)), "no proxy_set_header inside a location");
    const serverLevel = text.replace(/location\s+[^{]*\{[^}]*\}/g, "");
    assert.match(serverLevel, /proxy_http_version\s+1\.1/);
    assert.match(serverLevel, /proxy_set_header\s+Upgrade\s+\$http_upgrade/);
    assert.match(serverLevel, /proxy_set_header\s+Connection\s+\$connection_upgrade/);
    assert.match(loc[1], /proxy_buffering\s+off/);
    const readTimeout = Number(loc[1].match(/proxy_read_timeout\s+(\d+)s/)?.[1]);
    assert.ok(readTimeout > 45, `proxy_read_timeout ${readTimeout}s exceeds pingInterval + pingTimeout (45 s)`);
  });

  test("nginx listens on 3000 and answers /nginx-health itself", () => {
    for (const f of ["nginx/conf.d/socketio.conf", "nginx/alternatives/ip-hash.conf"]) {
      const text = read(f);
      assert.match(text, /listen\s+3000(\s+backlog=\d+)?\s*;/, f);
      assert.match(text, /location\s+=\s+\/nginx-health/, f);
    }
    assert.match(read("nginx/nginx.conf"), /include\s+conf\.d\/\*\.conf\s*;/);
  });

  test("scripts/cluster runs the same nginx files as docker compose (no configuration of its own)", () => {
    // scripts/cluster writes them through lib.sh's cluster_nginx_config (scripts/bench uses it too).
    assert.match(read("scripts/cluster"), /cluster_nginx_config/);
    const script = read("scripts/lib.sh");
    assert.match(script, /nginx\/conf\.d\/socketio\.conf/);
    assert.match(script, /nginx\/nginx\.conf/);
    assert.doesNotMatch(script, /\bupstream\s+\w+\s*\{|\bproxy_pass\b|\blimit_(req|conn)\b/, "no nginx directives written by the script itself");
  });

  test("$sio_sid is the sid as sio-server reads it: the last parameter named exactly sid", () => {
    const body = conf().replace(/#[^\n]*/g, "").match(/map\s+\$args\s+\$sio_sid\s*\{([^}]*)\}/)?.[1];
    assert.ok(body, "map $args $sio_sid");
    const [, source, value] = body.match(/"~([^"]+)"\s+\$(\w+)\s*;/);
    assert.match(body, /default\s+""\s*;/);
    const re = new RegExp(source); // PCRE and JS agree on this syntax (named groups, (?:…))
    const nginxSid = (args) => re.exec(args)?.groups?.[value] ?? "";
    // sio-server's Query::parse: split on &, the key before the first =, the last sid wins.
    const serverSid = (args) => {
      let sid = "";
      for (const pair of args.split("&")) {
        const i = pair.indexOf("=");
        if ((i < 0 ? pair : pair.slice(0, i)) === "sid") sid = i < 0 ? "" : pair.slice(i + 1);
      }
      return sid;
    };
    const cases = [
      "EIO=4&transport=polling",
      "EIO=4&transport=polling&sid=sio-2.AbC",
      "sid=sio-2.AbC&EIO=4&transport=polling",
      "EIO=4&transport=polling&SID=sio-1.x",
      "sid=sio-1.x&EIO=4&transport=polling&sid",
      "sid=sio-1.x&EIO=4&transport=polling&sid=",
      "sid=&sid=sio-3.y",
      "xsid=sio-1.x&sidx=sio-2.y&EIO=4",
      "sid=sio-1.a=b&t=1",
      "sid",
      "",
    ];
    for (const args of cases) assert.equal(nginxSid(args), serverSid(args), `?${args}`);
  });

  test("new sessions: round-robin in a shared zone, on an upstream of their own (issue #14)", () => {
    const text = conf().replace(/#[^\n]*/g, "");
    const routes = Object.fromEntries([...text.match(/map\s+\$sio_sid\s+\$sio_upstream\s*\{([^}]*)\}/)[1].matchAll(/^\s*("[^"]*"|\S+)\s+(\S+)\s*;/gm)].map((m) => [m[1], m[2]]));
    const ups = upstreams(text);
    const handshakes = ups[routes.default];
    assert.match(handshakes, /^\s*zone\s+\S+\s+\d+k\s*;/m, "a zone: one rotation shared by every worker");
    assert.doesNotMatch(handshakes, /\b(least_conn|ip_hash|hash|random)\b/, "round-robin (least_conn cannot see the sid-routed connections)");
    const pass = (re) => text.match(re)?.[1]?.match(/proxy_pass\s+http:\/\/([^\s;]+)\s*;/)?.[1];
    const pages = pass(/location\s+\/\s*\{([^}]*)\}/);
    assert.ok(pages && pages !== routes.default, `the page goes to its own upstream (${pages}), not ${routes.default}`);
    assert.deepEqual(upstreamServers(ups[pages]).sort(), INSTANCES.map((i) => `socketio-${i}:3000`));
    // The client bundle too: every file name sio-server serves is caught by a regex location to
    // the page upstream, so it never takes a turn in the handshake rotation.
    const bundle = [...text.matchAll(/location\s+~\s+(\S+)\s*\{([^}]*)\}/g)].find((m) => new RegExp(m[1]).test("/socket.io/socket.io.min.js"));
    assert.ok(bundle, "a regex location for the client bundle");
    assert.match(bundle[2], new RegExp(`proxy_pass\\s+http://${pages}\\s*;`));
    const names = [...read("build.rs").matchAll(/"(socket\.io[^"]*\.js(?:\.map)?)"/g)].map((m) => m[1]);
    assert.ok(names.length >= 4, `bundle names from build.rs: ${names}`);
    for (const n of names) assert.match(`/socket.io/${n}`, new RegExp(bundle[1]), n);
    for (const p of ["/socket.io/", "/socket.io/socket.io", "/socket.io/other.js"]) assert.doesNotMatch(p, new RegExp(bundle[1]), p);
  });

  test("X-Forwarded-For is the address nginx saw, not appended to the client's (issue #13)", () => {
    for (const f of ["nginx/conf.d/socketio.conf", "nginx/alternatives/ip-hash.conf"]) {
      const text = read(f).replace(/#[^\n]*/g, "");
      assert.doesNotMatch(text, /\$proxy_add_x_forwarded_for/, f);
      const xff = [...text.matchAll(/proxy_set_header\s+X-Forwarded-For\s+(\S+?);/g)].map((m) => m[1]);
      assert.ok(xff.length >= 1 && xff.every((v) => v === "$remote_addr"), `${f}: ${xff}`);
    }
  });

  test("/metrics only from loopback and private networks", () => {
    for (const f of ["nginx/conf.d/socketio.conf", "nginx/alternatives/ip-hash.conf"]) {
      const body = read(f).replace(/#[^\n]*/g, "").match(/location\s+=\s+\/metrics\s*\{([^}]*)\}/)?.[1];
      assert.ok(body, `${f}: location = /metrics`);
      const rules = [...body.matchAll(/^\s*(allow|deny)\s+(\S+)\s*;/gm)].map((m) => `${m[1]} ${m[2]}`);
      assert.deepEqual(rules, ["allow 127.0.0.0/8", "allow 10.0.0.0/8", "allow 172.16.0.0/12", "allow 192.168.0.0/16", "allow ::1", "deny all"], f);
    }
  });

  test("/socket.io/ has per-address limit_conn (503) and a handshake limit_req (429)", () => {
    const text = conf().replace(/#[^\n]*/g, "");
    const loc = text.match(/location\s+\/socket\.io\/\s*\{([^}]*)\}/)[1];
    const conn = loc.match(/limit_conn\s+(\S+)\s+(\d+)\s*;/);
    assert.ok(conn, "limit_conn in /socket.io/");
    assert.match(text, new RegExp(`limit_conn_zone\\s+\\$binary_remote_addr\\s+zone=${conn[1]}:`));
    assert.ok(Number(conn[2]) >= 600, `limit_conn ${conn[2]} leaves room for 300 clients (up to 2 connections each)`);
    assert.match(loc, /limit_conn_status\s+503\s*;/);
    const req = loc.match(/limit_req\s+zone=(\S+)\s+burst=(\d+)\s+nodelay\s*;/);
    assert.ok(req, "limit_req … nodelay in /socket.io/");
    assert.ok(Number(req[2]) >= 300, `burst ${req[2]} lets 300 clients connect at once`);
    assert.match(loc, /limit_req_status\s+429\s*;/);
    const zone = text.match(new RegExp(`limit_req_zone\\s+\\$(\\w+)\\s+zone=${req[1]}:\\S+\\s+rate=(\\d+)r/s`));
    assert.ok(zone, "the limit_req zone");
    // The key is the address for sid-less requests (handshakes) only; an empty key is not limited.
    const keyMap = text.match(new RegExp(`map\\s+\\$sio_sid\\s+\\$${zone[1]}\\s*\\{([^}]*)\\}`));
    assert.ok(keyMap, `$${zone[1]} is a map on $sio_sid`);
    assert.match(keyMap[1], /""\s+\$binary_remote_addr\s*;/);
    assert.match(keyMap[1], /default\s+""\s*;/);
  });
});
