// The server goes away under the SDK: restarted on Redis (killed, or
// shut down gracefully with 1012), a 1008 policy close, and a re-login
// whose userSig has expired.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ClientCode } from "../dist/node.js";
import { backends, loggedIn, mintToken, newClient, startStack } from "./harness.mjs";
import { checkRecordedFrames } from "./spec.mjs";

describe("server restart on Redis", { skip: !backends.includes("redis") && "SIGNALD_TEST_BACKENDS has no redis" }, () => {
  let stack;
  before(async () => {
    stack = await startStack(null, "redis");
  });
  after(() => stack?.stop());

  for (const [signal, closeCode] of [
    ["SIGKILL", 1006],
    ["SIGTERM", 1012],
  ]) {
    test(`${signal}: the SDK reconnects to the new process and the call goes on`, async (t) => {
      const alice = await loggedIn(t, stack.server, `alice-${signal}`);
      const bob = await loggedIn(t, stack.server, `bob-${signal}`, {}, { deviceID: "phone" });
      const id = await alice.invite(`bob-${signal}`, "before the restart", { timeout: 120 });
      await bob.log.event("onReceiveNewInvitation", id);

      const restarted = stack.restart(signal);
      for (const c of [alice, bob]) {
        const lost = await c.log.state((s) => s.state === "reconnecting", `${c.getLoginUser()} reconnecting`);
        assert.equal(lost.closeCode, closeCode);
        if (closeCode === 1012) assert.ok(lost.retryIn <= 100, `1012 reconnects at once, not after ${lost.retryIn} ms`);
      }
      // Made while the server is away: waits for the new one.
      const modified = alice.modifyInvitation(id, "during the restart");
      await restarted;

      await alice.log.state((s) => s.reason === "reconnected", "alice reconnected");
      const back = await bob.log.state((s) => s.reason === "reconnected", "bob reconnected");
      assert.equal(back.recovered, true, "bob resumed from his last eventID");
      await modified;
      const [, data] = await bob.log.event("onInvitationModified", id);
      assert.equal(data, "during the restart");
      await bob.accept(id, "after the restart");
      const [, invitee, acceptData] = await alice.log.event("onInviteeAccepted", id);
      assert.deepEqual([invitee, acceptData], [`bob-${signal}`, "after the restart"]);
      assert.equal(bob.log.all("onReceiveNewInvitation").length, 1, "rung once across the restart");
    });
  }

  test("every frame matches api/asyncapi.yaml", () => {
    checkRecordedFrames();
  });
});

for (const backend of backends) {
  describe(`policy and userSig (${backend})`, () => {
    let stack;
    before(async () => {
      // One request a second: a burst of pings gets the connection closed (1008).
      stack = await startStack(null, backend, ["--rate-limit", "1", "--rate-burst", "2"]);
    });
    after(() => stack?.stop());

    test("1008 (rate limit): the SDK waits at least policyDelay before it comes back", async (t) => {
      const c = await loggedIn(t, stack.server, "hammer", { reconnect: { initialDelay: 50, policyDelay: 1500, jitter: 0.5 }, heartbeatInterval: 0 });
      const answers = await Promise.allSettled(Array.from({ length: 8 }, () => c.ping()));
      const codes = answers.map((a) => (a.status === "fulfilled" ? 0 : a.reason.code));
      assert.ok(codes.includes(60018), `some pings refused with 60018: ${codes}`);
      const closed = await c.log.state((s) => s.state === "reconnecting", "closed by the server");
      assert.equal(closed.closeCode, 1008);
      assert.ok(closed.retryIn >= 1500 * 0.75, `waits ${closed.retryIn} ms after a policy close, want ≥ ${1500 * 0.75}`);
      const closedAt = Date.now();
      await c.log.state((s) => s.reason === "reconnected", "reconnected");
      assert.ok(Date.now() - closedAt >= 1500 * 0.75 - 50, "came back before policyDelay");
    });

    test("a re-login refused for an expired userSig ends the session and says so", async (t) => {
      const proxy = await import("./harness.mjs").then((h) => h.startProxy(t, stack.server.port));
      const c = newClient(proxy.ws, { refreshUserSig: (user) => mintToken(user, { expiresIn: -60 }) });
      await c.login("frank", await stack.server.token("frank"));
      const waiting = c.ping().catch((e) => e); // before the drop: answered
      assert.ok((await waiting).serverTime > 0);
      proxy.down();
      await c.log.state((s) => s.state === "reconnecting", "reconnecting");
      const queued = c.ping().catch((e) => e);
      proxy.up();
      const ended = await c.log.state((s) => s.state === "disconnected", "the session ends");
      assert.equal(ended.reason, "loginFailed");
      assert.equal(ended.error.code, 70001);
      await c.log.wait("userSigExpired");
      assert.equal((await queued).code, ClientCode.NOT_LOGGED_IN);
      assert.equal(c.getLoginUser(), "");
    });
  });
}
