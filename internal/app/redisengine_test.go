package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/hub"
	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redisbus"
	"github.com/signald/signald/internal/redisstore"
	"github.com/signald/signald/internal/server"
)

// redisEngine is an engine on a Redis store and bus wired as the daemon
// wires them, for the tests that drive the engine directly and count what
// reaches Redis.
type redisEngine struct {
	eng   *sig.Engine
	store *redisstore.Store
	bus   *redisbus.Bus
	pub   *server.Publisher
}

// redisEngineOptions: the zero value is node "n1", the default config, no
// offline pusher, the real clock, and the bus not run.
type redisEngineOptions struct {
	node   string
	cfg    *sig.Config
	pusher sig.OfflinePusher
	now    func() time.Time
	// runBus runs the bus (its Pub/Sub subscriptions) until the test ends.
	runBus bool
}

func newRedisEngine(t *testing.T, c *redis.Client, prefix string, o redisEngineOptions) redisEngine {
	t.Helper()
	if o.node == "" {
		o.node = "n1"
	}
	cfg := sig.DefaultConfig()
	if o.cfg != nil {
		cfg = *o.cfg
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := hub.NewHub(reg, sig.EventNames()...)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := redisbus.New(redisbus.Options{Client: c, Prefix: prefix, Node: o.node, Hub: hb, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if o.runBus {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- bs.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	pub, err := server.NewPublisher(bs, reg)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := sig.NewEngine(cfg, sig.Deps{
		Store: store, Quotas: store, Groups: store, Publisher: pub, Pusher: o.pusher,
		Logger: logger, Registry: reg, Node: o.node, Now: o.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return redisEngine{eng: eng, store: store, bus: bs, pub: pub}
}

// eachPusher runs f as two subtests: without an offline pusher, where the
// step that publishes a change's event also forgets its outbox entry, and
// with one, where the entry waits for the pushes.
func eachPusher(t *testing.T, f func(t *testing.T, pusher sig.OfflinePusher)) {
	t.Run("complete(no pusher)", func(t *testing.T) { f(t, nil) })
	t.Run("pusher", func(t *testing.T) { f(t, nopPusher{}) })
}
