package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

// fakes are the three push platforms, as signald sees them in a test.
type fakes struct {
	apns *pushtest.APNs
	fcm  *pushtest.FCM
	hook *pushtest.Webhook
}

// withPush points o's push platforms at fresh fakes.
func withPush(t testing.TB, o app.Options) (app.Options, fakes) {
	t.Helper()
	f := fakes{pushtest.NewAPNs(t), pushtest.NewFCM(t), pushtest.NewWebhook(t)}
	o.Push = push.Config{APNs: f.apns.Options(), FCM: f.fcm.Options(), Webhook: f.hook.Options()}
	o.PushClient = f.apns.Client() // the fakes share one certificate
	o.Scheduler.Poll = 20 * time.Millisecond
	return o, f
}

// loginDevice logs user in on a connection that says it is device.
func (dm *daemon) loginDevice(user, device string) *clientT {
	dm.t.Helper()
	c := dm.dial()
	f := call(dm.t, c, protocol.OpLogin, map[string]any{"userID": user, "userSig": dm.token(user), "deviceID": device})
	if f.Code != 0 {
		dm.t.Fatalf("login %s (%s): code %d %s", user, device, f.Code, f.Desc)
	}
	return c
}

// register registers a device of c's user.
func register(t testing.TB, c *clientT, device, platform, token string) {
	t.Helper()
	mustCall(t, c, protocol.OpSetOfflinePushConfig, map[string]any{"deviceID": device, "platform": platform, "token": token})
}

// jobs returns how many pushes of kind the daemon decided so far.
func (dm *daemon) jobs(kind string) int {
	return int(dm.metric("signald_push_jobs_total", `kind="`+kind+`"`))
}

// pushed is one push as the fakes received it, whatever the platform.
type pushed struct {
	platform, token string
	fields          map[string]string
}

func (f fakes) all() []pushed {
	var out []pushed
	for _, r := range f.apns.Requests() {
		fields := map[string]string{}
		for k, v := range r.Payload {
			if s, ok := v.(string); ok {
				fields[k] = s
			}
		}
		out = append(out, pushed{"apns-" + r.Header.Get("apns-push-type"), r.Token, fields})
	}
	for _, r := range f.fcm.Requests() {
		out = append(out, pushed{"fcm", r.Token, r.Data})
	}
	for _, r := range f.hook.Requests() {
		out = append(out, pushed{"webhook", r.Fields["token"], r.Fields})
	}
	return out
}

// waitPushes waits until the fakes received n pushes in all and returns
// them, described as "<platform> <token> <type> <reason>", sorted.
func (f fakes) waitPushes(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		all := f.all()
		if len(all) >= n {
			var out []string
			for _, p := range all {
				out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", p.platform, p.token, p.fields["type"], p.fields["reason"])))
			}
			slices.Sort(out)
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pushes after %v, want %d: %v", len(all), waitFor, n, all)
		}
		time.Sleep(pollEvery)
	}
}

