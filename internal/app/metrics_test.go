package app_test

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
)

// readmeMetrics returns the metric names of the README's metrics table.
func readmeMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(signald_[a-z_]+)` \\|").FindAllStringSubmatch(string(raw), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("the README's metrics table lists %d metrics", len(names))
	}
	return names
}

// exposed returns the signald_ metric families of a /metrics page that have
// at least one sample, and all that have a HELP line.
func exposed(body string) (sampled, helped map[string]bool) {
	sampled, helped = map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(l, "# HELP "); ok {
			if name, _, _ = strings.Cut(name, " "); strings.HasPrefix(name, "signald_") {
				helped[name] = true
			}
			continue
		}
		if !strings.HasPrefix(l, "signald_") {
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && helped[base] {
				name = base
			}
		}
		sampled[name] = true
	}
	return sampled, helped
}

// TestReadmeMetricsExistFromStart: every metric the README lists is on a
// fresh signald's /metrics with a sample, before anything happened (so
// that rate() and absent() alerts work from the start), and every metric
// signald exposes is in the README.
func TestReadmeMetricsExistFromStart(t *testing.T) {
	apptest.CheckLeaks(t)
	o, _ := withPush(t, apptest.Options(t, "redis"))
	dm := startDaemon(t, o)
	_, body := dm.get("/metrics")
	sampled, helped := exposed(body)
	listed := readmeMetrics(t)
	for _, name := range listed {
		if !sampled[name] {
			t.Errorf("%s is listed in the README but has no sample on a fresh /metrics", name)
		}
	}
	for name := range helped {
		if !slices.Contains(listed, name) {
			t.Errorf("%s is exposed but not in the README's metrics table", name)
		}
	}
	// The series alerts divide by, or watch for, exist at 0.
	for _, series := range []string{
		`signald_store_errors_total{op="create"} 0`,
		`signald_logins_total{code="0"} 0`,
		`signald_requests_total{code="0",op="invite"} 0`,
		`signald_invitee_outcomes_total{kind="group",outcome="timeout"} 0`,
		`signald_connections_closed_by_server_total{reason="too_slow"} 0`,
		`signald_pushes_total{kind="invite",platform="apns",result="sent"} 0`,
		`signald_events_delivered_total{event="onInvitationCancelled"} 0`,
		`signald_resumes_total{result="not_recovered"} 0`,
	} {
		if !strings.Contains(body, "\n"+series+"\n") {
			t.Errorf("no %s on a fresh /metrics", series)
		}
	}
	// HELP names every reason a connection is closed for.
	for _, m := range regexp.MustCompile("`([a-z_0-9]+)`").FindAllStringSubmatch(readmeRow(t, "signald_connections_closed_by_server_total"), -1) {
		if r := m[1]; r != "signald_connections_closed_by_server_total" && r != "reason" {
			if !strings.Contains(body, fmt.Sprintf(`signald_connections_closed_by_server_total{reason=%q} 0`, r)) {
				t.Errorf("reason %s has no series", r)
			}
			if help := helpOf(body, "signald_connections_closed_by_server_total"); !strings.Contains(help, r+" (") {
				t.Errorf("HELP does not explain %s: %s", r, help)
			}
		}
	}
}

func readmeRow(t *testing.T, metric string) string {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "| `"+metric+"` |") {
			return l
		}
	}
	t.Fatalf("no README row for %s", metric)
	return ""
}

func helpOf(body, metric string) string {
	for _, l := range strings.Split(body, "\n") {
		if h, ok := strings.CutPrefix(l, "# HELP "+metric+" "); ok {
			return h
		}
	}
	return ""
}

// TestCallMetrics: what an operator reads of calls: invitations by kind and
// size, every invitee's outcome once, answer times, resumes and replays; a
// client that closes its own connection is not counted as closed by the
// server.
func TestCallMetrics(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice","bob","carol","dave"]}`)
		alice, bob, carol := dm.login("alice"), dm.login("bob"), dm.login("carol")

		// One to one, accepted.
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		first := expectEvent(t, bob, "onReceiveNewInvitation", id).EventID
		mustCall(t, bob, protocol.OpAccept, map[string]any{"inviteID": id})
		expectEvent(t, alice, "onInviteeAccepted", id)
		// A group call to three: carol rejects, the rest is cancelled.
		gid := decode[string](t, mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{"groupID": "team", "inviteeList": []string{"bob", "carol", "dave"}, "data": ""}).Data)
		expectEvent(t, carol, "onReceiveNewInvitation", gid)
		expectEvent(t, bob, "onReceiveNewInvitation", gid)
		mustCall(t, carol, protocol.OpReject, map[string]any{"inviteID": gid})
		expectEvent(t, alice, "onInviteeRejected", gid)
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": gid})
		expectEvent(t, bob, "onInviteeRejected", gid)
		expectEvent(t, bob, "onInvitationCancelled", gid)
		// One to one, timed out.
		tid := invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 1})
		expectEvent(t, bob, "onReceiveNewInvitation", tid)
		expectEvent(t, alice, "onInvitationTimeout", tid)
		expectEvent(t, bob, "onInvitationTimeout", tid)

		checkSeries(t, dm, map[string]float64{
			`signald_invitations_total{kind="one_to_one"}`:                          2,
			`signald_invitations_total{kind="group"}`:                               1,
			`signald_invitation_invitees_count`:                                     3,
			`signald_invitation_invitees_sum`:                                       5,
			`signald_invitee_outcomes_total{kind="one_to_one",outcome="accepted"}`:  1,
			`signald_invitee_outcomes_total{kind="one_to_one",outcome="timeout"}`:   1,
			`signald_invitee_outcomes_total{kind="group",outcome="rejected"}`:       1,
			`signald_invitee_outcomes_total{kind="group",outcome="cancelled"}`:      2,
			`signald_invitee_outcomes_total{kind="group",outcome="accepted"}`:       0,
			`signald_invitee_outcomes_total{kind="one_to_one",outcome="cancelled"}`: 0,
			`signald_ring_to_answer_seconds_count{outcome="accepted"}`:              1,
			`signald_ring_to_answer_seconds_count{outcome="rejected"}`:              1,
			`signald_resumes_total{result="recovered"}`:                             0,
		})

		// bob, on a second device, resumes from his first event: the six
		// after it are replayed (his own accept among them: this device
		// did not make it).
		bob2 := dm.dial()
		f := mustCall(t, bob2, protocol.OpLogin, map[string]any{"userID": "bob", "userSig": dm.token("bob"), "lastEventID": first})
		login := decode[protocol.LoginData](t, f.Data)
		if login.Recovered == nil || !*login.Recovered {
			t.Fatalf("resume not recovered: %s", f.Data)
		}
		replayed := 0
		for got := ""; got != login.LastEventID; replayed++ {
			got = next(t, bob2).EventID
		}
		if replayed != 6 {
			t.Fatalf("%d events replayed, want 6", replayed)
		}
		// A lastEventID this server never issued is not recovered.
		dave := dm.dial()
		f = mustCall(t, dave, protocol.OpLogin, map[string]any{"userID": "dave", "userSig": dm.token("dave"), "lastEventID": "not-an-event"})
		if r := decode[protocol.LoginData](t, f.Data).Recovered; r == nil || *r {
			t.Fatalf("an unknown lastEventID recovered: %s", f.Data)
		}
		checkSeries(t, dm, map[string]float64{
			`signald_resumes_total{result="recovered"}`:     1,
			`signald_resumes_total{result="not_recovered"}`: 1,
			`signald_events_replayed_total`:                 6,
		})
		if kept := dm.metric("signald_events_kept_total", ""); kept < 7 {
			t.Fatalf("events kept %v, want at least bob's 7", kept)
		}

		// Clients that close their connections are not closed by the server.
		for _, c := range []*clientT{alice, bob, bob2, carol, dave} {
			_ = c.Close()
		}
		eventually(t, "every connection gone", func() error {
			if n := dm.metric("signald_websocket_connections", ""); n != 0 {
				return fmt.Errorf("%v connections open", n)
			}
			return nil
		})
		if n := dm.metric("signald_connections_closed_by_server_total", ""); n != 0 {
			t.Fatalf("%v connections counted as closed by the server; their clients closed them", n)
		}
	})
}

