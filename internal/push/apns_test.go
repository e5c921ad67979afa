package push_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

func newAPNs(t *testing.T, fake *pushtest.APNs, clock *fakeClock) *push.APNs {
	t.Helper()
	a, err := push.NewAPNs(fake.Options(), fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(a, clock.Now)
	return a
}

// wantAPNsID is the apns-id of a message ID, computed here apart from the
// sender: SHA-256, first 16 bytes, version 8, variant 10.
func wantAPNsID(id string) string {
	s := sha256.Sum256([]byte(id))
	s[6] = s[6]&0x0f | 0x80
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

func TestAPNsSendVoIP(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	m := ringMessage(clock, "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4/phone-1/invite")
	target := push.Target{User: "bob", Device: "phone-1", Platform: push.PlatformAPNsVoIP, Token: "aabbcc0011"}
	if err := a.Send(context.Background(), target, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := fake.Wait(t, 1)[0]
	if r.Proto != "HTTP/2.0" || r.Token != "aabbcc0011" || r.Status != http.StatusOK {
		t.Errorf("request %s to %q answered %d, want HTTP/2.0 to aabbcc0011 answered 200", r.Proto, r.Token, r.Status)
	}
	for h, want := range map[string]string{
		"apns-push-type":  "voip",
		"apns-topic":      fake.Topic + ".voip",
		"apns-priority":   "10",
		"apns-expiration": strconv.FormatInt(m.Deadline.Unix(), 10),
		"apns-id":         wantAPNsID(m.ID),
		"content-type":    "application/json",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if !strings.HasPrefix(r.Header.Get("authorization"), "bearer ") {
		t.Errorf("authorization = %q, want bearer <JWT>", r.Header.Get("authorization"))
	}
	for k, v := range m.Fields {
		if r.Payload[k] != v {
			t.Errorf("payload %s = %v, want %q", k, r.Payload[k], v)
		}
	}
	if aps, ok := r.Payload["aps"].(map[string]any); !ok || len(aps) != 0 {
		t.Errorf("payload aps = %v, want {}", r.Payload["aps"])
	}
	if len(r.Payload) != len(m.Fields)+1 {
		t.Errorf("payload has %d keys, want the %d fields and aps", len(r.Payload), len(m.Fields))
	}
}

func TestAPNsSendAlert(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	target := push.Target{User: "bob", Device: "phone-1", Platform: push.PlatformAPNs, Token: "dd01"}

	m := ringMessage(clock, "m1")
	m.Title, m.Body = "Alice", "is calling you"
	if err := a.Send(context.Background(), target, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// Neither title nor body: the inviter and a default body.
	m2 := ringMessage(clock, "m2")
	if err := a.Send(context.Background(), target, m2); err != nil {
		t.Fatalf("Send: %v", err)
	}
	rs := fake.Wait(t, 2)
	for i, want := range [][2]string{{"Alice", "is calling you"}, {"alice", "Incoming call"}} {
		r := rs[i]
		if r.Header.Get("apns-push-type") != "alert" || r.Header.Get("apns-topic") != fake.Topic {
			t.Errorf("push type %q topic %q, want alert to %q", r.Header.Get("apns-push-type"), r.Header.Get("apns-topic"), fake.Topic)
		}
		aps, _ := r.Payload["aps"].(map[string]any)
		alert, _ := aps["alert"].(map[string]any)
		if alert["title"] != want[0] || alert["body"] != want[1] || aps["sound"] != "default" {
			t.Errorf("aps = %v, want alert %q / %q and sound default", aps, want[0], want[1])
		}
		if r.Payload["inviteID"] != m.Fields["inviteID"] {
			t.Errorf("payload inviteID = %v, want the fields at top level", r.Payload["inviteID"])
		}
	}
	if rs[0].Header.Get("apns-id") == rs[1].Header.Get("apns-id") {
		t.Error("two messages share an apns-id")
	}
}

func TestAPNsIDStableAcrossSendersAndRetries(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a1, a2 := newAPNs(t, fake, clock), newAPNs(t, fake, clock)
	m := ringMessage(clock, "inv/dev/invite")
	target := push.Target{Platform: push.PlatformAPNsVoIP, Token: "ee02"}
	fake.AnswerNext(1, pushtest.Answer{Status: 503, Reason: "ServiceUnavailable"})
	if err := a1.Send(context.Background(), target, m); errClass(err) != "retry" {
		t.Fatalf("first Send: %v, want a RetryError", err)
	}
	if err := a2.Send(context.Background(), target, m); err != nil {
		t.Fatalf("retry from another instance: %v", err)
	}
	rs := fake.Wait(t, 2)
	if rs[0].Header.Get("apns-id") != rs[1].Header.Get("apns-id") {
		t.Errorf("apns-id %q then %q: want the same on every retry", rs[0].Header.Get("apns-id"), rs[1].Header.Get("apns-id"))
	}
}

func TestAPNsAnswers(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	for _, c := range []struct {
		answer    pushtest.Answer
		class     string
		after     time.Duration
		errSubstr string
	}{
		{pushtest.Answer{Status: 410, Reason: "Unregistered"}, "unregistered", 0, "Unregistered"},
		{pushtest.Answer{Status: 410, Reason: "ExpiredToken"}, "unregistered", 0, "ExpiredToken"},
		{pushtest.Answer{Status: 400, Reason: "BadDeviceToken"}, "unregistered", 0, "BadDeviceToken"},
		{pushtest.Answer{Status: 400, Reason: "DeviceTokenNotForTopic"}, "unregistered", 0, "DeviceTokenNotForTopic"},
		{pushtest.Answer{Status: 429, Reason: "TooManyRequests"}, "retry", 0, "TooManyRequests"},
		{pushtest.Answer{Status: 429, Reason: "TooManyRequests", RetryAfter: "7"}, "retry", 7 * time.Second, "TooManyRequests"},
		{pushtest.Answer{Status: 500, Reason: "InternalServerError"}, "retry", 0, "InternalServerError"},
		{pushtest.Answer{Status: 503, Reason: "ServiceUnavailable", RetryAfter: "120"}, "retry", 2 * time.Minute, "ServiceUnavailable"},
		{pushtest.Answer{Status: 503, Reason: "Shutdown"}, "retry", 0, "Shutdown"},
		{pushtest.Answer{Status: 400, Reason: "BadCollapseId"}, "permanent", 0, "BadCollapseId"},
		{pushtest.Answer{Status: 403, Reason: "InvalidProviderToken"}, "permanent", 0, "InvalidProviderToken"},
		{pushtest.Answer{Status: 413, Reason: "PayloadTooLarge"}, "permanent", 0, "PayloadTooLarge"},
	} {
		t.Run(fmt.Sprintf("%d_%s", c.answer.Status, c.answer.Reason), func(t *testing.T) {
			token := fmt.Sprintf("tok-%d-%s-%s", c.answer.Status, c.answer.Reason, c.answer.RetryAfter)
			fake.AnswerToken(token, &c.answer)
			err := a.Send(context.Background(), push.Target{Platform: push.PlatformAPNsVoIP, Token: token}, ringMessage(clock, "m"))
			if got := errClass(err); got != c.class {
				t.Fatalf("Send: %v (%s), want %s", err, got, c.class)
			}
			if !strings.Contains(err.Error(), c.errSubstr) {
				t.Errorf("error %q does not name %q", err, c.errSubstr)
			}
			var re *push.RetryError
			if errors.As(err, &re) && re.After != c.after {
				t.Errorf("RetryError.After = %v, want %v", re.After, c.after)
			}
			if n := fake.Count(token); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestAPNsNoAnswerIsRetried(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	// A server that is gone: connection refused.
	gone := httptest.NewUnstartedServer(http.NotFoundHandler())
	gone.EnableHTTP2 = true
	gone.StartTLS()
	url := gone.URL
	gone.Close()
	o := fake.Options()
	o.URL = url
	a, err := push.NewAPNs(o, fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(a, clock.Now)
	err = a.Send(context.Background(), push.Target{Platform: push.PlatformAPNsVoIP, Token: "ff"}, ringMessage(clock, "m"))
	if errClass(err) != "retry" {
		t.Fatalf("Send to a closed port: %v, want a RetryError", err)
	}
}

func TestAPNsProviderTokenReused(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			target := push.Target{Platform: push.PlatformAPNsVoIP, Token: fmt.Sprintf("tok%02d", i)}
			errs <- a.Send(context.Background(), target, ringMessage(clock, fmt.Sprint(i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := fake.ProviderTokens(); got != 1 {
		t.Fatalf("%d sends made %d provider tokens, want 1", n, got)
	}

	send := func() {
		t.Helper()
		if err := a.Send(context.Background(), push.Target{Platform: push.PlatformAPNs, Token: "x"}, ringMessage(clock, "x")); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	clock.Advance(30 * time.Minute)
	send()
	if got := fake.ProviderTokens(); got != 1 {
		t.Fatalf("after 30 minutes: %d provider tokens, want still 1 (APNs throttles updates more often than 20 min)", got)
	}
	clock.Advance(16 * time.Minute)
	send()
	if got := fake.ProviderTokens(); got != 2 {
		t.Fatalf("after 46 minutes: %d provider tokens, want 2 (renewed well inside the hour)", got)
	}
	clock.Advance(10 * time.Minute)
	send()
	if got := fake.ProviderTokens(); got != 2 {
		t.Fatalf("10 minutes after renewal: %d provider tokens, want 2", got)
	}
}

func TestAPNsExpiredProviderTokenRenewedOnce(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	target := push.Target{Platform: push.PlatformAPNsVoIP, Token: "ab"}
	if err := a.Send(context.Background(), target, ringMessage(clock, "1")); err != nil {
		t.Fatal(err)
	}

	// Every token so far expires; concurrent sends all refused at once
	// make one new token between them.
	fake.ExpireProviderTokens()
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- a.Send(context.Background(), target, ringMessage(clock, fmt.Sprint("c", i))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send after expiry: %v", err)
		}
	}
	if got := fake.ProviderTokens(); got != 2 {
		t.Errorf("%d provider tokens, want 2: one renewal for all refused sends", got)
	}
	rs := fake.Requests()
	var refused, ok int
	for _, r := range rs[1:] {
		switch {
		case r.Status == 403 && r.Reason == "ExpiredProviderToken":
			refused++
		case r.Status == 200:
			ok++
		}
	}
	if ok != n || refused < 1 || refused > n || len(rs) != 1+ok+refused {
		t.Errorf("after expiry: %d refused, %d accepted of %d requests; want every send refused at most once, then accepted", refused, ok, len(rs)-1)
	}

	// Refused again right after renewal: no third try, and not retried.
	fake.AnswerNext(2, pushtest.Answer{Status: 403, Reason: "ExpiredProviderToken"})
	before := len(fake.Requests())
	err := a.Send(context.Background(), target, ringMessage(clock, "2"))
	if errClass(err) != "permanent" || !strings.Contains(err.Error(), "ExpiredProviderToken") {
		t.Errorf("Send refused twice: %v, want a permanent error naming ExpiredProviderToken", err)
	}
	if got := len(fake.Requests()) - before; got != 2 {
		t.Errorf("%d requests, want 2 (renewed and tried once more)", got)
	}
}

func TestAPNsDeadline(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	target := push.Target{Platform: push.PlatformAPNsVoIP, Token: "ab"}

	past := ringMessage(clock, "past")
	clock.Advance(31 * time.Second)
	if err := a.Send(context.Background(), target, past); !errors.Is(err, push.ErrExpired) {
		t.Errorf("Send past the deadline: %v, want ErrExpired", err)
	}
	none := ringMessage(clock, "none")
	none.Deadline = time.Time{}
	if err := a.Send(context.Background(), target, none); !errors.Is(err, push.ErrExpired) {
		t.Errorf("Send without a deadline: %v, want ErrExpired", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ctx, target, ringMessage(clock, "ctx")); errClass(err) != "retry" || !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a done ctx: %v, want a RetryError wrapping context.Canceled", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests made, want none", n)
	}
}

func TestAPNsSlowAnswerBoundedByContext(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	fake.AnswerNext(1, pushtest.Answer{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.Send(ctx, push.Target{Platform: push.PlatformAPNsVoIP, Token: "slow"}, ringMessage(clock, "slow"))
	}()
	fake.Wait(t, 1) // the request is in; its answer held back
	cancel()
	if err := <-done; errClass(err) != "retry" || !errors.Is(err, context.Canceled) {
		t.Errorf("Send cut short: %v, want a RetryError wrapping context.Canceled", err)
	}
}

func TestAPNsPayloadLimit(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	big := bigString(4500) // over an alert's 4096 bytes, within VoIP's 5120

	for _, c := range []struct {
		platform push.Platform
		field    string
		keepData bool
	}{
		{push.PlatformAPNsVoIP, "data", true},
		{push.PlatformAPNs, "data", false},
	} {
		m := ringMessage(clock, string(c.platform))
		m.Fields[c.field] = big
		if err := a.Send(context.Background(), push.Target{Platform: c.platform, Token: string(c.platform)}, m); err != nil {
			t.Fatalf("%s: Send: %v", c.platform, err)
		}
		r := fake.Requests()[fake.Count("apns-voip")+fake.Count("apns")-1]
		if _, kept := r.Payload["data"]; kept != c.keepData {
			t.Errorf("%s with 4500 bytes of data: data kept %v, want %v", c.platform, kept, c.keepData)
		}
		if r.Payload["inviteID"] != m.Fields["inviteID"] {
			t.Errorf("%s: inviteID %v lost", c.platform, r.Payload["inviteID"])
		}
		if m.Fields["data"] != big {
			t.Errorf("%s: the caller's Fields were changed", c.platform)
		}
	}

	m := ringMessage(clock, "huge")
	m.Fields["ext"] = bigString(6000)
	before := len(fake.Requests())
	if err := a.Send(context.Background(), push.Target{Platform: push.PlatformAPNsVoIP, Token: "huge"}, m); !errors.Is(err, push.ErrTooLarge) {
		t.Errorf("Send of a payload too large without data: %v, want ErrTooLarge", err)
	}
	if len(fake.Requests()) != before {
		t.Error("a payload too large was sent")
	}
}

func TestAPNsHosts(t *testing.T) {
	fake := pushtest.NewAPNs(t)
	o := fake.Options()
	o.URL = ""
	a, err := push.NewAPNs(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, s := push.APNsBaseURLs(a); p != "https://api.push.apple.com" || s != "https://api.sandbox.push.apple.com" {
		t.Errorf("hosts %q, %q: want Apple's production and sandbox hosts", p, s)
	}
	o.URL = "https://apns-proxy.internal:8443/"
	if a, err = push.NewAPNs(o, nil); err != nil {
		t.Fatal(err)
	}
	if p, s := push.APNsBaseURLs(a); p != "https://apns-proxy.internal:8443" || s != p {
		t.Errorf("hosts %q, %q: want the URL option for both", p, s)
	}
}

func TestAPNsSandboxTargetThroughURL(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	if err := a.Send(context.Background(), push.Target{Platform: push.PlatformAPNsVoIP, Token: "sb", Sandbox: true}, ringMessage(clock, "sb")); err != nil {
		t.Fatalf("Send to a sandbox target: %v", err)
	}
	if fake.Count("sb") != 1 {
		t.Error("sandbox target not sent to the URL option")
	}
}

func TestAPNsRefusesOtherPlatformsAndBadKeys(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewAPNs(t), newClock()
	a := newAPNs(t, fake, clock)
	if err := a.Send(context.Background(), push.Target{Platform: push.PlatformFCM, Token: "x"}, ringMessage(clock, "x")); err == nil {
		t.Error("APNs sent to an FCM target")
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty.p8":   "",
		"garbage.p8": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		o := fake.Options()
		o.KeyFile = filepath.Join(dir, name)
		if err := os.WriteFile(o.KeyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := push.NewAPNs(o, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("key file %s: %v, want an error naming the file", name, err)
		}
	}
}
