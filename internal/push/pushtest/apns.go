package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signald/signald/internal/push"
)

// APNs is a fake Apple Push Notification service: HTTP/2 over TLS,
// POST /3/device/<token>, provider tokens (ES256 JWTs) verified with the
// public half of the key written to KeyFile.
//
// It answers as APNs does: 200 with an apns-id; 403 MissingProviderToken /
// InvalidProviderToken for a token not made with its key, KeyID and
// TeamID, 403 ExpiredProviderToken for one issued over an hour ago (or
// expired by ExpireProviderTokens or a scripted ExpiredProviderToken);
// 400 with APNs' reasons for a bad header, 413 PayloadTooLarge beyond
// 5120 bytes (VoIP) or 4096 (alert); anything scripted with AnswerToken
// or AnswerNext. Errors carry {"reason": ...}, and on 410 a "timestamp".
type APNs struct {
	URL     string // the server's base URL: APNsOptions.URL
	KeyFile string // the .p8 file of the signing key
	KeyID   string
	TeamID  string
	Topic   string // the bundle ID

	t       testing.TB
	srv     *httptest.Server
	pub     *ecdsa.PublicKey
	closing chan struct{} // closed by cleanup: delayed answers return
	journal[APNsRequest]

	mu      sync.Mutex
	script  script          // guarded by mu
	seen    map[string]bool // guarded by mu: provider tokens accepted
	expired map[string]bool // guarded by mu: provider tokens called expired
}

// APNsRequest is one request the fake APNs got, and its answer.
type APNsRequest struct {
	Time          time.Time
	Proto         string // "HTTP/2.0"
	Token         string // the device token of the path
	Header        http.Header
	ProviderToken string // the JWT of the authorization header
	Body          []byte
	Payload       map[string]any // Body decoded; nil if it is not a JSON object
	Status        int            // the fake's answer
	Reason        string
}

var uuidLower = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NewAPNs starts a fake APNs with a fresh P-256 key, its .p8 file in a
// temporary directory, and closes it when t ends.
func NewAPNs(t testing.TB) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &APNs{
		KeyID: "ABC123DEFG", TeamID: "TEAM123456", Topic: "com.example.signald",
		t: t, pub: &key.PublicKey, closing: make(chan struct{}),
		seen: map[string]bool{}, expired: map[string]bool{},
	}
	f.KeyFile = filepath.Join(t.TempDir(), "AuthKey_"+f.KeyID+".p8")
	if err := os.WriteFile(f.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.Config.ErrorLog = testLogger(t, "pushtest.APNs: ")
	f.srv.StartTLS()
	f.URL = f.srv.URL
	t.Cleanup(func() {
		close(f.closing)
		f.srv.Close()
	})
	return f
}

// Options returns APNs options pointing at the fake.
func (f *APNs) Options() push.APNsOptions {
	return push.APNsOptions{KeyFile: f.KeyFile, KeyID: f.KeyID, TeamID: f.TeamID, Topic: f.Topic, URL: f.URL}
}

// Client returns an HTTP/2 client that trusts the fake (and the other
// fakes: they share httptest's certificate).
func (f *APNs) Client() *http.Client { return f.srv.Client() }

// AnswerToken makes every later request to token answered a (nil: back to
// normal).
func (f *APNs) AnswerToken(token string, a *Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.setToken(token, a)
}

// AnswerNext makes the next n requests (to tokens without an AnswerToken)
// answered a.
func (f *APNs) AnswerNext(n int, a Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.addNext(n, a)
}

// ExpireProviderTokens makes every provider token seen so far answered 403
// ExpiredProviderToken from now on.
func (f *APNs) ExpireProviderTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok := range f.seen {
		f.expired[tok] = true
	}
}

// ProviderTokens is how many different provider tokens were accepted.
func (f *APNs) ProviderTokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// Requests returns every request so far, in order of arrival.
func (f *APNs) Requests() []APNsRequest { return f.all() }

// Count is how many requests were made to token.
func (f *APNs) Count(token string) int { return f.count(token) }

// Wait returns the first n requests once they have come, failing t if
// they do not within WaitLimit.
func (f *APNs) Wait(t testing.TB, n int) []APNsRequest {
	t.Helper()
	return f.wait(t, n)
}

func (f *APNs) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := APNsRequest{Time: time.Now(), Proto: r.Proto, Header: r.Header.Clone(), Body: body}
	if tok, ok := strings.CutPrefix(r.URL.Path, "/3/device/"); ok {
		rec.Token = tok
	}
	rec.ProviderToken, _ = strings.CutPrefix(r.Header.Get("authorization"), "bearer ")
	_ = json.Unmarshal(body, &rec.Payload)

	status, reason, delay, retryAfter := f.judge(r, &rec)
	rec.Status, rec.Reason = status, reason
	f.record(rec.Token, rec)
	hold(r.Context(), f.closing, delay)

	id := r.Header.Get("apns-id")
	if id == "" {
		id = "00000000-0000-4000-8000-" + fmt.Sprintf("%012x", time.Now().UnixNano()&0xffffffffffff)
	}
	w.Header().Set("apns-id", id)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	ans := map[string]any{"reason": reason}
	if status == http.StatusGone {
		ans["timestamp"] = time.Now().UnixMilli()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ans)
}