// TestRingAndEndPushes: bob has three devices. His phone is connected in
// the foreground (not pushed), his tablet connected in the background
// (pushed), his watch offline (pushed). When he accepts on the tablet, the
// devices rung learn it by an end push (FCM and webhook only), but the
// tablet that answered. A group call pushes each offline invitee; a cancel
// and a timeout push the end; onlineUserOnly and disablePush push nothing.
func TestRingAndEndPushes(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o, f := withPush(t, o)
		dm := startDaemon(t, o)
		mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice","bob","carol"]}`)
		alice := dm.login("alice")
		phone := dm.loginDevice("bob", "bob-phone")
		register(t, phone, "bob-phone", "apns-voip", "tok-phone")
		register(t, phone, "bob-tablet", "fcm", "tok-tablet")
		register(t, phone, "bob-watch", "webhook", "tok-watch")
		tablet := dm.loginDevice("bob", "bob-tablet")
		mustCall(t, tablet, protocol.OpDoBackground, nil)
		carol := dm.loginDevice("carol", "carol-phone")
		register(t, carol, "carol-phone", "apns-voip", "tok-carol")
		mustCall(t, carol, protocol.OpDoBackground, nil)
		_ = carol.Close() // gone: offline

		// A 1:1 call: rings the tablet and the watch, not the phone.
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": "d", "timeout": 30,
			"offlinePushInfo": map[string]any{"title": "Call from Alice", "desc": "video"}})
		if n := dm.jobs("invite"); n != 2 {
			t.Fatalf("%d ring pushes decided, want 2 (the tablet and the watch)", n)
		}
		if got, want := f.waitPushes(t, 2), []string{"fcm tok-tablet invite", "webhook tok-watch invite"}; !slices.Equal(got, want) {
			t.Fatalf("ring pushes %v, want %v", got, want)
		}
		for _, p := range f.all() {
			if p.fields["inviteID"] != id || p.fields["inviter"] != "alice" || p.fields["title"] != "Call from Alice" ||
				p.fields["desc"] != "video" || p.fields["inviteeList"] != `["bob"]` || p.fields["data"] != "d" || p.fields["timeout"] != "30" {
				t.Fatalf("ring push %+v", p)
			}
		}
		// Accepted on the tablet: the watch learns it; the tablet knows.
		expectEvent(t, tablet, "onReceiveNewInvitation", id)
		mustCall(t, tablet, protocol.OpAccept, map[string]any{"inviteID": id})
		if got := f.waitPushes(t, 3); !slices.Contains(got, "webhook tok-watch end accepted") || dm.jobs("end") != 1 {
			t.Fatalf("after the accept: %v, %d end pushes decided; want one end push to the watch", got, dm.jobs("end"))
		}

		// A group call: carol (offline) is rung on her phone; bob's tablet
		// and watch again. Cancelled: the FCM and webhook devices learn it.
		group := decode[string](t, mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{
			"groupID": "team", "inviteeList": []string{"bob", "carol"}, "data": "", "timeout": 30}).Data)
		if n := dm.jobs("invite"); n != 5 {
			t.Fatalf("%d ring pushes decided, want 5", n)
		}
		f.waitPushes(t, 6)
		if f.apns.Count("tok-carol") != 1 {
			t.Fatalf("carol's phone rung %d times by APNs, want once", f.apns.Count("tok-carol"))
		}
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": group})
		got := f.waitPushes(t, 8)
		if n := strings.Count(strings.Join(got, "\n"), "end cancelled"); n != 2 || dm.jobs("end") != 3 {
			t.Fatalf("after the cancel: %v; want the tablet and the watch told, not carol's APNs phone", got)
		}

		// A timeout: the tablet and the watch are told. The ring pushes
		// are given up at the invitation's deadline: 5 s lets a slow
		// machine send them first.
		invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 5})
		got = f.waitPushes(t, 12)
		if n := strings.Count(strings.Join(got, "\n"), "end timeout"); n != 2 {
			t.Fatalf("after the timeout: %v; want two end pushes", got)
		}

		// onlineUserOnly and disablePush: nothing more.
		invite(t, alice, map[string]any{"invitee": "bob", "data": "", "onlineUserOnly": true})
		invite(t, alice, map[string]any{"invitee": "bob", "data": "", "offlinePushInfo": map[string]any{"disablePush": true}})
		if n := dm.jobs("invite"); n != 7 {
			t.Fatalf("%d ring pushes decided, want 7: none for onlineUserOnly or disablePush", n)
		}
		if n := len(f.all()); n != 12 {
			t.Fatalf("%d pushes in all, want 12", n)
		}
	})
}

