// Package apptest is what the tests that start a whole daemon in-process
// share: the stores they run on and the daemon options for each. For tests
// only (it needs the redis-server of package redistest).
package apptest

import (
	"testing"
	"time"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/leaktest"
	"github.com/signald/signald/internal/redistest"
)

// Backends are the stores every such test runs on.
var Backends = []string{"memory", "redis"}

// ForEachBackend runs fn once per store, each with its own daemon options
// (Options), checking that no goroutine outlives it (CheckLeaks).
func ForEachBackend(t *testing.T, fn func(t *testing.T, o app.Options)) {
	for _, b := range Backends {
		t.Run(b, func(t *testing.T) {
			CheckLeaks(t)
			fn(t, Options(t, b))
		})
	}
}

// CheckLeaks verifies, after every other cleanup of t, that no goroutine
// started since the call outlived the test. Call it first thing in the
// test.
func CheckLeaks(t *testing.T) {
	t.Helper()
	leaktest.Check(t, redistest.IgnoreServer())
}

// Options are a development daemon's options on backend ("memory", or
// "redis": the package's redis-server under a fresh prefix), listening on
// a free loopback port, with a fast timeout loop.
func Options(t testing.TB, backend string) app.Options {
	t.Helper()
	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true
	o.LogFormat = "text"
	o.Engine.PollInterval = 10 * time.Millisecond
	o.ShutdownTimeout = 10 * time.Second
	if backend == "redis" {
		c, prefix := redistest.NewClient(t)
		o.RedisURL = "redis://" + c.Options().Addr
		o.RedisPrefix = prefix
	}
	return o
}