// checkSeries requires each series (its name and labels exactly as
// /metrics writes them) to have the value wanted.
func checkSeries(t *testing.T, dm *daemon, want map[string]float64) {
	t.Helper()
	// A change's event can reach its users before the engine has counted
	// it: a store that publishes in the change's step (Redis) delivers it
	// before it answers. Wait for the counts.
	eventually(t, "the series", func() error {
		_, body := dm.get("/metrics")
		var wrong []string
		for series, v := range want {
			line := ""
			for _, l := range strings.Split(body, "\n") {
				if rest, ok := strings.CutPrefix(l, series+" "); ok {
					line = rest
				}
			}
			var got float64
			if _, err := fmt.Sscan(line, &got); err != nil {
				wrong = append(wrong, fmt.Sprintf("no series %s", series))
			} else if got != v {
				wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", series, got, v))
			}
		}
		if len(wrong) > 0 {
			slices.Sort(wrong)
			return errors.New(strings.Join(wrong, "; "))
		}
		return nil
	})
}

// TestErrorRepliesAreTheSameOnEveryStore: an error reply's desc is the one
// text of its code (10007 adds the user it names), whichever store and
// layer refused the request: a client can show it, and compare it.
func TestErrorRepliesAreTheSameOnEveryStore(t *testing.T) {
	type reply struct {
		code int
		desc string
	}
	got := map[string][]reply{}
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o.Engine.MaxInvitees = 2
		o.Engine.Limits.MaxActive = 2
		dm := startDaemon(t, o)
		mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice","bob"]}`)
		alice, bob := dm.login("alice"), dm.login("bob")
		ended := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": ended})
		active := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		invite(t, alice, map[string]any{"invitee": "carol", "data": ""})
		stranger := dm.dial()
		var replies []reply
		for _, r := range []struct {
			c      *clientT
			op     string
			params map[string]any
		}{
			{bob, protocol.OpAccept, map[string]any{"inviteID": ended}},
			{bob, protocol.OpAccept, map[string]any{"inviteID": "NOSUCHINVITATIONAAAAAAAAAA"}},
			{bob, protocol.OpCancel, map[string]any{"inviteID": active}},
			{alice, protocol.OpAccept, map[string]any{"inviteID": active}},
			{alice, protocol.OpInvite, map[string]any{"invitee": "alice", "data": ""}},
			{alice, protocol.OpInvite, map[string]any{"invitee": "bob", "data": strings.Repeat("x", 12*1024+1)}},
			{alice, protocol.OpInviteInGroup, map[string]any{"groupID": "team", "inviteeList": []string{"a", "b", "c"}, "data": ""}},
			{alice, protocol.OpInviteInGroup, map[string]any{"groupID": "nope", "inviteeList": []string{"bob"}, "data": ""}},
			{alice, protocol.OpInviteInGroup, map[string]any{"groupID": "team", "inviteeList": []string{"bob", "zed"}, "data": ""}},
			{alice, protocol.OpInvite, map[string]any{"invitee": "dave", "data": ""}},
			{alice, "no-such-op", nil},
			{stranger, protocol.OpInvite, map[string]any{"invitee": "bob", "data": ""}},
			{stranger, protocol.OpLogin, map[string]any{"userID": "eve", "userSig": dm.token("mallory")}},
		} {
			f := call(t, r.c, r.op, r.params)
			if f.Code == 0 {
				t.Fatalf("%s %v succeeded", r.op, r.params)
			}
			want := protocol.Desc(f.Code)
			if f.Code == protocol.CodeNotMember {
				want += `: "zed"`
			}
			if f.Desc != want {
				t.Errorf("%s %v: code %d, desc %q, want %q", r.op, r.params, f.Code, f.Desc, want)
			}
			replies = append(replies, reply{f.Code, f.Desc})
		}
		got[t.Name()] = replies
	})
	if m, r := got[t.Name()+"/memory"], got[t.Name()+"/redis"]; !slices.Equal(m, r) {
		t.Fatalf("the stores answer differently:\nmemory %v\nredis  %v", m, r)
	}
}