// TestDeadTokensAreRemoved: APNs answers 410 for one device and FCM
// UNREGISTERED for another: both registrations are gone afterwards, and
// the next call does not push them.
func TestDeadTokensAreRemoved(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o, f := withPush(t, o)
		dm := startDaemon(t, o)
		f.apns.AnswerToken("tok-old-phone", &pushtest.Answer{Status: http.StatusGone, Reason: "Unregistered"})
		f.fcm.AnswerToken("tok-old-tablet", &pushtest.Answer{Status: http.StatusNotFound, Reason: "UNREGISTERED"})
		alice, bob := dm.login("alice"), dm.loginDevice("bob", "bob-laptop")
		register(t, bob, "bob-phone", "apns-voip", "tok-old-phone")
		register(t, bob, "bob-tablet", "fcm", "tok-old-tablet")
		_ = bob.Close()
		invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		f.waitPushes(t, 2)
		eventually(t, "both registrations removed", func() error {
			if n := dm.metric("signald_push_registrations_removed_total", ""); n != 2 {
				return fmt.Errorf("%v removed", n)
			}
			return nil
		})
		if _, body := dm.admin("GET", "/v1/users/bob/devices", ""); !strings.Contains(body, `"devices":[]`) {
			t.Fatalf("registrations left: %s", body)
		}
		invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		if n := dm.jobs("invite"); n != 2 {
			t.Fatalf("%d ring pushes decided, want none after the removal", n-2)
		}
	})
}

// TestFailingPushGivesUpAtTheDeadline: a webhook that keeps answering 503
// is tried again and again, and given up at the invitation's deadline:
// nothing reaches it after. A slow APNs is pushed once, never twice.
func TestFailingPushGivesUpAtTheDeadline(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o, f := withPush(t, o)
		// The slow answer (200 ms) is far inside an attempt (2 s), and an
		// attempt inside the lease (6 s): it is never tried again.
		o.Scheduler.Lease, o.Scheduler.Attempt = 6*time.Second, 2*time.Second
		dm := startDaemon(t, o)
		f.hook.AnswerToken("tok-down", &pushtest.Answer{Status: http.StatusServiceUnavailable})
		f.apns.AnswerToken("tok-slow", &pushtest.Answer{Delay: 200 * time.Millisecond})
		alice, bob := dm.login("alice"), dm.loginDevice("bob", "bob-laptop")
		register(t, bob, "bob-watch", "webhook", "tok-down")
		register(t, bob, "bob-phone", "apns-voip", "tok-slow")
		_ = bob.Close()
		// Retried 0.5 s, 1 s, 2 s apart: within 4 s the webhook is tried
		// again even if the first try comes late.
		invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 4})
		eventually(t, "the failing push given up", func() error {
			if n := dm.metric("signald_pushes_total", `result="gave_up"`); n != 1 {
				return fmt.Errorf("%v given up", n)
			}
			return nil
		})
		// The ring's tries; the timeout's end push goes to the same
		// webhook, after the deadline, and is no retry of the ring.
		var reqs []pushtest.WebhookRequest
		for _, r := range f.hook.Requests() {
			if r.Fields["type"] == "invite" {
				reqs = append(reqs, r)
			}
		}
		if len(reqs) < 2 {
			t.Fatalf("the failing webhook was tried %d times, want retries", len(reqs))
		}
		info := decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": reqs[0].Fields["inviteID"]}).Data)
		for _, r := range reqs {
			if r.Time.After(time.UnixMilli(info.Deadline)) {
				t.Fatalf("a try at %v, after the deadline %v", r.Time, time.UnixMilli(info.Deadline))
			}
			if r.ID != reqs[0].ID {
				t.Fatalf("webhook-id %q on a retry, %q first: one ID across retries", r.ID, reqs[0].ID)
			}
		}
		if n := f.apns.Count("tok-slow"); n != 1 {
			t.Fatalf("the slow APNs got %d pushes, want 1", n)
		}
	})
}

