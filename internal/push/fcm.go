package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	jwtconfig "golang.org/x/oauth2/jwt"
)

// FCMDefaultURL is the FCM HTTP v1 API's base; FCMOptions.URL replaces it.
const FCMDefaultURL = "https://fcm.googleapis.com"

const (
	// fcmScope is the OAuth2 scope of the HTTP v1 send API.
	fcmScope = "https://www.googleapis.com/auth/firebase.messaging"
	// fcmDataLimit is the most bytes of a message's data (measured as its
	// JSON object, which slightly overcounts what FCM counts).
	fcmDataLimit = 4096
	// fcmTokenEarly is how long before its expiry an access token is
	// replaced, so that none expires in flight.
	fcmTokenEarly = time.Minute
)

// FCM sends data messages through the Firebase Cloud Messaging HTTP v1
// API, authenticated by OAuth2 access tokens of a service account. It is
// safe for concurrent use.
type FCM struct {
	client  *http.Client
	jwt     *jwtconfig.Config // the service account's key and token_uri
	sendURL string            // <base>/v1/projects/<project>/messages:send
	now     func() time.Time

	// One access token, shared by every request and replaced shortly
	// before it expires or when FCM refuses it. tokenSem is a lock that a
	// waiter can give up on when its ctx ends: only one fetch runs at a
	// time, the others wait for its token.
	tokenSem chan struct{}
	token    *oauth2.Token // guarded by tokenSem
}

