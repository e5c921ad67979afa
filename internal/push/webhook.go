package push

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Webhook sends pushes to the app's own backend: a POST of a JSON object
// signed as Standard Webhooks (standardwebhooks.com) sign, so that any of
// their libraries verifies it. It is safe for concurrent use.
type Webhook struct {
	client *http.Client
	url    string
	key    []byte // the HMAC-SHA256 key: the secret's decoded base64
	now    func() time.Time
}

// NewWebhook returns a webhook sender for o, which must be complete
// (WebhookOptions.Validate). client, when not nil, is used as given but for
// redirects, which are not followed (a redirected POST would lose its
// body, or replay it somewhere unsigned-for); nil: a client of its own.
func NewWebhook(o WebhookOptions, client *http.Client) (*Webhook, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !o.enabled() {
		return nil, errors.New("push webhook: not configured")
	}
	key, err := webhookKey(o.Secret)
	if err != nil {
		return nil, err
	}
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Transport = defaultTransport()
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Webhook{client: &c, url: o.URL, key: key, now: time.Now}, nil
}

// CloseIdleConnections closes the client's idle connections (on shutdown).
func (w *Webhook) CloseIdleConnections() { w.client.CloseIdleConnections() }

// Send implements Sender: one signed POST of m.Fields plus "userID",
// "deviceID" and "token" (t's). The webhook-id is m.ID, the same on every
// retry, so that the receiver can drop a duplicate.
//
// Errors: ErrExpired (past m.Deadline: nothing sent); ErrUnregistered
// (410); *RetryError for any other answer but 2xx, and for no answer.
func (w *Webhook) Send(ctx context.Context, t Target, m Message) error {
	if t.Platform != PlatformWebhook {
		return fmt.Errorf("push webhook: cannot send to platform %q", t.Platform)
	}
	if m.ID == "" {
		return errors.New("push webhook: message has no ID (the webhook-id)")
	}
	now := w.now()
	ctx, cancel, err := beginAttempt(ctx, m, now)
	if err != nil {
		return err
	}
	defer cancel()
	fields := copyFields(m.Fields, 3)
	fields["userID"], fields["deviceID"], fields["token"] = t.User, t.Device, t.Token
	body, err := marshalPayload(fields)
	if err != nil {
		return fmt.Errorf("push webhook: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("push webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", webhookSignature(w.key, m.ID, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return transportError("push webhook", err, m, w.now())
	}
	readAnswer(resp)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return fmt.Errorf("push webhook: 410: %w", ErrUnregistered)
	default:
		return &RetryError{
			After: parseRetryAfter(resp.Header, w.now()),
			Err:   fmt.Errorf("push webhook: %d", resp.StatusCode),
		}
	}
}

// webhookSignature is the Standard Webhooks signature of one request:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func webhookSignature(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
