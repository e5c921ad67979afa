// Package health watches whether the store answers, so that /readyz can
// tell a load balancer within a second of Redis going away, without a
// round trip per probe, and an operator reads one log line when Redis is
// lost and one when it is back, not one per failed request.
package health

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pinger is what is watched: Ping answers nil while the store can serve.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Monitor pings a Pinger every Interval, each ping bounded by Timeout, and
// remembers the last answer. Run is its loop.
type Monitor struct {
	p        Pinger
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	name     string

	mu        sync.Mutex
	err       error     // the last ping's answer; guarded by mu
	checked   bool      // a ping has answered; guarded by mu
	downSince time.Time // when the store stopped answering, zero while up; guarded by mu

	up prometheus.Gauge
}

// Options configure a Monitor.
type Options struct {
	Name     string        // what is watched, for logs and the metric ("redis")
	Interval time.Duration // between pings; 250ms when zero
	Timeout  time.Duration // of one ping; 500ms when zero
	Logger   *slog.Logger  // required
	Registry prometheus.Registerer
}

// New returns a Monitor of p that has not pinged yet: until its first ping
// answers, Err reports the store as not yet known to answer.
func New(p Pinger, o Options) (*Monitor, error) {
	if p == nil || o.Logger == nil || o.Registry == nil {
		return nil, errors.New("health: Pinger, Logger and Registry are required")
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	m := &Monitor{
		p: p, interval: o.Interval, timeout: o.Timeout, log: o.Logger, name: o.Name,
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signald_store_up",
			Help: "1 while the store (Redis, or memory) answered the last health ping, else 0.",
		}),
	}
	if err := o.Registry.Register(m.up); err != nil {
		return nil, err
	}
	return m, nil
}

// errNotChecked is Err before the first ping has answered.
var errNotChecked = errors.New("not checked yet")

// Err returns nil while the store answered the last ping, else why not.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.checked {
		return errNotChecked
	}
	return m.err
}

// Run pings until ctx ends, then returns nil.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check pings once and records the answer, logging a change of state.
func (m *Monitor) Check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, m.timeout)
	err := m.p.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not the store's fault
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.checked && m.err == nil
	first := !m.checked
	m.err, m.checked = err, true
	switch {
	case err != nil && (was || first):
		m.downSince = time.Now()
		m.up.Set(0)
		m.log.Warn("store unreachable: requests answer 90994 and /readyz 503 until it is back", "store", m.name, "err", err)
	case err == nil && !was:
		m.up.Set(1)
		if !first {
			m.log.Info("store reachable again", "store", m.name, "down", time.Since(m.downSince).Round(time.Millisecond))
		}
		m.downSince = time.Time{}
	}
}