// NewFCM returns an FCM sender for o, which must be complete
// (FCMOptions.Validate). client, when not nil, is used for FCM and the
// token endpoint (token_uri) alike; nil: a client of its own. The
// credentials file is read here.
func NewFCM(o FCMOptions, client *http.Client) (*FCM, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !o.enabled() {
		return nil, errors.New("fcm: not configured")
	}
	data, err := os.ReadFile(o.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	conf, err := google.JWTConfigFromJSON(data, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials %s: %w", o.CredentialsFile, err)
	}
	project := o.ProjectID
	if project == "" {
		var f struct {
			ProjectID string `json:"project_id"`
		}
		_ = json.Unmarshal(data, &f) // JWTConfigFromJSON parsed it already
		if project = f.ProjectID; project == "" {
			return nil, fmt.Errorf("fcm: credentials %s name no project_id: set SIGNALD_FCM_PROJECT_ID", o.CredentialsFile)
		}
	}
	base := FCMDefaultURL
	if o.URL != "" {
		base = strings.TrimRight(o.URL, "/")
	}
	if client == nil {
		client = &http.Client{Transport: defaultTransport()}
	}
	return &FCM{
		client:   client,
		jwt:      conf,
		sendURL:  base + "/v1/projects/" + url.PathEscape(project) + "/messages:send",
		now:      time.Now,
		tokenSem: make(chan struct{}, 1),
	}, nil
}

// CloseIdleConnections closes the client's idle connections (on shutdown).
func (f *FCM) CloseIdleConnections() { f.client.CloseIdleConnections() }

// fcmRequest is the body of messages:send, data-only: the app decides what
// to show.
type fcmRequest struct {
	Message struct {
		Token   string            `json:"token"`
		Data    map[string]string `json:"data"`
		Android struct {
			Priority string `json:"priority"`
			TTL      string `json:"ttl"`
		} `json:"android"`
	} `json:"message"`
}

// Send implements Sender: one POST messages:send, two when FCM refused the
// access token (401: a fresh one is fetched and the send tried once more).
// The data is m.Fields plus "pushID": m.ID; the ttl is the whole seconds
// left until m.Deadline.
//
// Errors: ErrExpired (past m.Deadline: nothing sent); ErrTooLarge (data too
// big even without DroppableField); ErrUnregistered (errorCode
// UNREGISTERED); *RetryError (429, 5xx, no answer, token endpoint
// unreachable or failing); any other answer is a permanent error naming
// FCM's status and errorCode.
func (f *FCM) Send(ctx context.Context, t Target, m Message) error {
	if t.Platform != PlatformFCM {
		return fmt.Errorf("fcm: cannot send to platform %q", t.Platform)
	}
	if t.Token == "" {
		return errors.New("fcm: empty registration token")
	}
	data := copyFields(m.Fields, 1)
	data["pushID"] = m.ID
	if n := fcmDataSize(data); n > fcmDataLimit {
		delete(data, DroppableField)
		if n = fcmDataSize(data); n > fcmDataLimit {
			return fmt.Errorf("fcm: %w: data of %d bytes, limit %d", ErrTooLarge, n, fcmDataLimit)
		}
	}
	now := f.now()
	ctx, cancel, err := beginAttempt(ctx, m, now)
	if err != nil {
		return err
	}
	defer cancel()

	var body fcmRequest
	body.Message.Token = t.Token
	body.Message.Data = data
	body.Message.Android.Priority = "high"
	body.Message.Android.TTL = strconv.FormatInt(int64(m.Deadline.Sub(now)/time.Second), 10) + "s"
	payload, err := marshalPayload(body)
	if err != nil {
		return fmt.Errorf("fcm: %w", err)
	}

	tok, err := f.accessToken(ctx, nil)
	if err != nil {
		return f.tokenError(err, m)
	}
	ans, err := f.post(ctx, payload, tok)
	if err == nil && ans.httpStatus == http.StatusUnauthorized {
		if tok, err = f.accessToken(ctx, tok); err != nil {
			return f.tokenError(err, m)
		}
		ans, err = f.post(ctx, payload, tok)
	}
	if err != nil {
		return transportError("fcm", err, m, f.now())
	}
	return ans.err(f.now())
}

// fcmDataSize is the size of data as a JSON object.
func fcmDataSize(data map[string]string) int {
	b, err := marshalPayload(data)
	if err != nil {
		return 0
	}
	return len(b)
}

// fcmAnswer is what FCM said: the Google API error
// {"error":{"code","message","status","details":[{"@type":
// ".../google.firebase.fcm.v1.FcmError","errorCode"}]}}.
type fcmAnswer struct {
	httpStatus int
	status     string // INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, ...
	errorCode  string // FcmError's: UNREGISTERED, QUOTA_EXCEEDED, ...
	message    string
	header     http.Header
}

func (f *FCM) post(ctx context.Context, payload []byte, tok *oauth2.Token) (fcmAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sendURL, bytes.NewReader(payload))
	if err != nil {
		return fcmAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := f.client.Do(req)
	if err != nil {
		return fcmAnswer{}, err
	}
	body := readAnswer(resp)
	ans := fcmAnswer{httpStatus: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Status  string `json:"status"`
				Details []struct {
					Type      string `json:"@type"`
					ErrorCode string `json:"errorCode"`
				} `json:"details"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e) // a body not of that shape leaves the HTTP status alone
		ans.status, ans.message = e.Error.Status, e.Error.Message
		for _, d := range e.Error.Details {
			if strings.HasSuffix(d.Type, "google.firebase.fcm.v1.FcmError") {
				ans.errorCode = d.ErrorCode
			}
		}
	}
	return ans, nil
}

func (ans fcmAnswer) err(now time.Time) error {
	what := strconv.Itoa(ans.httpStatus)
	for _, s := range []string{ans.status, ans.errorCode} {
		if s != "" {
			what += " " + s
		}
	}
	switch {
	case ans.httpStatus == http.StatusOK:
		return nil
	case ans.errorCode == "UNREGISTERED":
		return fmt.Errorf("fcm: %s: %w", what, ErrUnregistered)
	case ans.httpStatus == http.StatusTooManyRequests || ans.httpStatus >= 500:
		return &RetryError{After: parseRetryAfter(ans.header, now), Err: fmt.Errorf("fcm: %s", what)}
	default:
		if ans.message != "" {
			what += ": " + ans.message
		}
		return fmt.Errorf("fcm: %s", what)
	}
}

// accessToken returns the cached access token, or fetches one when there
// is none, it is about to expire, or it is refused, the token FCM just
// answered 401 to (unless a concurrent Send replaced it already). The
// fetch is bounded by ctx.
func (f *FCM) accessToken(ctx context.Context, refused *oauth2.Token) (*oauth2.Token, error) {
	select {
	case f.tokenSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.tokenSem }()
	if t := f.token; t != nil && t != refused && f.now().Before(t.Expiry.Add(-fcmTokenEarly)) {
		return t, nil
	}
	// The jwt package posts to token_uri with the client it finds in the
	// context, without passing it the context; the client below binds
	// that request to ctx.
	hc := &http.Client{Transport: ctxTransport{ctx: ctx, base: f.client}}
	t, err := f.jwt.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc)).Token()
	if err != nil {
		return nil, err
	}
	if t.Expiry.IsZero() {
		// Google's tokens last an hour; one that says nothing is taken to
		// last a few minutes.
		t.Expiry = f.now().Add(5 * time.Minute)
	}
	f.token = t
	return t, nil
}

// tokenError classifies a failure to get an access token: the token
// endpoint's 4xx (a revoked key, a bad file) is permanent, anything else
// may pass.
func (f *FCM) tokenError(err error, m Message) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		if code != http.StatusTooManyRequests && code < 500 {
			// The token endpoint's OAuth2 error, e.g. {"error":
			// "invalid_grant", "error_description": "Invalid JWT
			// Signature."}: a deleted key, a wrong file.
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			_ = json.Unmarshal(re.Body, &e)
			return fmt.Errorf("fcm: access token refused: %d %s %s", code, e.Error, e.Description)
		}
		return &RetryError{After: parseRetryAfter(re.Response.Header, f.now()), Err: fmt.Errorf("fcm: access token: %d", code)}
	}
	return transportError("fcm: access token", err, m, f.now())
}

// ctxTransport sends every request with ctx, through base's transport.
type ctxTransport struct {
	ctx  context.Context
	base *http.Client
}

func (c ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tr := c.base.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	return tr.RoundTrip(r.WithContext(c.ctx))
}
