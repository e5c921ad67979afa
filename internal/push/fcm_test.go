package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

func newFCM(t *testing.T, fake *pushtest.FCM, clock *fakeClock) *push.FCM {
	t.Helper()
	f, err := push.NewFCM(fake.Options(), fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(f, clock.Now)
	return f
}

func fcmTarget(token string) push.Target {
	return push.Target{User: "bob", Device: "pixel", Platform: push.PlatformFCM, Token: token}
}

func TestFCMSend(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	m := ringMessage(clock, "inv/pixel/invite")
	clock.Advance(4 * time.Second) // 26 s left
	if err := f.Send(context.Background(), fcmTarget("reg-1"), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := fake.Wait(t, 1)[0]
	if r.Status != http.StatusOK || r.Token != "reg-1" || r.Priority != "high" || r.TTL != "26s" {
		t.Errorf("request to %q, priority %q, ttl %q answered %d; want reg-1, high, 26s, 200", r.Token, r.Priority, r.TTL, r.Status)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ya29.") {
		t.Errorf("Authorization = %q, want the access token from the token endpoint", r.Header.Get("Authorization"))
	}
	want := map[string]string{"pushID": m.ID}
	for k, v := range m.Fields {
		want[k] = v
	}
	if len(r.Data) != len(want) {
		t.Errorf("data has %d fields, want %d", len(r.Data), len(want))
	}
	for k, v := range want {
		if r.Data[k] != v {
			t.Errorf("data %s = %q, want %q", k, r.Data[k], v)
		}
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["message"]["notification"]; ok || len(body["message"]) != 3 {
		t.Errorf("message has %v, want only token, data and android (data-only)", body["message"])
	}
}

func TestFCMAccessTokenReused(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	fake.SetTokenLifetime(2 * time.Minute)
	f := newFCM(t, fake, clock)
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			errs <- f.Send(context.Background(), fcmTarget(fmt.Sprint("reg", i)), ringMessage(clock, fmt.Sprint(i)))
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if n := fake.TokenRequests(); n != 1 {
		t.Fatalf("10 sends fetched %d access tokens, want 1", n)
	}
	// A token that expires within a minute is replaced before use. The
	// oauth2 package stamps the expiry from the real clock, the sender
	// compares it with the test's clock (up to 1 s behind, truncated): 90
	// s leaves 30 s of margin either way, where 61 s left only one and
	// failed when the sends above took longer than the truncated part.
	clock.Advance(90 * time.Second)
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "late")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := fake.TokenRequests(); n != 2 {
		t.Fatalf("%d access tokens after the first neared its expiry, want 2", n)
	}
}

func TestFCMUnauthorizedRefreshesOnce(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "1")); err != nil {
		t.Fatal(err)
	}
	fake.RevokeAccessTokens()
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "2")); err != nil {
		t.Fatalf("Send with a revoked access token: %v, want a fresh token and success", err)
	}
	rs := fake.Requests()
	if len(rs) != 3 || rs[1].Status != 401 || rs[2].Status != 200 || fake.TokenRequests() != 2 {
		t.Fatalf("%d sends (%d tokens fetched), want 3 with the second refused 401 and 2 tokens", len(rs), fake.TokenRequests())
	}
	if rs[1].AccessToken == rs[2].AccessToken {
		t.Error("retried with the refused access token")
	}

	// Refused again with the fresh token: no third try.
	fake.AnswerNext(2, pushtest.Answer{Status: 401})
	err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "3"))
	if errClass(err) != "permanent" || !strings.Contains(err.Error(), "401") {
		t.Errorf("Send refused twice: %v, want a permanent error naming 401", err)
	}
	if n := len(fake.Requests()); n != 5 {
		t.Errorf("%d sends, want 5", n)
	}
}

