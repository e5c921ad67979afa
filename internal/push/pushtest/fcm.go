package pushtest

import (
	"crypto/rand"
	"crypto/rsa"
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signald/signald/internal/push"
)

// FCM is a fake Firebase Cloud Messaging HTTP v1 API with the OAuth2
// token endpoint of Google's service accounts:
//
//   - POST /token takes a JWT bearer assertion (RFC 7523) signed RS256 with
//     the key of CredentialsFile, for the firebase.messaging scope, and
//     issues an access token that lasts TokenLifetime.
//   - POST /v1/projects/<ProjectID>/messages:send takes a bearer access
//     token it issued (401 UNAUTHENTICATED when expired or revoked) and a
//     data-only message with android priority high and a ttl; 200 with the
//     message's name, or a Google API error with an FcmError errorCode.
type FCM struct {
	URL             string // the server's base URL: FCMOptions.URL
	CredentialsFile string // the service-account JSON key file, token_uri pointing here
	ProjectID       string
	ClientEmail     string
	KeyID           string // private_key_id

	t       testing.TB
	srv     *httptest.Server
	pub     *rsa.PublicKey
	closing chan struct{}
	journal[FCMRequest]

	mu            sync.Mutex
	script        script               // guarded by mu
	tokenLifetime time.Duration        // guarded by mu
	issued        map[string]time.Time // guarded by mu: access token → expiry
	revoked       map[string]bool      // guarded by mu
	tokenRequests int                  // guarded by mu
}

// FCMRequest is one messages:send request the fake got, and its answer.
type FCMRequest struct {
	Time        time.Time
	AccessToken string
	Header      http.Header
	Body        []byte
	Token       string            // message.token
	Data        map[string]string // message.data
	Priority    string            // message.android.priority
	TTL         string            // message.android.ttl
	Status      int               // the fake's answer
	ErrorCode   string            // the FcmError errorCode answered, if any
}

