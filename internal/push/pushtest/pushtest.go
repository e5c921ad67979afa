// Package pushtest has fakes of the push platforms that speak their real
// protocols, for tests of package push and end-to-end tests of signald:
//
//   - APNs: HTTP/2 over TLS, ES256 provider tokens checked against the key
//     the fake made (its .p8 file written to a temp dir), APNs' headers and
//     answers ({"reason": ...}).
//   - FCM: the HTTP v1 messages:send endpoint and the OAuth2 token endpoint
//     its service-account file (written to a temp dir) names as token_uri;
//     Google API error bodies.
//   - Webhook: a receiver that verifies Standard Webhooks signatures.
//
// Each fake records every request, counts them per device token, can be
// scripted to answer errors (for one token, or for the next n requests)
// and to answer slowly, and is closed by t.Cleanup. A request breaking the
// protocol is answered as the platform would and reported with t.Errorf.
// All fakes serve the same test certificate (httptest's), so the client of
// any of them trusts them all. Every method is safe for concurrent use.
package pushtest

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Answer scripts how a fake answers a request instead of accepting it.
type Answer struct {
	// Status is the HTTP status; 0 accepts the request (after Delay).
	Status int
	// Reason is APNs' reason ("BadDeviceToken") or FCM's errorCode
	// ("UNREGISTERED"); the webhook receiver ignores it.
	Reason string
	// RetryAfter, when not empty, is sent as the Retry-After header.
	RetryAfter string
	// Delay holds the answer back this long, or until the request is
	// cancelled or the fake closed.
	Delay time.Duration
}

// script is a fake's scripted answers: per token first (they stay until
// replaced), then the queue of the next requests.
type script struct {
	byToken map[string]Answer
	next    []Answer
}

// take returns the answer scripted for a request to token, if any.
func (s *script) take(token string) (Answer, bool) {
	if a, ok := s.byToken[token]; ok {
		return a, true
	}
	if len(s.next) > 0 {
		a := s.next[0]
		s.next = s.next[1:]
		return a, true
	}
	return Answer{}, false
}

func (s *script) setToken(token string, a *Answer) {
	if a == nil {
		delete(s.byToken, token)
		return
	}
	if s.byToken == nil {
		s.byToken = map[string]Answer{}
	}
	s.byToken[token] = *a
}

func (s *script) addNext(n int, a Answer) {
	for range n {
		s.next = append(s.next, a)
	}
}

// WaitLimit is how long Wait waits for requests before it fails the test:
// long, since it only bounds a test that is already broken.
var WaitLimit = 30 * time.Second

// journal records a fake's requests.
type journal[R any] struct {
	mu      sync.Mutex
	reqs    []R            // guarded by mu
	byToken map[string]int // guarded by mu
	changed chan struct{}  // guarded by mu: closed and replaced on every record
}

func (j *journal[R]) record(token string, r R) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.reqs = append(j.reqs, r)
	if j.byToken == nil {
		j.byToken = map[string]int{}
	}
	j.byToken[token]++
	if j.changed != nil {
		close(j.changed)
		j.changed = nil
	}
}

func (j *journal[R]) all() []R {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.reqs)
}

func (j *journal[R]) count(token string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.byToken[token]
}

// waitContext returns the first n requests once there are n.
func (j *journal[R]) waitContext(ctx context.Context, n int) ([]R, error) {
	for {
		j.mu.Lock()
		if len(j.reqs) >= n {
			r := slices.Clone(j.reqs[:n])
			j.mu.Unlock()
			return r, nil
		}
		if j.changed == nil {
			j.changed = make(chan struct{})
		}
		ch, got := j.changed, len(j.reqs)
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d requests of %d: %w", got, n, ctx.Err())
		}
	}
}

func (j *journal[R]) wait(t testing.TB, n int) []R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	r, err := j.waitContext(ctx, n)
	if err != nil {
		t.Fatalf("waiting for requests: %v", err)
	}
	return r
}

// hold waits d, or until ctx ends or closing is closed.
func hold(ctx context.Context, closing <-chan struct{}, d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-closing:
	}
}

// testLogger sends a server's own complaints (a TLS handshake cut short by
// a closing client, say) to t's log rather than the process's stderr.
func testLogger(t testing.TB, prefix string) *log.Logger {
	return log.New(logWriter{t}, prefix, 0)
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
