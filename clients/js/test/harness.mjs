// Test harness: real signald processes (built from this repository), a
// private redis-server, a TCP proxy that can cut connections, and SDK
// clients whose every frame is recorded for the schema check
// (checkRecordedFrames). Waits are on events; every timeout is a failure
// deadline, never a pause.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import readline from "node:readline";

import { SignalingClient } from "../dist/node.js";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** A failure deadline for anything awaited; generous for a busy 2-core machine. */
export const DEADLINE = Number(process.env.SIGNALD_TEST_DEADLINE_MS || 20_000);

/** The stores to run on: SIGNALD_TEST_BACKENDS=memory,redis (the default: both). */
export const backends = (process.env.SIGNALD_TEST_BACKENDS || "memory,redis").split(",").filter(Boolean);

export const DEV_SECRET = "signald-dev-secret";
export const DEV_ADMIN_TOKEN = "signald-dev-admin-token";

let builtBinary;

/** The signald binary: $SIGNALD_BIN, or built once per test process. */
export function signaldBinary() {
  if (process.env.SIGNALD_BIN) return process.env.SIGNALD_BIN;
  if (!builtBinary) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "signald-js-"));
    builtBinary = path.join(dir, "signald");
    execFileSync("go", ["build", "-o", builtBinary, "./cmd/signald"], { cwd: repoRoot, stdio: "inherit" });
  }
  return builtBinary;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when p does, or rejects after ms saying what was awaited. */
export function within(p, what, ms = DEADLINE) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      resolve(d.toString().startsWith("+PONG"));
      s.destroy();
    });
  });
}

/** Starts a private redis-server on a free loopback port; nothing is written to disk. */
export async function startRedis(t) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    let exited = false;
    proc.on("exit", () => (exited = true));
    const started = Date.now();
    while (!exited && Date.now() - started < DEADLINE) {
      if (await redisPing(port)) {
        const stop = () => {
          if (!exited) proc.kill("SIGKILL");
        };
        t?.after?.(stop);
        return { url: `redis://127.0.0.1:${port}`, port, stop };
      }
      await new Promise((r) => setTimeout(r, 50)); // polling a port that cannot be awaited otherwise
    }
    proc.kill("SIGKILL");
  }
  throw new Error("could not start redis-server (is it installed? scripts/test-js.sh installs it)");
}

/**
 * Starts signald --dev on 127.0.0.1:port (0: a free one) with the store of
 * backend, and resolves once its log says "signald listening".
 */
