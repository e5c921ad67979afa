package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Apple's hosts; APNsOptions.URL replaces both.
const (
	APNsProductionURL = "https://api.push.apple.com"
	APNsSandboxURL    = "https://api.sandbox.push.apple.com"
)

const (
	// apnsTokenRenewAfter is the age at which the provider token is
	// replaced: APNs refuses tokens older than an hour
	// (ExpiredProviderToken) and replacements more often than every 20
	// minutes (TooManyProviderTokenUpdates).
	apnsTokenRenewAfter = 45 * time.Minute
	apnsVoIPLimit       = 5120 // bytes of a VoIP payload
	apnsAlertLimit      = 4096 // bytes of any other payload

	// apnsDefaultBody is an alert's body when the message has neither
	// title nor body (offlinePushInfo left empty); the title is then the
	// inviter.
	apnsDefaultBody = "Incoming call"
)

// APNs sends to Apple Push Notification service over HTTP/2 with
// token-based authentication. One APNs serves both PlatformAPNsVoIP
// (PushKit) and PlatformAPNs (alerts), production and sandbox targets.
// It is safe for concurrent use.
type APNs struct {
	client     *http.Client
	key        *ecdsa.PrivateKey
	keyID      string
	teamID     string
	topic      string // the bundle ID; VoIP pushes go to topic + ".voip"
	production string // base URL of production targets
	sandbox    string // base URL of Target.Sandbox ones
	now        func() time.Time

	// One provider token per key and process, shared by every request:
	// APNs throttles a key whose token changes often.
	mu     sync.Mutex
	token  string    // guarded by mu: the provider token in use ("" before the first)
	issued time.Time // guarded by mu: token's iat
}

// NewAPNs returns an APNs sender for o, which must be complete
// (APNsOptions.Validate). client, when not nil, must speak HTTP/2 to the
// server (an http.Transport with ForceAttemptHTTP2, as httptest's TLS
// client is); nil: a client of its own. The key file is read here.
func NewAPNs(o APNsOptions, client *http.Client) (*APNs, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !o.enabled() {
		return nil, errors.New("apns: not configured")
	}
	pemBytes, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("apns: signing key: %w", err)
	}
	key, err := parseAPNsKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("apns: signing key %s: %w", o.KeyFile, err)
	}
	if client == nil {
		client = apnsHTTPClient()
	}
	a := &APNs{
		client: client, key: key, keyID: o.KeyID, teamID: o.TeamID, topic: o.Topic,
		production: APNsProductionURL, sandbox: APNsSandboxURL, now: time.Now,
	}
	if o.URL != "" {
		u := strings.TrimRight(o.URL, "/")
		a.production, a.sandbox = u, u
	}
	return a, nil
}

// apnsHTTPClient is the default client: HTTP/2 with pings, so that a
// long-lived connection that died quietly is noticed.
func apnsHTTPClient() *http.Client {
	tr := defaultTransport()
	tr.ForceAttemptHTTP2 = true
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: time.Minute, PingTimeout: 15 * time.Second}
	return &http.Client{Transport: tr}
}

// CloseIdleConnections closes the client's idle connections (on shutdown).
func (a *APNs) CloseIdleConnections() { a.client.CloseIdleConnections() }

// parseAPNsKey reads a .p8 file: a PEM "PRIVATE KEY" holding a PKCS#8 EC
// P-256 key.
func parseAPNsKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY (.p8) file")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an EC P-256 key")
	}
	return ec, nil
}

// Send implements Sender: one POST /3/device/<token>, two when the
// provider token had expired (renewed, then tried once more).
//
// Errors: ErrExpired (past m.Deadline: nothing sent); ErrTooLarge (too big
// even without DroppableField); ErrUnregistered (410, BadDeviceToken,
// DeviceTokenNotForTopic); *RetryError (429, 5xx, no answer); any other
// answer is a permanent error naming APNs' reason.
func (a *APNs) Send(ctx context.Context, t Target, m Message) error {
	var pushType, topic string
	var limit int
	switch t.Platform {
	case PlatformAPNsVoIP:
		pushType, topic, limit = "voip", a.topic+".voip", apnsVoIPLimit
	case PlatformAPNs:
		pushType, topic, limit = "alert", a.topic, apnsAlertLimit
	default:
		return fmt.Errorf("apns: cannot send to platform %q", t.Platform)
	}
	if t.Token == "" {
		return errors.New("apns: empty device token")
	}
	payload, err := apnsPayload(t.Platform, m, limit)
	if err != nil {
		return err
	}
	ctx, cancel, err := beginAttempt(ctx, m, a.now())
	if err != nil {
		return err
	}
	defer cancel()

	base := a.production
	if t.Sandbox {
		base = a.sandbox
	}
	h := http.Header{}
	h.Set("apns-push-type", pushType)
	h.Set("apns-topic", topic)
	h.Set("apns-priority", "10")
	h.Set("apns-expiration", strconv.FormatInt(m.Deadline.Unix(), 10))
	if m.ID != "" {
		h.Set("apns-id", apnsID(m.ID))
	}
	h.Set("content-type", "application/json")
	req := apnsRequest{url: base + "/3/device/" + url.PathEscape(t.Token), header: h, body: payload}

	token, err := a.providerToken()
	if err != nil {
		return err
	}
	ans, err := a.post(ctx, req, token)
	if err == nil && ans.status == http.StatusForbidden && ans.reason == "ExpiredProviderToken" {
		if token, err = a.renewProviderToken(token); err != nil {
			return err
		}
		ans, err = a.post(ctx, req, token)
		if err == nil && ans.status == http.StatusForbidden && ans.reason == "ExpiredProviderToken" {
			return errors.New("apns: 403 ExpiredProviderToken right after renewal (is the clock right?)")
		}
	}
	if err != nil {
		return transportError("apns", err, m, a.now())
	}
	return ans.err(a.now())
}

