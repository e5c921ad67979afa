// Every op and every event of the SDK against a real signald, on the
// embedded store and on Redis.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { ClientCode, SignalingError } from "../dist/node.js";
import { backends, loggedIn, newClient, startStack, within, mintToken } from "./harness.mjs";
import { checkRecordedFrames } from "./spec.mjs";

/** A webhook receiver standing in for the app's push backend. */
async function startWebhook() {
  const pushes = [];
  const waiters = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      pushes.push(JSON.parse(body));
      res.writeHead(204).end();
      for (const w of [...waiters]) w();
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    close: () => srv.close(),
    url: `http://127.0.0.1:${srv.address().port}/push`,
    pushes,
    wait(pred, what) {
      return within(
        new Promise((resolve) => {
          const check = () => {
            const p = pushes.find(pred);
            if (p) resolve(p);
          };
          waiters.push(check);
          check();
        }),
        what,
      );
    },
  };
}

async function rejects(promise, code) {
  const err = await promise.then(
    () => assert.fail(`resolved, want error ${code}`),
    (e) => e,
  );
  assert.ok(err instanceof SignalingError, `want a SignalingError, got ${err}`);
  assert.equal(err.code, code, `code ${err.code} (${err.desc}), want ${code}`);
  assert.ok(err.desc.length > 0, "an error without a desc");
  return err;
}

