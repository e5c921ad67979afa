package push_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

func newWebhook(t *testing.T, fake *pushtest.Webhook, clock *fakeClock) *push.Webhook {
	t.Helper()
	w, err := push.NewWebhook(fake.Options(), fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(w, clock.Now)
	return w
}

func webhookTarget(token string) push.Target {
	return push.Target{User: "bob", Device: "tablet", Platform: push.PlatformWebhook, Token: token}
}

func TestWebhookSend(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewWebhook(t), newClock()
	w := newWebhook(t, fake, clock)
	m := ringMessage(clock, "inv/tablet/invite")
	m.Fields["ext"] = `<b>&</b>`
	if err := w.Send(context.Background(), webhookTarget("app-token"), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := fake.Wait(t, 1)[0]
	if r.Status != http.StatusOK {
		t.Errorf("answered %d, want 200", r.Status)
	}
	if r.ID != m.ID || r.Timestamp != strconv.FormatInt(clock.Now().Unix(), 10) || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("webhook-id %q, webhook-timestamp %q, Content-Type %q; want %q, the clock's second, application/json",
			r.ID, r.Timestamp, r.Header.Get("Content-Type"), m.ID)
	}
	want := map[string]string{"userID": "bob", "deviceID": "tablet", "token": "app-token"}
	for k, v := range m.Fields {
		want[k] = v
	}
	if len(r.Fields) != len(want) {
		t.Errorf("body has %d fields, want %d", len(r.Fields), len(want))
	}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("body %s = %q, want %q", k, r.Fields[k], v)
		}
	}

	// The signature, computed here from the Standard Webhooks spec.
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(fake.Secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.ID + "." + r.Timestamp + "." + string(r.Body)))
	if want, got := "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), r.Header.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature = %q, want %q", got, want)
	}
}

func TestWebhookIDStableAcrossRetries(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewWebhook(t), newClock()
	w := newWebhook(t, fake, clock)
	m := ringMessage(clock, "inv/tablet/invite")
	fake.AnswerNext(1, pushtest.Answer{Status: 500})
	if err := w.Send(context.Background(), webhookTarget("t"), m); errClass(err) != "retry" {
		t.Fatalf("first Send: %v, want a RetryError", err)
	}
	clock.Advance(2 * time.Second)
	if err := w.Send(context.Background(), webhookTarget("t"), m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	rs := fake.Wait(t, 2)
	if rs[0].ID != m.ID || rs[1].ID != m.ID || rs[0].Timestamp == rs[1].Timestamp {
		t.Errorf("ids %q, %q at %s, %s: want %q both times, each at its own time", rs[0].ID, rs[1].ID, rs[0].Timestamp, rs[1].Timestamp, m.ID)
	}
}

func TestWebhookAnswers(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewWebhook(t), newClock()
	w := newWebhook(t, fake, clock)
	for _, c := range []struct {
		answer pushtest.Answer
		class  string
		after  time.Duration
	}{
		{pushtest.Answer{Status: 200}, "ok", 0},
		{pushtest.Answer{Status: 202}, "ok", 0},
		{pushtest.Answer{Status: 204}, "ok", 0},
		{pushtest.Answer{Status: 410}, "unregistered", 0},
		{pushtest.Answer{Status: 500}, "retry", 0},
		{pushtest.Answer{Status: 503, RetryAfter: "15"}, "retry", 15 * time.Second},
		{pushtest.Answer{Status: 429, RetryAfter: "3"}, "retry", 3 * time.Second},
		{pushtest.Answer{Status: 400}, "retry", 0},
		{pushtest.Answer{Status: 404}, "retry", 0},
	} {
		t.Run(strconv.Itoa(c.answer.Status), func(t *testing.T) {
			token := fmt.Sprintf("tok-%d-%s", c.answer.Status, c.answer.RetryAfter)
			fake.AnswerToken(token, &c.answer)
			err := w.Send(context.Background(), webhookTarget(token), ringMessage(clock, "m"))
			if got := errClass(err); got != c.class {
				t.Fatalf("Send: %v (%s), want %s", err, got, c.class)
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

func TestWebhookRedirectNotFollowed(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewWebhook(t), newClock()
	redirect := httptest.NewServer(http.RedirectHandler(fake.URL, http.StatusFound))
	defer redirect.Close()
	o := fake.Options()
	o.URL = redirect.URL
	w, err := push.NewWebhook(o, redirect.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(w, clock.Now)
	if err := w.Send(context.Background(), webhookTarget("t"), ringMessage(clock, "m")); errClass(err) != "retry" || !strings.Contains(err.Error(), "302") {
		t.Errorf("Send answered 302: %v, want a RetryError naming 302", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("redirect followed: %d requests at its target", n)
	}
}

func TestWebhookDeadlineAndNoAnswer(t *testing.T) {
	noLeaks(t)
	fake, clock := pushtest.NewWebhook(t), newClock()
	w := newWebhook(t, fake, clock)
	past := ringMessage(clock, "past")
	clock.Advance(time.Minute)
	if err := w.Send(context.Background(), webhookTarget("t"), past); !errors.Is(err, push.ErrExpired) {
		t.Errorf("Send past the deadline: %v, want ErrExpired", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Send(ctx, webhookTarget("t"), ringMessage(clock, "ctx")); errClass(err) != "retry" {
		t.Errorf("Send with a done ctx: %v, want a RetryError", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	o := fake.Options()
	o.URL = gone.URL
	w, err := push.NewWebhook(o, fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	push.SetClock(w, clock.Now)
	if err := w.Send(context.Background(), webhookTarget("t"), ringMessage(clock, "m")); errClass(err) != "retry" {
		t.Errorf("Send to a closed port: %v, want a RetryError", err)
	}
}