func TestFCMAnswers(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	httpDate := clock.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for i, c := range []struct {
		answer    pushtest.Answer
		class     string
		after     time.Duration
		errSubstr string
	}{
		{pushtest.Answer{Status: 404, Reason: "UNREGISTERED"}, "unregistered", 0, "NOT_FOUND UNREGISTERED"},
		{pushtest.Answer{Status: 400, Reason: "UNREGISTERED"}, "unregistered", 0, "UNREGISTERED"},
		{pushtest.Answer{Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: "30"}, "retry", 30 * time.Second, "QUOTA_EXCEEDED"},
		{pushtest.Answer{Status: 503, Reason: "UNAVAILABLE", RetryAfter: httpDate}, "retry", 90 * time.Second, "UNAVAILABLE"},
		{pushtest.Answer{Status: 503, Reason: "UNAVAILABLE"}, "retry", 0, "503"},
		{pushtest.Answer{Status: 500, Reason: "INTERNAL"}, "retry", 0, "INTERNAL"},
		{pushtest.Answer{Status: 400, Reason: "INVALID_ARGUMENT"}, "permanent", 0, "INVALID_ARGUMENT"},
		{pushtest.Answer{Status: 403, Reason: "SENDER_ID_MISMATCH"}, "permanent", 0, "SENDER_ID_MISMATCH"},
		{pushtest.Answer{Status: 404}, "permanent", 0, "NOT_FOUND"},
	} {
		t.Run(fmt.Sprintf("%d_%s", c.answer.Status, c.answer.Reason), func(t *testing.T) {
			token := fmt.Sprint("reg-", i)
			fake.AnswerToken(token, &c.answer)
			err := f.Send(context.Background(), fcmTarget(token), ringMessage(clock, "m"))
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

func TestFCMDeadline(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	past := ringMessage(clock, "past")
	clock.Advance(30 * time.Second)
	if err := f.Send(context.Background(), fcmTarget("reg"), past); !errors.Is(err, push.ErrExpired) {
		t.Errorf("Send at the deadline: %v, want ErrExpired", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Send(ctx, fcmTarget("reg"), ringMessage(clock, "ctx")); errClass(err) != "retry" {
		t.Errorf("Send with a done ctx: %v, want a RetryError", err)
	}
	if n, tokens := len(fake.Requests()), fake.TokenRequests(); n != 0 || tokens != 0 {
		t.Errorf("%d sends and %d token requests, want none", n, tokens)
	}
}

func TestFCMSlowAnswerBoundedByContext(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	fake.AnswerNext(1, pushtest.Answer{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Send(ctx, fcmTarget("slow"), ringMessage(clock, "slow")) }()
	fake.Wait(t, 1)
	cancel()
	if err := <-done; errClass(err) != "retry" || !errors.Is(err, context.Canceled) {
		t.Errorf("Send cut short: %v, want a RetryError wrapping context.Canceled", err)
	}
}

func TestFCMDataLimit(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()
	f := newFCM(t, fake, clock)
	m := ringMessage(clock, "big")
	m.Fields["data"] = bigString(4000)
	if err := f.Send(context.Background(), fcmTarget("reg"), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := fake.Wait(t, 1)[0]
	if _, kept := r.Data["data"]; kept || r.Data["inviteID"] != m.Fields["inviteID"] || r.Data["pushID"] != m.ID {
		t.Errorf("data %v: want everything but data", r.Data)
	}
	m.Fields["ext"] = bigString(4096)
	if err := f.Send(context.Background(), fcmTarget("reg"), m); !errors.Is(err, push.ErrTooLarge) {
		t.Errorf("Send too large without data: %v, want ErrTooLarge", err)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
}

// writeCredentials writes a copy of fake's credentials file with changes.
func writeCredentials(t *testing.T, fake *pushtest.FCM, change func(map[string]string)) string {
	t.Helper()
	b, err := os.ReadFile(fake.CredentialsFile)
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal(b, &cred); err != nil {
		t.Fatal(err)
	}
	change(cred)
	if b, err = json.Marshal(cred); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "changed.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFCMCredentials(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewFCM(t), newClock()

	// No project_id in the file: the option must name it.
	o := fake.Options()
	o.CredentialsFile = writeCredentials(t, fake, func(c map[string]string) { delete(c, "project_id") })
	if _, err := push.NewFCM(o, fake.Client()); err == nil || !strings.Contains(err.Error(), "SIGNALD_FCM_PROJECT_ID") {
		t.Errorf("credentials without project_id: %v, want an error naming SIGNALD_FCM_PROJECT_ID", err)
	}
	o.ProjectID = fake.ProjectID
	f, err := push.NewFCM(o, fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(f, clock.Now)
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "p")); err != nil {
		t.Errorf("Send with the project configured: %v", err)
	}

	// Not a service account.
	o.CredentialsFile = writeCredentials(t, fake, func(c map[string]string) { c["type"] = "authorized_user" })
	if _, err := push.NewFCM(o, fake.Client()); err == nil {
		t.Error("NewFCM took credentials that are not a service account's")
	}

	// A token endpoint that does not answer: retried later.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	o.CredentialsFile = writeCredentials(t, fake, func(c map[string]string) { c["token_uri"] = gone.URL + "/token" })
	if f, err = push.NewFCM(o, fake.Client()); err != nil {
		t.Fatal(err)
	}
	push.SetClock(f, clock.Now)
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "t")); errClass(err) != "retry" {
		t.Errorf("Send with the token endpoint down: %v, want a RetryError", err)
	}

	// A token endpoint that refuses the key: permanent.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	defer refusing.Close()
	o.CredentialsFile = writeCredentials(t, fake, func(c map[string]string) { c["token_uri"] = refusing.URL + "/token" })
	if f, err = push.NewFCM(o, refusing.Client()); err != nil {
		t.Fatal(err)
	}
	push.SetClock(f, clock.Now)
	if err := f.Send(context.Background(), fcmTarget("reg"), ringMessage(clock, "t")); errClass(err) != "permanent" || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("Send with the key refused: %v, want a permanent error naming invalid_grant", err)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
}