type apnsRequest struct {
	url    string
	header http.Header
	body   []byte
}

// apnsAnswer is what APNs said: its status, the reason of its JSON body
// ({"reason": "..."}, with "timestamp" on 410), and its headers.
type apnsAnswer struct {
	status int
	reason string
	header http.Header
}

func (a *APNs) post(ctx context.Context, r apnsRequest, token string) (apnsAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return apnsAnswer{}, err
	}
	req.Header = r.header.Clone()
	req.Header.Set("authorization", "bearer "+token)
	resp, err := a.client.Do(req)
	if err != nil {
		return apnsAnswer{}, err
	}
	body := readAnswer(resp)
	ans := apnsAnswer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(body, &e) == nil && e.Reason != "" {
			ans.reason = e.Reason
		} else {
			ans.reason = http.StatusText(resp.StatusCode)
		}
	}
	return ans, nil
}

// err maps an answer to Send's errors.
func (ans apnsAnswer) err(now time.Time) error {
	switch {
	case ans.status == http.StatusOK:
		return nil
	case ans.status == http.StatusGone,
		ans.status == http.StatusBadRequest && (ans.reason == "BadDeviceToken" || ans.reason == "DeviceTokenNotForTopic"):
		return fmt.Errorf("apns: %d %s: %w", ans.status, ans.reason, ErrUnregistered)
	case ans.status == http.StatusTooManyRequests || ans.status >= 500:
		return &RetryError{
			After: parseRetryAfter(ans.header, now),
			Err:   fmt.Errorf("apns: %d %s", ans.status, ans.reason),
		}
	default:
		return fmt.Errorf("apns: %d %s", ans.status, ans.reason)
	}
}

// providerToken returns the provider token in use, signing a new one when
// there is none yet or it is apnsTokenRenewAfter old.
func (a *APNs) providerToken() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.token != "" && now.Sub(a.issued) < apnsTokenRenewAfter {
		return a.token, nil
	}
	return a.signLocked(now)
}

// renewProviderToken replaces stale, which APNs called expired, unless a
// concurrent Send replaced it already: many requests refused at once make
// one new token, not one each.
func (a *APNs) renewProviderToken(stale string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != stale {
		return a.token, nil
	}
	return a.signLocked(a.now())
}

func (a *APNs) signLocked(now time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": a.teamID, "iat": now.Unix()})
	tok.Header["kid"] = a.keyID
	s, err := tok.SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("apns: signing provider token: %w", err)
	}
	a.token, a.issued = s, now
	return s, nil
}

// apnsID derives the apns-id from a message ID: the first 16 bytes of its
// SHA-256 as a version 8 (RFC 9562, custom) UUID, lower case. Every retry
// of a message, from any instance, carries the same apns-id.
func apnsID(id string) string {
	sum := sha256.Sum256([]byte(id))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// apnsAlert is the aps dictionary of an alert push.
type apnsAlert struct {
	Alert struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	} `json:"alert"`
	Sound string `json:"sound"`
}

// apnsPayload is m's JSON payload: the fields at top level and "aps" (empty
// for VoIP: PushKit hands the whole payload to the app; an alert for an
// alert push). A payload over limit loses DroppableField; one still over it
// is ErrTooLarge.
func apnsPayload(p Platform, m Message, limit int) ([]byte, error) {
	body := make(map[string]any, len(m.Fields)+1)
	for k, v := range m.Fields {
		body[k] = v
	}
	if p == PlatformAPNs {
		var aps apnsAlert
		aps.Alert.Title, aps.Alert.Body = m.Title, m.Body
		if m.Title == "" && m.Body == "" {
			aps.Alert.Title, aps.Alert.Body = m.Fields["inviter"], apnsDefaultBody
		}
		aps.Sound = "default"
		body["aps"] = aps
	} else {
		body["aps"] = struct{}{}
	}
	b, err := marshalPayload(body)
	if err != nil {
		return nil, fmt.Errorf("apns: %w", err)
	}
	if len(b) > limit {
		if _, ok := body[DroppableField]; ok {
			delete(body, DroppableField)
			if b, err = marshalPayload(body); err != nil {
				return nil, fmt.Errorf("apns: %w", err)
			}
		}
	}
	if len(b) > limit {
		return nil, fmt.Errorf("apns: %w: %d bytes, limit %d", ErrTooLarge, len(b), limit)
	}
	return b, nil
}

// marshalPayload encodes v as compact JSON without HTML escaping, which
// would only make a size-limited payload bigger.
func marshalPayload(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