var fcmTTL = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,9})?s$`)

// NewFCM starts a fake FCM with a fresh RSA key, writes its
// service-account file to a temporary directory, and closes it when t
// ends.
func NewFCM(t testing.TB) *FCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{
		ProjectID: "signald-test", ClientEmail: "signald@signald-test.iam.gserviceaccount.com", KeyID: "fake-key-1",
		t: t, pub: &key.PublicKey, closing: make(chan struct{}),
		tokenLifetime: 5 * time.Minute, issued: map[string]time.Time{}, revoked: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.serveToken)
	mux.HandleFunc("/v1/", f.serveSend)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.EnableHTTP2 = true
	f.srv.Config.ErrorLog = testLogger(t, "pushtest.FCM: ")
	f.srv.StartTLS()
	f.URL = f.srv.URL
	t.Cleanup(func() {
		close(f.closing)
		f.srv.Close()
	})

	cred, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  f.ProjectID,
		"private_key_id":              f.KeyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                f.ClientEmail,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   f.URL + "/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f.CredentialsFile = filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(f.CredentialsFile, cred, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Options returns FCM options pointing at the fake, the project taken from
// the credentials file.
func (f *FCM) Options() push.FCMOptions {
	return push.FCMOptions{CredentialsFile: f.CredentialsFile, URL: f.URL}
}

// Client returns a client that trusts the fake (and the other fakes).
func (f *FCM) Client() *http.Client { return f.srv.Client() }

// SetTokenLifetime sets how long access tokens issued from now on last
// (expires_in; 5 minutes at first).
func (f *FCM) SetTokenLifetime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenLifetime = d
}

// RevokeAccessTokens makes every access token issued so far answered 401
// UNAUTHENTICATED; tokens issued later work.
func (f *FCM) RevokeAccessTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok := range f.issued {
		f.revoked[tok] = true
	}
}

// TokenRequests is how many access tokens were issued.
func (f *FCM) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests
}

// AnswerToken makes every later send to registration token answered a
// (nil: back to normal). A scripted 401 also revokes the access token used.
func (f *FCM) AnswerToken(token string, a *Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.setToken(token, a)
}

// AnswerNext makes the next n sends (to tokens without an AnswerToken)
// answered a.
func (f *FCM) AnswerNext(n int, a Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script.addNext(n, a)
}

// Requests returns every send request so far, in order of arrival.
func (f *FCM) Requests() []FCMRequest { return f.all() }

// Count is how many sends were made to registration token.
func (f *FCM) Count(token string) int { return f.count(token) }

// Wait returns the first n send requests once they have come, failing t
// if they do not within WaitLimit.
func (f *FCM) Wait(t testing.TB, n int) []FCMRequest {
	t.Helper()
	return f.wait(t, n)
}

func (f *FCM) serveToken(w http.ResponseWriter, r *http.Request) {
	fail := func(why string) {
		f.t.Errorf("pushtest.FCM: token request: %s", why)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": why})
	}
	if r.Method != http.MethodPost {
		fail("not POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail(fmt.Sprintf("grant_type %q", g))
		return
	}
	tok, err := jwt.Parse(r.PostForm.Get("assertion"), func(tok *jwt.Token) (any, error) {
		if kid, _ := tok.Header["kid"].(string); kid != f.KeyID {
			return nil, fmt.Errorf("kid %q, want %q", kid, f.KeyID)
		}
		return f.pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.ClientEmail),
		jwt.WithAudience(f.URL+"/token"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		fail("assertion: " + err.Error())
		return
	}
	claims, _ := tok.Claims.(jwt.MapClaims)
	scope, _ := claims["scope"].(string)
	if !strings.Contains(" "+scope+" ", " https://www.googleapis.com/auth/firebase.messaging ") {
		fail(fmt.Sprintf("scope %q lacks firebase.messaging", scope))
		return
	}

	f.mu.Lock()
	f.tokenRequests++
	access := fmt.Sprintf("ya29.fake-%d-%s", f.tokenRequests, rand.Text())
	lifetime := f.tokenLifetime
	f.issued[access] = time.Now().Add(lifetime)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "expires_in": int(lifetime / time.Second), "token_type": "Bearer",
	})
}

// googleStatus is the Google API status of an HTTP status.
func googleStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusInternalServerError:
		return "INTERNAL"
	default:
		return "UNKNOWN"
	}
}

// writeGoogleError writes a Google API error, with an FcmError detail when
// errorCode is not empty.
func writeGoogleError(w http.ResponseWriter, code int, errorCode, message string) {
	e := map[string]any{"code": code, "message": message, "status": googleStatus(code)}
	if errorCode != "" {
		e["details"] = []map[string]string{{
			"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode,
		}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (f *FCM) serveSend(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := FCMRequest{Time: time.Now(), Header: r.Header.Clone(), Body: body}
	rec.AccessToken, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")

	var msg struct {
		Message struct {
			Token   string         `json:"token"`
			Data    map[string]any `json:"data"`
			Android struct {
				Priority string `json:"priority"`
				TTL      string `json:"ttl"`
			} `json:"android"`
		} `json:"message"`
	}
	var raw map[string]map[string]json.RawMessage
	bodyErr := json.Unmarshal(body, &msg)
	if bodyErr == nil {
		bodyErr = json.Unmarshal(body, &raw)
	}
	rec.Token, rec.Priority, rec.TTL = msg.Message.Token, msg.Message.Android.Priority, msg.Message.Android.TTL
	if msg.Message.Data != nil {
		rec.Data = map[string]string{}
		for k, v := range msg.Message.Data {
			s, ok := v.(string)
			if !ok && bodyErr == nil {
				bodyErr = fmt.Errorf("data %q is not a string", k)
			}
			rec.Data[k] = s
		}
	}

	code, errorCode, message, delay, retryAfter := f.judge(r, &rec, raw, bodyErr)
	rec.Status, rec.ErrorCode = code, errorCode
	f.record(rec.Token, rec)
	hold(r.Context(), f.closing, delay)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if code != http.StatusOK {
		writeGoogleError(w, code, errorCode, message)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"name": fmt.Sprintf("projects/%s/messages/0:%d", f.ProjectID, time.Now().UnixNano()),
	})
}

func (f *FCM) judge(r *http.Request, rec *FCMRequest, raw map[string]map[string]json.RawMessage, bodyErr error) (code int, errorCode, message string, delay time.Duration, retryAfter string) {
	violation := func(code int, errorCode, why string) (int, string, string, time.Duration, string) {
		f.t.Errorf("pushtest.FCM: %s %s: %s", r.Method, r.URL.Path, why)
		return code, errorCode, why, 0, ""
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+f.ProjectID+"/messages:send" {
		return violation(http.StatusNotFound, "", fmt.Sprintf("want POST /v1/projects/%s/messages:send", f.ProjectID))
	}
	f.mu.Lock()
	expiry, known := f.issued[rec.AccessToken]
	revoked := f.revoked[rec.AccessToken]
	f.mu.Unlock()
	if !known {
		return violation(http.StatusUnauthorized, "", "no access token issued by this fake")
	}
	if revoked || time.Now().After(expiry) {
		return http.StatusUnauthorized, "", "Request had invalid authentication credentials. Expected OAuth 2 access token.", 0, ""
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Content-Type %q", ct))
	}
	if bodyErr != nil {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", "body: "+bodyErr.Error())
	}
	for k := range raw["message"] {
		if k != "token" && k != "data" && k != "android" {
			return violation(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("message.%s: want a data-only message (token, data, android)", k))
		}
	}
	if rec.Token == "" {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", "no message.token")
	}
	if rec.Priority != "high" {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("android.priority %q, want high", rec.Priority))
	}
	if !fcmTTL.MatchString(rec.TTL) {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("android.ttl %q", rec.TTL))
	}
	if b, _ := json.Marshal(rec.Data); len(b) > 4096 {
		return violation(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("data of %d bytes, limit 4096", len(b)))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.script.take(rec.Token)
	if !ok || a.Status == 0 || a.Status == http.StatusOK {
		return http.StatusOK, "", "", a.Delay, ""
	}
	if a.Status == http.StatusUnauthorized {
		f.revoked[rec.AccessToken] = true
	}
	msg := "scripted " + googleStatus(a.Status)
	if a.Reason == "UNREGISTERED" {
		msg = "Requested entity was not found."
	}
	return a.Status, a.Reason, msg, a.Delay, a.RetryAfter
}
