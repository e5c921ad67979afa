// The demo page in headless Chromium (Debian's, driven by playwright-core),
// served by a real signald (--dev), on the embedded store and on Redis:
// people in separate browser contexts ring each other, answer, cancel, let
// it time out, call a group, and lose and regain their network.
// Screenshots go to clients/js/test-output/. Every wait is on the page's
// state; the timeouts are failure deadlines.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { DEADLINE, backends, signaldBinary, startStack } from "../test/harness.mjs";

const outDir = fileURLToPath(new URL("../test-output/", import.meta.url));
mkdirSync(outDir, { recursive: true });

const chromiumPath =
  process.env.CHROMIUM_PATH || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

let browser;
before(async () => {
  assert.ok(chromiumPath, "no Chromium: install Debian's chromium package (scripts/test-js.sh does), or set CHROMIUM_PATH");
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
});
after(() => browser?.close());

/** A person: their own browser context (cookies, storage, network) and page. */
async function person(server, name, t) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const page = await context.newPage();
  page.setDefaultTimeout(DEADLINE);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors.map(String), [], `${name}'s page threw`);
  });
  await page.goto(`${server.http}/demo/?user=${encodeURIComponent(name)}`);
  await page.locator("body[data-ready=true]").waitFor();
  await page.getByTestId("signin").click();
  await connected(page);
  assert.equal(await page.getByTestId("me").textContent(), name);
  return { name, context, page };
}

function connected(page) {
  return page.getByTestId("connection").filter({ hasText: "Connected" }).waitFor();
}

async function call(from, to, { ringFor } = {}) {
  if (ringFor) await from.page.getByTestId("ring-for").fill(String(ringFor));
  await from.page.getByTestId("callee").fill(to.name);
  await from.page.getByTestId("call").click();
  await from.page.getByTestId("outgoing-status").filter({ hasText: "Ringing" }).waitFor();
  const panel = to.page.getByTestId("incoming").filter({ hasText: `${from.name} is calling you` });
  await panel.waitFor();
  return panel;
}

function outgoingIs(p, status) {
  return p.page.locator(`[data-testid=outgoing][data-status="${status}"]`).waitFor();
}

function incomingIs(panel, text) {
  return panel.getByTestId("incoming-status").filter({ hasText: text }).waitFor();
}

async function shot(p, name) {
  await p.page.screenshot({ path: `${outDir}${name}.png` });
}