// TestPushBadInput: every new field is checked, with 6017.
func TestPushBadInput(t *testing.T) {
	o, _ := withPush(t, apptest.Options(t, "memory"))
	o.Push.Webhook = push.WebhookOptions{} // webhook off
	apptest.CheckLeaks(t)
	dm := startDaemon(t, o)
	c := dm.login("alice")
	for _, p := range []map[string]any{
		{"platform": "apns", "token": "t"}, // no deviceID, none at login
		{"deviceID": "d", "platform": "carrier-pigeon", "token": "t"},
		{"deviceID": "d", "platform": "webhook", "token": "t"}, // no credentials
		{"deviceID": "d", "platform": 1, "token": "t"},
		{"deviceID": "d", "platform": "fcm", "token": 5},
		{"deviceID": "d", "platform": "fcm"},
		{"deviceID": "d", "platform": "fcm", "token": strings.Repeat("t", 4097)},
		{"deviceID": "d", "platform": "fcm", "token": "t", "sandbox": "yes"},
		{"deviceID": "", "platform": "fcm", "token": "t"},
		{"deviceID": strings.Repeat("d", 129), "platform": "fcm", "token": "t"},
		{"deviceID": 7, "platform": "fcm", "token": "t"},
	} {
		wantCode(t, c, protocol.CodeInvalidParams, protocol.OpSetOfflinePushConfig, p)
	}
	for _, dev := range []any{"", 7, strings.Repeat("d", 129)} {
		x := dm.dial()
		f := call(t, x, protocol.OpLogin, map[string]any{"userID": "bob", "userSig": dm.token("bob"), "deviceID": dev})
		if f.Code != protocol.CodeInvalidParams {
			t.Fatalf("login with deviceID %q: code %d, want 6017", dev, f.Code)
		}
	}
	mustCall(t, c, protocol.OpSetOfflinePushConfig, map[string]any{"deviceID": "d", "platform": "fcm", "token": "t", "sandbox": false})
	for _, body := range []string{`{"platform":"fcm"}`, `{"platform":"x","token":"t"}`, `{"platform":"fcm","token":"t","extra":1}`, `[]`, `{"platform":"webhook","token":"t"}`} {
		if code, resp := dm.admin("PUT", "/v1/users/alice/devices/d", body); code != http.StatusBadRequest {
			t.Fatalf("PUT %s: %d %s, want 400", body, code, resp)
		}
	}
	var got struct {
		UserID  string `json:"userID"`
		Devices []struct {
			DeviceID, Platform, Token string
		} `json:"devices"`
	}
	code, body := dm.admin("PUT", "/v1/users/alice/devices/d2", `{"platform":"apns","token":"a","sandbox":true}`)
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || len(got.Devices) != 1 || got.Devices[0].DeviceID != "d2" {
		t.Fatalf("PUT a device: %d %s", code, body)
	}
	if code, body := dm.admin("GET", "/v1/users/alice/devices", ""); code != http.StatusOK || strings.Count(body, `"deviceID"`) != 2 {
		t.Fatalf("GET devices: %d %s, want two", code, body)
	}
	if code, _ := dm.admin("DELETE", "/v1/users/alice/devices/d2", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE a device: %d", code)
	}
}

// BenchmarkPushLatency measures, one invitation at a time, from sending the
// invite to the fake platform receiving the ring push of an offline device,
// per store and platform:
//
//	go test -run '^$' -bench PushLatency -benchtime 200x ./internal/app
//
// It reports the median and the 99th percentile in ms.
func BenchmarkPushLatency(b *testing.B) {
	for _, backend := range apptest.Backends {
		for _, platform := range []string{"apns-voip", "fcm", "webhook"} {
			b.Run(backend+"/"+platform, func(b *testing.B) {
				o, f := withPush(b, apptest.Options(b, backend))
				o.Server.RateLimit, o.Server.RateBurst = 1e9, 1e9
				dm := startDaemon(b, o)
				alice, bob := dm.login("alice"), dm.loginDevice("bob", "bob-laptop")
				register(b, bob, "bob-phone", platform, "tok-bob")
				_ = bob.Close()
				received := func() int {
					switch platform {
					case "fcm":
						return len(f.fcm.Requests())
					case "webhook":
						return len(f.hook.Requests())
					}
					return len(f.apns.Requests())
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := range b.N {
					start := time.Now()
					invite(b, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 30})
					for received() <= i {
						if time.Since(start) > waitFor {
							b.Fatalf("push %d not received within %v", i, waitFor)
						}
						time.Sleep(50 * time.Microsecond)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