for (const backend of backends) {
  describe(`ops (${backend})`, () => {
    let stack, hook;
    const server = () => stack.server;

    before(async () => {
      hook = await startWebhook();
      const secret = "whsec_" + Buffer.from("a-test-webhook-secret-32-bytes!!").toString("base64");
      stack = await startStack(null, backend, ["--push-webhook-url", hook.url, "--push-webhook-secret", secret]);
    });
    after(async () => {
      await stack?.stop();
      hook?.close();
    });

    test("invite, ring, getSignalingInfo, modify, accept", async (t) => {
      const alice = await loggedIn(t, server(), "alice");
      const bob = await loggedIn(t, server(), "bob");
      assert.equal(alice.getConnectionState(), "connected");
      assert.equal(alice.getLoginUser(), "alice");
      const data = JSON.stringify({ cmd: "videoCall", room: "r-1" });
      const id = await alice.invite("bob", data, { timeout: 30, offlinePushInfo: { title: "Alice", desc: "calling" } });
      assert.match(id, /^\S+$/);

      const [inviteID, inviter, groupID, inviteeList, got, ev] = await bob.log.event("onReceiveNewInvitation", id);
      assert.deepEqual([inviteID, inviter, groupID, inviteeList, got], [id, "alice", "", ["bob"], data]);
      assert.equal(ev.timeout, 30);
      assert.ok(ev.eventID, "a kept event has an eventID");

      const info = await bob.getSignalingInfo(id);
      assert.equal(info.inviter, "alice");
      assert.deepEqual(info.states, { bob: "pending" });
      assert.equal(info.deadline - info.createdAt, 30_000);

      await alice.modifyInvitation(id, JSON.stringify({ cmd: "audioCall" }));
      const [, modified] = await bob.log.event("onInvitationModified", id);
      assert.equal(modified, JSON.stringify({ cmd: "audioCall" }));

      await bob.accept(id, "ok");
      const [, invitee, acceptData] = await alice.log.event("onInviteeAccepted", id);
      assert.deepEqual([invitee, acceptData], ["bob", "ok"]);
      assert.deepEqual((await alice.getSignalingInfo(id)).states, { bob: "accepted" });
      assert.ok(bob.getLastEventID() >= ev.eventID, "the newest eventID is kept for resuming");

      // Too late to cancel: the invitation ended.
      const err = await rejects(alice.cancel(id), 8010);
      assert.equal(err.op, "cancel");
    });

    test("reject", async (t) => {
      const alice = await loggedIn(t, server(), "alice-r");
      const bob = await loggedIn(t, server(), "bob-r");
      const id = await alice.invite("bob-r", "");
      await bob.log.event("onReceiveNewInvitation", id);
      await bob.reject(id, JSON.stringify({ reason: "busy" }));
      const [, invitee, data] = await alice.log.event("onInviteeRejected", id);
      assert.deepEqual([invitee, data], ["bob-r", '{"reason":"busy"}']);
      await rejects(bob.accept(id), 8010);
    });

    test("cancel, on every device of the callee", async (t) => {
      const alice = await loggedIn(t, server(), "alice-c");
      const phone = await loggedIn(t, server(), "bob-c", {}, { deviceID: "phone" });
      const tablet = await loggedIn(t, server(), "bob-c", {}, { deviceID: "tablet" });
      const id = await alice.invite("bob-c", "", { onlineUserOnly: true });
      await phone.log.event("onReceiveNewInvitation", id);
      await tablet.log.event("onReceiveNewInvitation", id);
      await alice.cancel(id, "never mind");
      for (const device of [phone, tablet]) {
        const [, inviter, data, ev] = await device.log.event("onInvitationCancelled", id);
        assert.deepEqual([inviter, data], ["alice-c", "never mind"]);
        assert.equal(ev.eventID, undefined, "onlineUserOnly events are not kept");
      }
      await rejects(phone.accept(id), 8010);
    });

    test("timeout", async (t) => {
      const alice = await loggedIn(t, server(), "alice-t");
      const bob = await loggedIn(t, server(), "bob-t");
      const id = await alice.invite("bob-t", "", { timeout: 1 });
      await bob.log.event("onReceiveNewInvitation", id);
      const [, timedOut] = await alice.log.event("onInvitationTimeout", id);
      assert.deepEqual(timedOut, ["bob-t"]);
      const [, bobTimedOut] = await bob.log.event("onInvitationTimeout", id);
      assert.deepEqual(bobTimedOut, ["bob-t"]);
      assert.deepEqual((await alice.getSignalingInfo(id)).states, { "bob-t": "timeout" });
    });

    test("inviteInGroup: everyone hears who answered", async (t) => {
      await server().admin("PUT", "/v1/groups/team/members", { members: ["ann", "ben", "cat", "dan"] });
      const ann = await loggedIn(t, server(), "ann");
      const ben = await loggedIn(t, server(), "ben");
      const cat = await loggedIn(t, server(), "cat");
      const id = await ann.inviteInGroup("team", ["ben", "cat"], "group call", { timeout: 60 });
      for (const c of [ben, cat]) {
        const [, inviter, groupID, list, data] = await c.log.event("onReceiveNewInvitation", id);
        assert.deepEqual([inviter, groupID, list, data], ["ann", "team", ["ben", "cat"], "group call"]);
      }
      await ben.accept(id);
      await cat.log.event("onInviteeAccepted", id);
      await ann.log.event("onInviteeAccepted", id);
      await cat.reject(id);
      const [, who] = await ben.log.event("onInviteeRejected", id);
      assert.equal(who, "cat");
      await ann.log.event("onInviteeRejected", id);
      assert.deepEqual((await ann.getSignalingInfo(id)).states, { ben: "accepted", cat: "rejected" });

      const notMember = await rejects(ann.inviteInGroup("team", ["ben", "zed"], ""), 10007);
      assert.match(notMember.desc, /zed/);
      await rejects(ann.inviteInGroup("no-such-group", ["ben"], ""), 10010);
    });

    test("offline push: setOfflinePushConfig, doBackground, doForeground, deviceID", async (t) => {
      const alice = await loggedIn(t, server(), "alice-p");
      const bob = await loggedIn(t, server(), "bob-p", {}, { deviceID: "bob-phone" });
      await bob.setOfflinePushConfig({ platform: "webhook", token: "tok-bob-phone" });
      await rejects(bob.setOfflinePushConfig({ platform: "fcm", token: "x" }), 6017); // no FCM credentials here

      // In the foreground: rung on the socket, not pushed.
      const inForeground = await alice.invite("bob-p", "", { timeout: 30 });
      await bob.log.event("onReceiveNewInvitation", inForeground);
      await bob.doBackground();
      const inBackground = await alice.invite("bob-p", "", { timeout: 30, offlinePushInfo: { title: "Alice" } });
      const push = await hook.wait((p) => p.inviteID === inBackground && p.type === "invite", "the ring push");
      assert.deepEqual([push.userID, push.deviceID, push.token, push.inviter, push.title], ["bob-p", "bob-phone", "tok-bob-phone", "alice-p", "Alice"]);
      // Still on the socket too: the background keeps every event.
      await bob.log.event("onReceiveNewInvitation", inBackground);
      assert.equal(hook.pushes.filter((p) => p.inviteID === inForeground).length, 0, "a device in the foreground was pushed");
      await bob.doForeground();
    });

    test("bad input gets a clear error", async (t) => {
      const alice = await loggedIn(t, server(), "alice-e");
      await rejects(alice.accept("NO-SUCH-INVITATION"), 8010);
      await rejects(alice.invite("alice-e", ""), 6017); // yourself
      await rejects(alice.invite("bob", "x".repeat(12_289)), 80002);
      await rejects(alice.invite("bob", "", { timeout: -1 }), 6017);
      const bob = await loggedIn(t, server(), "bob-e");
      const id = await alice.invite("bob-e", "");
      await rejects(bob.cancel(id), 8011);
      await rejects(bob.modifyInvitation(id, "x"), 8011);
      await rejects(alice.accept(id), 8011);
      await alice.cancel(id);
      // Login twice on one client.
      await rejects(alice.login("alice-e", await server().token("alice-e")), ClientCode.ALREADY_LOGGED_IN);
    });

    test("login failures end the session and are not retried", async () => {
      const replies = [];
      const c = newClient(server().ws, { onFrame: (dir, f) => dir === "in" && f.id && replies.push(f.code) });
      await rejects(c.login("mallory", "not-a-token"), 70003);
      await rejects(c.login("mallory", await server().token("alice")), 70013);
      await rejects(c.login("mallory", mintToken("mallory", { expiresIn: -60 })), 70001);
      await rejects(c.login("mallory", ""), 70002);
      assert.equal(c.getConnectionState(), "disconnected");
      assert.deepEqual(replies, [70003, 70013, 70001, 70002], "a refused login is not tried again");
      await rejects(c.ping(), ClientCode.NOT_LOGGED_IN);

      const nowhere = newClient("ws://127.0.0.1:1/v1/ws");
      await rejects(nowhere.login("alice", "x"), ClientCode.CONNECT_FAILED);
      assert.throws(() => newClient("http://example.com"), /ws:\/\//);
    });

    test("requests before login and after logout fail with NOT_LOGGED_IN / LOGGED_OUT", async (t) => {
      const c = newClient(server().ws);
      await rejects(c.invite("bob", ""), ClientCode.NOT_LOGGED_IN);
      const login = c.login("early", await server().token("early"));
      const queued = c.ping(); // made while connecting: waits for the login
      await login;
      assert.ok((await queued).serverTime > 0);
      await c.logout();
      assert.equal(c.getConnectionState(), "disconnected");
      await rejects(c.ping(), ClientCode.NOT_LOGGED_IN);
    });

    test("a request without a reply times out (server paused)", async (t) => {
      const c = await loggedIn(t, server(), "patient", { requestTimeout: 800, heartbeatInterval: 0 });
      await server().pause();
      try {
        const started = Date.now();
        await rejects(c.ping(), ClientCode.REQUEST_TIMEOUT);
        assert.ok(Date.now() - started >= 700, "timed out early");
      } finally {
        server().resume();
      }
      // An unanswered ping means a dead socket: the client reconnects.
      await c.log.state((s) => s.reason === "reconnected", "reconnected after the pause");
      assert.ok((await c.ping()).serverTime > 0);
    });

    test("every frame matches api/asyncapi.yaml", () => {
      const seen = checkRecordedFrames();
      for (const op of ["login", "invite", "inviteInGroup", "cancel", "accept", "reject", "modifyInvitation", "getSignalingInfo", "ping", "setOfflinePushConfig", "doBackground", "doForeground"]) {
        assert.ok(seen.requests.includes(op), `no ${op} was sent`);
      }
      for (const ev of ["onReceiveNewInvitation", "onInviteeAccepted", "onInviteeRejected", "onInvitationCancelled", "onInvitationTimeout", "onInvitationModified"]) {
        assert.ok(seen.events.includes(ev), `no ${ev} was received`);
      }
    });
  });
}