// judge decides the answer to a request: a protocol violation first (also
// reported to the test), then the provider token, then the script.
func (f *APNs) judge(r *http.Request, rec *APNsRequest) (status int, reason string, delay time.Duration, retryAfter string) {
	violation := func(status int, reason, why string) (int, string, time.Duration, string) {
		f.t.Errorf("pushtest.APNs: %s %s: %s", r.Method, r.URL.Path, why)
		return status, reason, 0, ""
	}
	if r.ProtoMajor != 2 {
		return violation(http.StatusBadRequest, "BadPath", "not HTTP/2 but "+r.Proto)
	}
	if r.Method != http.MethodPost {
		return violation(http.StatusMethodNotAllowed, "MethodNotAllowed", "not POST")
	}
	if !strings.HasPrefix(r.URL.Path, "/3/device/") {
		return violation(http.StatusNotFound, "BadPath", "not /3/device/<token>")
	}
	if rec.Token == "" {
		return violation(http.StatusBadRequest, "MissingDeviceToken", "no device token")
	}
	if rec.ProviderToken == "" {
		return violation(http.StatusForbidden, "MissingProviderToken", "no authorization: bearer <JWT>")
	}
	iat, err := f.verifyProviderToken(rec.ProviderToken)
	if err != nil {
		return violation(http.StatusForbidden, "InvalidProviderToken", err.Error())
	}

	pushType, topic := r.Header.Get("apns-push-type"), r.Header.Get("apns-topic")
	limit := 4096
	switch pushType {
	case "voip":
		limit = 5120
		if topic != f.Topic+".voip" {
			return violation(http.StatusBadRequest, "TopicDisallowed", fmt.Sprintf("voip push to topic %q, want %q", topic, f.Topic+".voip"))
		}
	case "alert":
		if topic != f.Topic {
			return violation(http.StatusBadRequest, "TopicDisallowed", fmt.Sprintf("alert push to topic %q, want %q", topic, f.Topic))
		}
	default:
		return violation(http.StatusBadRequest, "InvalidPushType", fmt.Sprintf("apns-push-type %q", pushType))
	}
	if p := r.Header.Get("apns-priority"); p != "10" && p != "5" && p != "1" {
		return violation(http.StatusBadRequest, "BadPriority", fmt.Sprintf("apns-priority %q", p))
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			return violation(http.StatusBadRequest, "BadExpirationDate", fmt.Sprintf("apns-expiration %q", e))
		}
	}
	if id := r.Header.Get("apns-id"); id != "" && !uuidLower.MatchString(id) {
		return violation(http.StatusBadRequest, "BadMessageId", fmt.Sprintf("apns-id %q is not a lower-case UUID", id))
	}
	if len(rec.Body) == 0 {
		return violation(http.StatusBadRequest, "PayloadEmpty", "empty payload")
	}
	if len(rec.Body) > limit {
		return violation(http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("%d bytes, limit %d", len(rec.Body), limit))
	}
	if _, ok := rec.Payload["aps"].(map[string]any); !ok {
		return violation(http.StatusBadRequest, "PayloadEmpty", "payload is not a JSON object with an aps dictionary")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.expired[rec.ProviderToken] || time.Since(iat) > time.Hour {
		return http.StatusForbidden, "ExpiredProviderToken", 0, ""
	}
	f.seen[rec.ProviderToken] = true
	a, ok := f.script.take(rec.Token)
	if !ok || a.Status == 0 || a.Status == http.StatusOK {
		return http.StatusOK, "", a.Delay, ""
	}
	if a.Reason == "ExpiredProviderToken" {
		f.expired[rec.ProviderToken] = true
	}
	return a.Status, a.Reason, a.Delay, a.RetryAfter
}

// verifyProviderToken checks a provider token's ES256 signature, kid and
// iss, and returns its iat.
func (f *APNs) verifyProviderToken(s string) (time.Time, error) {
	tok, err := jwt.Parse(s, func(tok *jwt.Token) (any, error) {
		if kid, _ := tok.Header["kid"].(string); kid != f.KeyID {
			return nil, fmt.Errorf("kid %q, want %q", kid, f.KeyID)
		}
		return f.pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(f.TeamID))
	if err != nil {
		return time.Time{}, fmt.Errorf("provider token: %w", err)
	}
	iat, err := tok.Claims.GetIssuedAt()
	if err != nil || iat == nil {
		return time.Time{}, fmt.Errorf("provider token without iat")
	}
	return iat.Time, nil
}
