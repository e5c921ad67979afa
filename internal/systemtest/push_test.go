package systemtest

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/push/pushtest"
)

// TestPushExactlyOnceAcrossInstances: three instances share one Redis and
// push through one app backend (webhook). Invitations made on every
// instance push each (invitation, device) exactly once, whichever instance
// sends it. Then an instance makes invitations and is killed (kill -9)
// while its pushes are in flight (its webhook never answers): after the
// lease the others push each of them, once, under the same webhook-id.
func TestPushExactlyOnceAcrossInstances(t *testing.T) {
	requireBinary(t)
	rs := startRedis(t, "redis")
	hook := pushtest.NewWebhook(t)
	hole := pushtest.NewWebhook(t) // holds every request: the doomed instance's pushes never finish
	hole.AnswerNext(1000, pushtest.Answer{Delay: time.Hour})
	webhook := func(f *pushtest.Webhook) map[string]string {
		return map[string]string{"SIGNALD_PUSH_WEBHOOK_URL": f.URL, "SIGNALD_PUSH_WEBHOOK_SECRET": f.Secret}
	}
	// An attempt is given a third of the lease (2 s): a webhook that is
	// merely slow on a busy machine is never taken for dead and pushed
	// again. The takeover below waits out one lease.
	dep := newDeployment(t, "redis://"+rs.addr, "single", map[string]string{"SIGNALD_PUSH_LEASE": "6s"})
	for k, v := range webhook(hook) {
		dep.settings[k] = v
	}
	ins := dep.startN(3)

	// Four users, each with one device that is offline.
	users := []string{"ann", "ben", "cat", "dan"}
	for _, u := range users {
		d := login(t, ins[0].ws(), u)
		d.must(protocol.OpSetOfflinePushConfig, map[string]any{"deviceID": u + "-phone", "platform": "webhook", "token": "tok-" + u})
		_ = d.c.Close()
	}
	callers := []*device{login(t, ins[0].ws(), "x0"), login(t, ins[1].ws(), "x1"), login(t, ins[2].ws(), "x2")}
	const n = 12
	// Every invitation here lasts 10 min: none times out during the test,
	// so no end push comes to the webhook among the rings counted.
	for i := range n {
		callers[i%3].invite(map[string]any{"invitee": users[i%len(users)], "data": fmt.Sprint(i), "timeout": 600})
	}
	got := hook.Wait(t, n)
	seen := map[string]int{}
	for _, r := range got {
		seen[r.Fields["inviteID"]+"/"+r.Fields["deviceID"]]++
	}
	if len(seen) != n {
		t.Fatalf("%d pushes reached %d (invitation, device) pairs, want %d, each once", len(got), len(seen), n)
	}

	// The doomed instance, alone so that it is the one that claims them,
	// pushes into the hole; two others start, and it dies with its pushes
	// in flight.
	for _, in := range ins {
		in.stopWith(syscall.SIGTERM, waitFor)
	}
	doomed := dep.startWith("doomed", webhook(hole))
	inviter := login(t, doomed.ws(), "x3")
	var ids []string
	for i := range 4 {
		ids = append(ids, inviter.invite(map[string]any{"invitee": users[i], "data": "doomed", "timeout": 600}))
	}
	held := hole.Wait(t, 4)
	ins = []*instance{dep.start("node4"), dep.start("node5")}
	doomed.kill()
	taken := hook.Wait(t, n+4)[n:]
	byInvite := map[string]pushtest.WebhookRequest{}
	for _, r := range taken {
		byInvite[r.Fields["inviteID"]] = r
	}
	for _, h := range held {
		r, ok := byInvite[h.Fields["inviteID"]]
		if !ok || r.ID != h.ID || r.Fields["deviceID"] != h.Fields["deviceID"] {
			t.Fatalf("the push held by the dead instance (%s to %s) was taken over as %+v", h.ID, h.Fields["deviceID"], r)
		}
	}
	if len(byInvite) != len(ids) {
		t.Fatalf("taken over: %d invitations, want %d", len(byInvite), len(ids))
	}
	// A moment later nothing more has come: each was pushed once.
	last := login(t, ins[1].ws(), "x4").invite(map[string]any{"invitee": "ann", "data": "last", "timeout": 600})
	hook.Wait(t, n+5)
	all := hook.Requests()
	pushes := map[string]int{}
	for _, r := range all {
		pushes[r.Fields["inviteID"]+"/"+r.Fields["deviceID"]]++
	}
	if len(all) != n+5 || len(pushes) != n+5 || pushes[last+"/ann-phone"] != 1 {
		t.Fatalf("%d pushes in all to %d (invitation, device) pairs, the last one's %d times; want %d, each once",
			len(all), len(pushes), pushes[last+"/ann-phone"], n+5)
	}
}