export async function startSignald({ backend = "memory", redisURL, prefix, port = 0, args = [] } = {}) {
  const argv = ["serve", "--dev", "--addr", `127.0.0.1:${port}`, "--log-format", "json", ...args];
  if (backend === "redis") {
    argv.push("--redis-url", redisURL, "--redis-prefix", prefix ?? `js:${Math.random().toString(36).slice(2)}:`);
  }
  const proc = spawn(signaldBinary(), argv, { stdio: ["ignore", "ignore", "pipe"] });
  const logs = [];
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const addr = await within(
    new Promise((resolve, reject) => {
      const rl = readline.createInterface({ input: proc.stderr });
      rl.on("line", (line) => {
        logs.push(line);
        try {
          const l = JSON.parse(line);
          if (l.msg === "signald listening") resolve(l.addr);
        } catch {
          // not JSON: keep it for the failure message
        }
      });
      exited.then(({ code }) => reject(new Error(`signald exited (${code}) before listening:\n${logs.join("\n")}`)));
    }),
    "signald listening",
  );
  const [, actualPort] = addr.split(/:(?=\d+$)/);
  const s = {
    proc,
    logs,
    exited,
    port: Number(actualPort),
    http: `http://${addr}`,
    ws: `ws://${addr}/v1/ws`,
    backend,
    /** Stops it with signal and waits for the exit. */
    async kill(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return within(exited, `signald exit after ${signal}`);
    },
    /** SIGSTOP: it holds its sockets but answers nothing, until resume(). */
    async pause() {
      proc.kill("SIGSTOP");
      // The stop lands asynchronously: wait until the kernel says it has.
      const stopped = async () => {
        while (!/^State:\s+T/m.test(readFileSync(`/proc/${proc.pid}/status`, "utf8"))) {
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      await within(stopped(), "signald stopped");
    },
    resume() {
      proc.kill("SIGCONT");
    },
    async token(user) {
      const r = await fetch(`${s.http}/demo/token?user=${encodeURIComponent(user)}`);
      if (r.status !== 200) throw new Error(`GET /demo/token: ${r.status} ${await r.text()}`);
      return (await r.json()).userSig;
    },
    async admin(method, p, body) {
      const r = await fetch(`${s.http}${p}`, {
        method,
        headers: { Authorization: `Bearer ${DEV_ADMIN_TOKEN}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : null;
    },
  };
  return s;
}

/**
 * Starts a signald on backend, with its own Redis in Redis mode; stop()
 * stops both (t.after does, when t is given).
 */
export async function startStack(t, backend, args = []) {
  let redis;
  if (backend === "redis") redis = await startRedis();
  const prefix = `js:${Math.random().toString(36).slice(2)}:`;
  const server = await startSignald({ backend, redisURL: redis?.url, prefix, args });
  const stack = {
    redis,
    server,
    /** Stops the server (if running) and starts it again on the same port and store. */
    async restart(signal = "SIGTERM") {
      await stack.server.kill(signal);
      stack.server = await startSignald({ backend, redisURL: redis?.url, prefix, port: stack.server.port, args });
      return stack.server;
    },
    async stop() {
      await stack.server.kill("SIGTERM").catch(() => stack.server.proc.kill("SIGKILL"));
      redis?.stop();
    },
  };
  t?.after?.(() => stack.stop());
  return stack;
}

/** An HS256 userSig minted here, for claims the server would not mint (an expired one). */
export function mintToken(user, { expiresIn = 3600, secret = DEV_SECRET } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ sub: user, iat: now - 10, exp: now + expiresIn });
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

// ---- frames, for the schema check ----

/** Every frame any client made by newClient sent or received: {dir, frame, op}. */
export const recordedFrames = [];

/**
 * A SignalingClient with short backoff for tests, recording its frames
 * and events. options override the defaults.
 */
let clients = 0;

export function newClient(url, options = {}) {
  const ops = new Map(); // request id → op, to check each reply's data
  const serial = ++clients;
  const log = new EventLog();
  const client = new SignalingClient({
    url,
    requestTimeout: 15_000,
    reconnect: { initialDelay: 100, maxDelay: 1000, policyDelay: 1500 },
    ...options,
    onFrame(dir, frame) {
      if (dir === "out") ops.set(frame.id, frame.op);
      const op = dir === "out" ? frame.op : ops.get(frame.id);
      recordedFrames.push({ client: serial, dir, frame: structuredClone(frame), op });
      options.onFrame?.(dir, frame);
    },
  });
  client.addSignalingListener(log.listener);
  client.addConnectionListener({
    onConnectionStateChanged: (c) => log.push("state", c),
    onUserSigExpired: () => log.push("userSigExpired", {}),
  });
  client.log = log;
  return client;
}

/** Logs user in on server with a fresh client; the client is logged out after the test. */
export async function loggedIn(t, server, user, options = {}, loginOptions = {}) {
  const c = newClient(options.url ?? server.ws, options);
  await c.login(user, await server.token(user), loginOptions);
  t.after(() => c.logout());
  return c;
}

/**
 * What a client's listeners were told, in order: each entry is
 * {kind, args}, kind an event name ("onReceiveNewInvitation"), "state" or
 * "userSigExpired".
 */
export class EventLog {
  constructor() {
    this.entries = [];
    this.waiters = [];
    const self = this;
    this.listener = new Proxy(
      {},
      {
        get(_, name) {
          if (typeof name !== "string" || !name.startsWith("on")) return undefined;
          return (...args) => self.push(name, args);
        },
      },
    );
  }

  push(kind, args) {
    this.entries.push({ kind, args });
    for (const w of [...this.waiters]) w();
  }

  /** Entries of kind (whose args match pred). */
  all(kind, pred = () => true) {
    return this.entries.filter((e) => e.kind === kind && pred(e.args)).map((e) => e.args);
  }

  /** Resolves with the args of the first entry of kind matching pred, now or later. */
  wait(kind, pred = () => true, what = kind) {
    return within(
      new Promise((resolve) => {
        const check = () => {
          const e = this.entries.find((e) => e.kind === kind && pred(e.args));
          if (e) {
            this.waiters = this.waiters.filter((w) => w !== check);
            resolve(e.args);
          }
        };
        this.waiters.push(check);
        check();
      }),
      `waiting for ${what}`,
    );
  }

  /** Waits for an event about inviteID. */
  event(kind, inviteID) {
    return this.wait(kind, (a) => a[0] === inviteID, `${kind} for ${inviteID}`);
  }

  /** Waits for a state change matching pred (on the change object). */
  state(pred, what) {
    return this.wait("state", pred, what);
  }
}

/**
 * A TCP proxy in front of signald whose connections the test can cut, as a
 * mobile network does: down() drops them all and refuses new ones until
 * up().
 */
export async function startProxy(t, targetPort) {
  const sockets = new Set();
  let isUp = true;
  const server = net.createServer((client) => {
    if (!isUp) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    ws: `ws://127.0.0.1:${port}/v1/ws`,
    down() {
      isUp = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    up() {
      isUp = true;
    },
    get connections() {
      return sockets.size / 2;
    },
  };
}

