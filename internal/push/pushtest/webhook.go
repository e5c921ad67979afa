package pushtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/push"
)

// WebhookTolerance is how far webhook-timestamp may be from the receiver's
// clock, as Standard Webhooks libraries allow.
const WebhookTolerance = 5 * time.Minute

// Webhook is an app backend receiving pushes by webhook: it verifies the
// Standard Webhooks signature (webhook-id, webhook-timestamp within
// WebhookTolerance, webhook-signature made with Secret) and that the body
// is a JSON object of strings; answers 200, or what was scripted.
type Webhook struct {
	URL    string // where to POST: WebhookOptions.URL
	Secret string // whsec_<base64>

	t       testing.TB
	srv     *httptest.Server
	key     []byte
	closing chan struct{}
	journal[WebhookRequest]

	mu     sync.Mutex
	script script // guarded by mu
}

// WebhookRequest is one request the receiver got, and its answer.
type WebhookRequest struct {
	Time      time.Time
	Header    http.Header
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Body      []byte
	Fields    map[string]string // Body decoded
	Status    int               // the receiver's answer
}

// NewWebhook starts a webhook receiver with a fresh secret and closes it
// when t ends.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	f := &Webhook{t: t, key: make([]byte, 32), closing: make(chan struct{})}
	_, _ = rand.Read(f.key)
	f.Secret = "whsec_" + base64.StdEncoding.EncodeToString(f.key)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = testLogger(t, "pushtest.Webhook: ")
	f.srv.Start()
	f.URL = f.srv.URL + "/push"
	t.Cleanup(func() {
		close(f.closing)
		f.srv.Close()
	})
	return f
}

// Options returns webhook options pointing at the receiver.
func (f *Webhook) Options() push.WebhookOptions {
	return push.WebhookOptions{URL: f.URL, Secret: f.Secret}
}

// Client returns a client for the receiver (any client will do: it serves
// plain HTTP).
func (f *Webhook) Client() *http.Client { return f.srv.Client() }

// AnswerToken makes every later request for token (the body's "token")
// answered a (nil: back to normal). Reason is ignored.
func (f *Webhook) AnswerToken(token string, a *Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.setToken(token, a)
}

// AnswerNext makes the next n requests (for tokens without an AnswerToken)
// answered a.
func (f *Webhook) AnswerNext(n int, a Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.addNext(n, a)
}

// Requests returns every request so far, in order of arrival.
func (f *Webhook) Requests() []WebhookRequest { return f.all() }

// Count is how many requests were made for token.
func (f *Webhook) Count(token string) int { return f.count(token) }

// Wait returns the first n requests once they have come, failing t if
// they do not within WaitLimit.
func (f *Webhook) Wait(t testing.TB, n int) []WebhookRequest {
	t.Helper()
	return f.wait(t, n)
}

func (f *Webhook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := WebhookRequest{
		Time: time.Now(), Header: r.Header.Clone(), Body: body,
		ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
	}
	bodyErr := json.Unmarshal(body, &rec.Fields)
	status, delay, retryAfter := f.judge(r, &rec, bodyErr)
	rec.Status = status
	f.record(rec.Fields["token"], rec)
	hold(r.Context(), f.closing, delay)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
}

func (f *Webhook) judge(r *http.Request, rec *WebhookRequest, bodyErr error) (status int, delay time.Duration, retryAfter string) {
	violation := func(status int, why string) (int, time.Duration, string) {
		f.t.Errorf("pushtest.Webhook: %s %s: %s", r.Method, r.URL.Path, why)
		return status, 0, ""
	}
	if r.Method != http.MethodPost || r.URL.Path != "/push" {
		return violation(http.StatusNotFound, "want POST /push")
	}
	if err := VerifyWebhook(f.Secret, r.Header, rec.Body, time.Now()); err != nil {
		return violation(http.StatusUnauthorized, err.Error())
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return violation(http.StatusBadRequest, fmt.Sprintf("Content-Type %q", ct))
	}
	if bodyErr != nil {
		return violation(http.StatusBadRequest, "body is not a JSON object of strings: "+bodyErr.Error())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.script.take(rec.Fields["token"])
	if !ok || a.Status == 0 {
		return http.StatusOK, a.Delay, ""
	}
	return a.Status, a.Delay, a.RetryAfter
}

// VerifyWebhook checks a request as a Standard Webhooks receiver does: the
// webhook-id, a webhook-timestamp within WebhookTolerance of now, and one
// of the space-separated webhook-signature entries being "v1," + base64
// HMAC-SHA256 of id.timestamp.body under secret (whsec_<base64>).
func VerifyWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %w", ts, err)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return fmt.Errorf("webhook-timestamp %s is %v away from now", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		b64, ok := strings.CutPrefix(s, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no webhook-signature matches")
}