for (const backend of backends) {
  describe(`demo page in Chromium (${backend})`, () => {
    let stack;
    const server = () => stack.server;
    before(async () => {
      stack = await startStack(null, backend);
    });
    after(() => stack?.stop());

    test("ring and accept: the callee sees a countdown, the caller sees Accepted", async (t) => {
      const alice = await person(server(), `alice-${backend}`, t);
      const bob = await person(server(), `bob-${backend}`, t);
      const panel = await call(alice, bob);
      // The countdown runs to the server's deadline (30 s by default).
      const countdown = panel.getByTestId("incoming-countdown");
      await countdown.filter({ hasText: /^(2\d|30) s$/ }).waitFor();
      await shot(bob, `${backend}-accept-1-incoming`);
      await panel.getByTestId("accept").click();
      await incomingIs(panel, "Accepted");
      await outgoingIs(alice, "Accepted");
      await alice.page.getByTestId("history").filter({ hasText: `Call to ${bob.name}` }).filter({ hasText: "Accepted" }).waitFor();
      await shot(alice, `${backend}-accept-2-caller`);
      // The frame log shows the protocol at work.
      await alice.page.getByTestId("frames").filter({ hasText: "onInviteeAccepted" }).waitFor();
    });

    test("ring the other way and reject: the caller sees Rejected", async (t) => {
      const alice = await person(server(), `alice2-${backend}`, t);
      const bob = await person(server(), `bob2-${backend}`, t);
      const panel = await call(bob, alice);
      await panel.getByTestId("reject").click();
      await incomingIs(panel, "Rejected");
      await outgoingIs(bob, "Rejected");
      await shot(bob, `${backend}-reject-caller`);
    });

    test("cancel: the callee's panel turns into a missed call", async (t) => {
      const alice = await person(server(), `alice3-${backend}`, t);
      const bob = await person(server(), `bob3-${backend}`, t);
      const panel = await call(alice, bob);
      await alice.page.getByTestId("cancel").click();
      await outgoingIs(alice, "Cancelled");
      await incomingIs(panel, "Missed call");
      assert.equal(await panel.getByTestId("accept").isVisible(), false, "a cancelled call cannot be accepted");
      await shot(bob, `${backend}-cancel-callee`);
    });

    test("no answer: the server's timeout ends the call on both sides", async (t) => {
      const alice = await person(server(), `alice4-${backend}`, t);
      const bob = await person(server(), `bob4-${backend}`, t);
      const panel = await call(alice, bob, { ringFor: 2 });
      await outgoingIs(alice, "No answer");
      await incomingIs(panel, "no answer in time");
      await shot(alice, `${backend}-timeout-caller`);
    });

    test("group call to three members: each answer shows on every screen", async (t) => {
      const [ann, ben, cat, dan] = await Promise.all(["ann", "ben", "cat", "dan"].map((n) => person(server(), `${n}-${backend}`, t)));
      await ann.page.getByTestId("members").fill(`${ben.name}, ${cat.name}, ${dan.name}`);
      await ann.page.getByTestId("group-call").click();
      const panels = {};
      for (const p of [ben, cat, dan]) {
        panels[p.name] = p.page.getByTestId("incoming").filter({ hasText: `${ann.name} is calling the group` });
        await panels[p.name].waitFor();
      }
      await ann.page.getByTestId("outgoing-status").filter({ hasText: "Ringing 3" }).waitFor();
      await panels[ben.name].getByTestId("accept").click();
      await incomingIs(panels[ben.name], "You joined");
      await panels[cat.name].filter({ hasText: `${ben.name} joined` }).waitFor();
      await ann.page.getByTestId("outgoing-status").filter({ hasText: "Ringing 2 · 1 joined" }).waitFor();
      await panels[cat.name].getByTestId("reject").click();
      await panels[dan.name].filter({ hasText: `${cat.name} declined` }).waitFor();
      await shot(dan, `${backend}-group-member`);
      await panels[dan.name].getByTestId("accept").click();
      await outgoingIs(ann, "Accepted");
      const members = ann.page.getByTestId("outgoing-members");
      for (const [who, state] of [[ben, "accepted"], [cat, "rejected"], [dan, "accepted"]]) {
        await members.locator(`li[data-user="${who.name}"][data-state="${state}"]`).waitFor();
      }
      await shot(ann, `${backend}-group-caller`);
    });

    test("the callee's network drops while it rings; back online it shows the call was cancelled", async (t) => {
      const alice = await person(server(), `alice5-${backend}`, t);
      const bob = await person(server(), `bob5-${backend}`, t);
      const panel = await call(alice, bob);
      await bob.context.setOffline(true);
      await bob.page.getByTestId("connection").filter({ hasText: "Reconnecting" }).waitFor();
      await shot(bob, `${backend}-offline-callee`);
      await alice.page.getByTestId("cancel").click();
      await outgoingIs(alice, "Cancelled");
      await bob.context.setOffline(false);
      await connected(bob.page);
      await incomingIs(panel, "Missed call");
      await bob.page.getByTestId("frames").filter({ hasText: "onInvitationCancelled" }).waitFor();
    });

    test("the caller's network drops; back online it learns the call was accepted", async (t) => {
      const alice = await person(server(), `alice6-${backend}`, t);
      const bob = await person(server(), `bob6-${backend}`, t);
      const panel = await call(alice, bob);
      await alice.context.setOffline(true);
      await alice.page.getByTestId("connection").filter({ hasText: "Reconnecting" }).waitFor();
      await panel.getByTestId("accept").click();
      await incomingIs(panel, "Accepted");
      await alice.context.setOffline(false);
      await connected(alice.page);
      await outgoingIs(alice, "Accepted");
    });

    test("the README's picture: bob, after one missed call, is rung by alice", { skip: backend !== backends[0] }, async (t) => {
      // Plain names, for docs/demo.png (copied by hand from test-output/readme.png).
      const carol = await person(server(), "carol", t);
      const bob = await person(server(), "bob", t);
      const missed = await call(carol, bob);
      await carol.page.getByTestId("cancel").click();
      await incomingIs(missed, "Missed call");
      await missed.getByTestId("close").click();
      const alice = await person(server(), "alice", t);
      const panel = await call(alice, bob);
      await panel.getByTestId("incoming-countdown").filter({ hasText: /^(2\d|30) s$/ }).waitFor();
      await panel.evaluate((el) => el.getAnimations({ subtree: true }).filter((a) => a.animationName === "slide-in").forEach((a) => a.finish()));
      await shot(bob, "readme");
      await panel.getByTestId("accept").click();
      await outgoingIs(alice, "Accepted");
    });

    test("a bad name gets a clear message", async (t) => {
      const context = await browser.newContext();
      t.after(() => context.close());
      const page = await context.newPage();
      page.setDefaultTimeout(DEADLINE);
      await page.goto(`${server().http}/demo/`);
      await page.locator("body[data-ready=true]").waitFor();
      await page.getByTestId("user").fill("mal\u202Eory");
      await page.getByTestId("signin").click();
      await page.getByTestId("signin-error").filter({ hasText: "formatting character U+202E" }).waitFor();
      assert.equal(await page.getByTestId("connection").isVisible(), false, "not signed in");
    });
  });
}

describe("demo page outside development mode", () => {
  let server;
  const secret = "a-jwt-secret-of-at-least-32-bytes-for-tests";
  before(async () => {
    const { spawn } = await import("node:child_process");
    const readline = await import("node:readline");
    const proc = spawn(signaldBinary(), ["serve", "--demo", "--addr", "127.0.0.1:0", "--log-format", "json"], {
      env: { ...process.env, SIGNALD_JWT_SECRET: secret, SIGNALD_ADMIN_TOKEN: "an-admin-token-of-at-least-32-bytes-long" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const addr = await new Promise((resolve, reject) => {
      readline.createInterface({ input: proc.stderr }).on("line", (l) => {
        try {
          const j = JSON.parse(l);
          if (j.msg === "signald listening") resolve(j.addr);
        } catch {
          // not JSON
        }
      });
      proc.on("exit", (code) => reject(new Error(`signald exited ${code}`)));
    });
    server = { proc, http: `http://${addr}` };
  });
  after(() => server?.proc.kill("SIGTERM"));

  test("the page asks for a pasted userSig, and signs in with one", async (t) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    t.after(() => context.close());
    const page = await context.newPage();
    page.setDefaultTimeout(DEADLINE);
    await page.goto(`${server.http}/demo/?user=zoe`);
    await page.locator("body[data-ready=true]").waitFor();
    await page.getByTestId("token").waitFor();
    await page.getByTestId("signin").click();
    await page.getByTestId("signin-error").filter({ hasText: "paste a userSig" }).waitFor();
    const token = execFileSync(signaldBinary(), ["token", "--user", "zoe", "--jwt-secret", secret]).toString().trim();
    await page.getByTestId("token").fill(token);
    await page.getByTestId("signin").click();
    await connected(page);
    await page.screenshot({ path: `${outDir}production-signed-in.png` });
  });
});
