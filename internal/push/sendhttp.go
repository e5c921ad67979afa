package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors a Sender returns besides those of sender.go. Both are permanent
// for the message: no later attempt can succeed.
var (
	// ErrExpired: the message's deadline had passed (or it had none), so
	// nothing was sent.
	ErrExpired = errors.New("push: message past its deadline")
	// ErrTooLarge: the payload exceeds the platform's limit even without
	// DroppableField.
	ErrTooLarge = errors.New("push: payload too large")
)

// maxAnswerBytes bounds how much of a platform's answer is read: error
// bodies are small JSON objects.
const maxAnswerBytes = 64 << 10

// beginAttempt checks that m may still be sent at now and returns ctx
// bounded by m's deadline as well, so that no request outlives it.
func beginAttempt(ctx context.Context, m Message, now time.Time) (context.Context, context.CancelFunc, error) {
	if m.Deadline.IsZero() {
		return nil, nil, fmt.Errorf("%w: message has no deadline", ErrExpired)
	}
	if !now.Before(m.Deadline) {
		return nil, nil, ErrExpired
	}
	if err := ctx.Err(); err != nil {
		// The attempt was not made: whoever gave us ctx (a shutdown, a
		// per-attempt timeout) may try again, another instance may.
		return nil, nil, &RetryError{Err: fmt.Errorf("push: not sent: %w", err)}
	}
	ctx, cancel := context.WithDeadline(ctx, m.Deadline)
	return ctx, cancel, nil
}

// transportError classifies a failed round trip (no answer): a later
// attempt may succeed, unless the message's deadline is what stopped it.
func transportError(platform string, err error, m Message, now time.Time) error {
	if !now.Before(m.Deadline) {
		return fmt.Errorf("%w (%s: %v)", ErrExpired, platform, err)
	}
	return &RetryError{Err: fmt.Errorf("%s: %w", platform, err)}
}

// readAnswer reads at most maxAnswerBytes of resp's body and closes it,
// draining a little so that the connection can be reused.
func readAnswer(resp *http.Response) []byte {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	resp.Body.Close()
	return body
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date, relative to now. Zero when absent, malformed or in the past.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// defaultTransport is a fresh transport like http.DefaultTransport's
// (proxy from the environment, HTTP/2 when the server offers it), so that
// each sender has connections of its own.
func defaultTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// copyFields returns a copy of f with room for extra more entries: a
// sender adds or drops fields without touching the caller's map.
func copyFields(f map[string]string, extra int) map[string]string {
	c := make(map[string]string, len(f)+extra)
	for k, v := range f {
		c[k] = v
	}
	return c
}
