package systemtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/signald/signald/internal/protocol"
)

// TestRedisCluster: two instances on a three-master Redis Cluster. Calls
// are delivered across the instances, a timeout fires once, and a device
// resumes on the other instance.
func TestRedisCluster(t *testing.T) {
	requireBinary(t)
	nodes := startCluster(t, 3)
	url := "redis://" + nodes[0].addr + "?addr=" + nodes[1].addr + "&addr=" + nodes[2].addr
	dep := newDeployment(t, url, "cluster", map[string]string{"SIGNALD_POLL_INTERVAL": "20ms"})
	n1, n2 := dep.start("node1"), dep.start("node2")
	alice := login(t, n1.ws(), "alice")
	bob := login(t, n2.ws(), "bob")
	carol := login(t, n2.ws(), "carol")

	// A call across the instances: invite, ring, accept.
	id := alice.invite(map[string]any{"invitee": "bob", "data": "call", "timeout": 30})
	bob.expectEvent("onReceiveNewInvitation", id)
	bob.must(protocol.OpAccept, map[string]any{"inviteID": id})
	alice.expectEvent("onInviteeAccepted", id)
	// Another, cancelled by its inviter.
	id2 := alice.invite(map[string]any{"invitee": "carol", "data": "call", "timeout": 30})
	carol.expectEvent("onReceiveNewInvitation", id2)
	alice.must(protocol.OpCancel, map[string]any{"inviteID": id2, "data": "never mind"})
	if f := carol.expectEvent("onInvitationCancelled", id2); f.EventData() != "never mind" {
		t.Fatalf("cancelled %s", describe(f))
	}
	// A timeout, fired once by one of the two instances.
	id3 := carol.invite(map[string]any{"invitee": "alice", "data": "", "timeout": 1})
	alice.expectEvent("onReceiveNewInvitation", id3)
	for _, d := range []*device{alice, carol} {
		if f := d.expectEvent("onInvitationTimeout", id3); !slices.Equal(f.InviteeList, []string{"alice"}) {
			t.Fatalf("timeout %s", describe(f))
		}
	}
	if st := alice.states(id3); st["alice"] != "timeout" {
		t.Fatalf("getSignalingInfo after the timeout: %v", st)
	}
	// The count is read from /metrics, which is not the devices' path (on
	// a single Redis an event even comes before its count): wait for it.
	eventually(t, "the timeout counted once", func() error {
		if fired := n1.metric("signald_timeouts_fired_total") + n2.metric("signald_timeouts_fired_total"); fired != 1 {
			return fmt.Errorf("timeouts fired %v times over the two instances, want 1", fired)
		}
		return nil
	})

	// bob's phone drops; what happens meanwhile is replayed when it comes
	// back through the other instance.
	id4 := alice.invite(map[string]any{"invitee": "bob", "data": "v1", "timeout": 30})
	bob.expectEvent("onReceiveNewInvitation", id4)
	_ = bob.c.Close()
	alice.must(protocol.OpModifyInvitation, map[string]any{"inviteID": id4, "data": "v2"})
	alice.must(protocol.OpCancel, map[string]any{"inviteID": id4, "data": "bye"})
	if data := bob.resume(n1.ws()); data["recovered"] != true {
		t.Fatalf("resume on the other instance: login data %v, want recovered true", data)
	}
	if f := bob.expectEvent("onInvitationModified", id4); f.EventData() != "v2" {
		t.Fatalf("replayed %s", describe(f))
	}
	if f := bob.expectEvent("onInvitationCancelled", id4); f.EventData() != "bye" {
		t.Fatalf("replayed %s", describe(f))
	}
	for _, d := range []*device{alice, bob, carol} {
		d.expectQuiet()
	}

	// The keys are spread over the masters: this is a sharded deployment.
	var sizes []string
	used := 0
	for _, r := range nodes {
		v, err := r.do("DBSIZE")
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", r.name, err)
		}
		if v.(int64) > 0 {
			used++
		}
		sizes = append(sizes, fmt.Sprintf("%s:%v", r.addr, v))
	}
	t.Logf("keys per master: %s", strings.Join(sizes, " "))
	if used < 2 {
		t.Fatalf("all keys on one master: %s", strings.Join(sizes, " "))
	}
}
