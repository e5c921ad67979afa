package health_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/health"
)

// store is a Pinger whose answer the test sets. Down, it black-holes: the
// ping waits for its deadline, as a Redis that vanished from the network.
type store struct{ down atomic.Bool }

func (s *store) Ping(ctx context.Context) error {
	if s.down.Load() {
		<-ctx.Done()
		return errors.New("i/o timeout")
	}
	return nil
}

type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// TestMonitorNoticesWithinASecond: a store that stops answering is reported
// unready within one interval and one ping timeout (750 ms by default),
// however it fails, and ready again as soon as it answers; each change is
// logged once, not once per ping.
func TestMonitorNoticesWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &store{}
		var out logs
		reg := prometheus.NewRegistry()
		m, err := health.New(s, health.Options{Name: "redis", Logger: slog.New(slog.NewJSONHandler(&out, nil)), Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		if m.Err() == nil {
			t.Fatal("ready before the first ping")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		if err := m.Err(); err != nil {
			t.Fatalf("a store that answers: %v", err)
		}

		const step = time.Millisecond // how finely the test looks
		for round := range 3 {
			s.down.Store(true)
			lost := time.Now()
			for m.Err() == nil {
				time.Sleep(step)
			}
			if took := time.Since(lost); took > 750*time.Millisecond+step {
				t.Fatalf("round %d: unready %v after the store stopped answering, want at most 750ms", round, took)
			}
			if got := gauge(t, reg, "signald_store_up"); got != 0 {
				t.Fatalf("signald_store_up %v while down", got)
			}
			time.Sleep(10 * time.Second) // many failed pings
			s.down.Store(false)
			back := time.Now()
			for m.Err() != nil {
				time.Sleep(step)
			}
			if took := time.Since(back); took > 750*time.Millisecond+step {
				t.Fatalf("round %d: ready %v after the store came back, want at most 750ms", round, took)
			}
			time.Sleep(10 * time.Second)
		}
		if lost, back := out.count("store unreachable"), out.count("store reachable again"); lost != 3 || back != 3 {
			t.Fatalf("logged %d losses and %d returns over three outages; want one of each per outage:\n%s", lost, back, out.buf.String())
		}
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
