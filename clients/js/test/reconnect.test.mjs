// Reconnect and resume across connections cut by the network (a TCP proxy
// the test controls), on the embedded store and on Redis.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ClientCode, MemoryStore, SignalingError } from "../dist/node.js";
import { backends, loggedIn, newClient, startProxy, startStack } from "./harness.mjs";
import { checkRecordedFrames } from "./spec.mjs";

/** A store that remembers every write, standing in for localStorage. */
class RecordingStore extends MemoryStore {
  writes = [];
  set(key, value) {
    this.writes.push([key, value]);
    super.set(key, value);
  }
}

for (const backend of backends) {
  describe(`reconnect and resume (${backend})`, () => {
    let stack;
    const server = () => stack.server;
    before(async () => {
      // Few kept events, so that a long absence cannot be replayed.
      stack = await startStack(null, backend, ["--events-kept", "3"]);
    });
    after(() => stack?.stop());

    test("a cut connection resumes: what happened meanwhile arrives once, queued requests go out after", async (t) => {
      const proxy = await startProxy(t, server().port);
      const store = new RecordingStore();
      const alice = await loggedIn(t, server(), "alice");
      const bob = await loggedIn(t, server(), "bob", { url: proxy.ws, store }, { deviceID: "bob-phone" });

      const id = await alice.invite("bob", JSON.stringify({ cmd: "audioCall" }), { timeout: 60 });
      const [, , , , , ring] = await bob.log.event("onReceiveNewInvitation", id);
      assert.deepEqual(store.writes.at(-1), ["signald:lastEventID:bob:bob-phone", ring.eventID], "the eventID is stored once processed");

      proxy.down(); // the phone loses its network
      const lost = await bob.log.state((s) => s.state === "reconnecting", "reconnecting");
      assert.equal(lost.closeCode, 1006);
      assert.ok(lost.retryIn >= 0 && lost.attempt === 1);

      // Meanwhile the caller changes the call and gives up.
      await alice.modifyInvitation(id, JSON.stringify({ cmd: "videoCall" }));
      await alice.cancel(id, "gave up");
      // The callee's app asks for the call while offline: the request waits.
      const info = bob.getSignalingInfo(id);

      proxy.up();
      const back = await bob.log.state((s) => s.reason === "reconnected", "reconnected");
      assert.equal(back.recovered, true, "every missed event is replayed");
      const [, modified] = await bob.log.event("onInvitationModified", id);
      assert.equal(modified, JSON.stringify({ cmd: "videoCall" }));
      const [, inviter, data] = await bob.log.event("onInvitationCancelled", id);
      assert.deepEqual([inviter, data], ["alice", "gave up"]);
      assert.deepEqual((await info).states, { bob: "cancelled" }, "the queued request was answered after the reconnect");

      assert.equal(bob.log.all("onReceiveNewInvitation", (a) => a[0] === id).length, 1, "rung once");
      assert.equal(bob.log.all("onInvitationCancelled", (a) => a[0] === id).length, 1, "cancelled once");
      assert.equal(store.writes.at(-1)[1], bob.getLastEventID());
    });

    test("a reloaded page resumes from the stored eventID", async (t) => {
      const store = new RecordingStore();
      const alice = await loggedIn(t, server(), "alice-2");
      const first = await loggedIn(t, server(), "bob-2", { store }, { deviceID: "tab-1" });
      const id = await alice.invite("bob-2", "", { timeout: 60 });
      await first.log.event("onReceiveNewInvitation", id);
      await first.logout(); // the page is closed
      await alice.cancel(id);

      const reloaded = await loggedIn(t, server(), "bob-2", { store }, { deviceID: "tab-1" });
      await reloaded.log.event("onInvitationCancelled", id);
      assert.equal(reloaded.log.all("onReceiveNewInvitation").length, 0, "an invitation already seen is not rung again");
      const connected = reloaded.log.all("state", (s) => s.reason === "loggedIn");
      assert.equal(connected[0].recovered, true);
    });

    test("an absence longer than what is kept: recovered false, pending calls ring again once", async (t) => {
      const proxy = await startProxy(t, server().port);
      const alice = await loggedIn(t, server(), "alice-3");
      const bob = await loggedIn(t, server(), "bob-3", { url: proxy.ws }, { deviceID: "bob-3-phone" });
      const first = await alice.invite("bob-3", "first", { timeout: 60 });
      await bob.log.event("onReceiveNewInvitation", first);

      proxy.down();
      await bob.log.state((s) => s.state === "reconnecting", "reconnecting");
      const later = [];
      for (let i = 0; i < 4; i++) later.push(await alice.invite("bob-3", `later ${i}`, { timeout: 60 }));
      proxy.up();

      const back = await bob.log.state((s) => s.reason === "reconnected", "reconnected");
      assert.equal(back.recovered, false, "only 3 events are kept, 4 were missed");
      for (const id of later) await bob.log.event("onReceiveNewInvitation", id);
      // The first call was rung again by the server (it is still pending),
      // with the same eventID: the SDK drops the duplicate.
      assert.equal(bob.log.all("onReceiveNewInvitation", (a) => a[0] === first).length, 1);
      for (const id of [first, ...later]) await bob.reject(id);
    });

    test("a request in flight when the connection drops fails with CONNECTION_LOST", async (t) => {
      const proxy = await startProxy(t, server().port);
      const c = await loggedIn(t, server(), "carol", { url: proxy.ws });
      await server().pause();
      let pending;
      try {
        pending = c.ping().catch((e) => e);
        proxy.down();
      } finally {
        server().resume();
      }
      const err = await pending;
      assert.ok(err instanceof SignalingError);
      assert.equal(err.code, ClientCode.CONNECTION_LOST);
      proxy.up();
      await c.log.state((s) => s.reason === "reconnected", "reconnected");
    });

    test("with queueWhileReconnecting off, a request while reconnecting fails with RECONNECTING", async (t) => {
      const proxy = await startProxy(t, server().port);
      const c = await loggedIn(t, server(), "dave", { url: proxy.ws, queueWhileReconnecting: false });
      proxy.down();
      await c.log.state((s) => s.state === "reconnecting", "reconnecting");
      const err = await c.invite("alice", "").catch((e) => e);
      assert.equal(err.code, ClientCode.RECONNECTING);
      proxy.up();
      await c.log.state((s) => s.reason === "reconnected", "reconnected");
      assert.ok((await c.ping()).serverTime > 0);
    });

    test("backoff grows while the server stays unreachable, with jitter", async (t) => {
      const proxy = await startProxy(t, server().port);
      const c = await loggedIn(t, server(), "erin", {
        url: proxy.ws,
        reconnect: { initialDelay: 50, maxDelay: 400, factor: 2, jitter: 0.5 },
      });
      proxy.down();
      await c.log.state((s) => s.state === "reconnecting" && s.attempt === 6, "six attempts");
      const waits = c.log.all("state", (s) => s.state === "reconnecting").map((s) => s.retryIn);
      const caps = [50, 100, 200, 400, 400, 400];
      waits.slice(0, 6).forEach((w, i) => assert.ok(w >= caps[i] / 2 - 1 && w <= caps[i], `attempt ${i + 1} waited ${w} ms, want ${caps[i] / 2}..${caps[i]}`));
      proxy.up();
      await c.log.state((s) => s.reason === "reconnected", "reconnected");
    });

    test("every frame matches api/asyncapi.yaml", () => {
      checkRecordedFrames();
    });
  });
}

describe("newClient", () => {
  test("refuses a URL that is not ws:// or wss://", () => {
    assert.throws(() => newClient("http://localhost:8080/v1/ws"), /ws:\/\//);
  });
});
