package app

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/health"
	"github.com/signald/signald/internal/hub"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/memstore"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/redisbus"
	"github.com/signald/signald/internal/redisstore"
	"github.com/signald/signald/internal/server"
)

// Main runs the signald command line: `signald [serve] [flags]`,
// `signald token --user U [--ttl D]`, `signald version` or `signald help`.
// It returns when ctx ends (after a graceful shutdown) or on a
// configuration error; asking for help or the version is no error.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			cmd = "help"
		case "-version", "--version":
			cmd = "version"
		}
	}
	switch cmd {
	case "serve":
		o, err := parseOptions(args, getenv, helpOut(args, stdout, stderr))
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		logger, err := newLogger(o, stderr)
		if err != nil {
			return err
		}
		// go-redis logs (dial failures, pool trouble) through one
		// process-wide logger: make it ours, so JSON logs stay JSON.
		redis.SetLogger(redisLogger{logger})
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		d, err := Start(ctx, o, logger, reg, reg)
		if err != nil {
			return err
		}
		return d.Wait()
	case "token":
		err := mintToken(args, getenv, stdout, helpOut(args, stdout, stderr))
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "version":
		_, err := fmt.Fprintln(stdout, Version())
		return err
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q (want serve, token, version or help)", cmd)
	}
}

const usage = `signald: a signaling server for call invitations.

usage:
  signald [serve] [flags]                run the server; "signald serve -h" lists its flags,
                                          each also read from SIGNALD_<NAME> (see README.md)
  signald token --user U [--ttl 24h]     print a userSig for U, signed with SIGNALD_JWT_SECRET
                                          (or --dev's well-known secret)
  signald version                        print the version (also --version)
  signald help                           print this (also -h, --help)
`

// helpOut is where a command's flag set writes: stdout when help was asked
// for (it is the answer), stderr otherwise (the usage explains an error).
func helpOut(args []string, stdout, stderr io.Writer) io.Writer {
	for _, a := range args {
		switch a {
		case "--":
			return stderr
		case "-h", "-help", "--help":
			return stdout
		}
	}
	return stderr
}

// Version describes this build: the module version (or "devel"), the
// commit it was built from, and the Go toolchain.
func Version() string {
	v, rev := "devel", ""
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
	}
	out := "signald " + v
	if rev != "" {
		out += " (" + rev + ")"
	}
	return fmt.Sprintf("%s, protocol %d, %s", out, protocol.Version, goVersion)
}

func mintToken(args []string, getenv func(string) string, stdout, flagOut io.Writer) error {
	fs := flag.NewFlagSet("signald token", flag.ContinueOnError)
	fs.SetOutput(flagOut)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: signald token --user U [--ttl 24h] [--jwt-secret S | --dev]\n\nPrints a userSig (an HS256 JWT) for userID U.\n\n")
		fs.PrintDefaults()
	}
	user := fs.String("user", "", "userID the token is for (its sub claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	secret := fs.String("jwt-secret", "", "HS256 secret (default: SIGNALD_JWT_SECRET)")
	dev := fs.Bool("dev", false, "sign with the well-known development secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q (the user is given with --user)", fs.Arg(0))
	}
	if *secret == "" {
		*secret = getenv("SIGNALD_JWT_SECRET")
	}
	if *dev && *secret == "" {
		*secret = DevJWTSecret
	}
	switch {
	case *secret == "":
		return errors.New("no secret: set SIGNALD_JWT_SECRET (or --jwt-secret), or pass --dev")
	case invite.CheckID("user", *user) != nil:
		return errors.New("--user must name a non-empty userID of at most 128 bytes")
	case *ttl <= 0:
		return errors.New("--ttl must be positive")
	}
	tok, err := auth.Mint([]byte(*secret), *user, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(o Options, w io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(o.LogLevel)
	if err != nil {
		return nil, err
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, hopts)), nil
}

// backend is what a store offers the rest of signald.
type backend interface {
	invite.Store
	invite.Quotas
	group.Store
	device.Store
	push.Queue
	Ping(ctx context.Context) error
}

// Daemon is a running signald.
type Daemon struct {
	// Addr is the address the server listens on (useful with port 0), and
	// AdminAddr its admin listener's ("" when it has none: the admin
	// routes are on Addr).
	Addr, AdminAddr string
	done            chan error
}

// Wait blocks until the daemon has shut down and returns why it stopped:
// nil after a graceful shutdown.
func (d *Daemon) Wait() error { return <-d.done }

// Start validates o, opens the store, listens and serves until ctx ends,
// then shuts down in order: stop accepting and close connections (1012),
// stop the HTTP server, stop the timeout loop, close the store. Metrics are
// registered on reg and served from gather.
func Start(ctx context.Context, o Options, logger *slog.Logger, reg prometheus.Registerer, gather prometheus.Gatherer) (*Daemon, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if logger == nil || reg == nil || gather == nil {
		return nil, errors.New("app: logger and metrics registry are required")
	}
	if o.Dev {
		logger.Warn("development mode: userSig secret and admin token are well-known values; never expose this server")
	}
	var steps shutdownSteps
	adminAddr := ""
	node := o.NodeID
	if node == "" {
		node = rand.Text()[:12]
	}
	// This process among all that ever shared the store: a connection is
	// (instance, session) in the origin of the events it causes, and
	// sessions start again at 1 in every process, so a restarted instance
	// with the same node ID must not take a dead one's connections for its
	// own (it would spare them events they never heard of).
	instance := node + "." + rand.Text()[:8]
	store, err := openStore(ctx, o, node, logger)
	if err != nil {
		return nil, err
	}
	steps.add("store", func(context.Context) error { return store.Close() })
	fail := func(err error) (*Daemon, error) {
		steps.run(context.Background(), logger)
		return nil, err
	}
	monitor, err := health.New(store, health.Options{Name: storeName(o), Logger: logger, Registry: reg})
	if err != nil {
		return fail(err)
	}
	monitor.Check(ctx) // so that /readyz is right from the first probe
	steps.goLoop("store health", monitor.Run)

	hb, err := hub.NewHub(reg, invite.EventNames()...)
	if err != nil {
		return fail(err)
	}
	// The bus exists before the server; the server that receives its gap
	// reports is filled in once made.
	var gapTo atomic.Pointer[server.Server]
	onGap := func(users []string) {
		if s := gapTo.Load(); s != nil {
			s.CatchUp(users)
		}
	}
	bs, err := openBus(o, store, hb, instance, logger, onGap)
	if err != nil {
		return fail(err)
	}
	// The bus runs before anything can Watch: its loop confirms subscriptions.
	steps.goLoop("event bus", bs.Run)
	senders, err := push.NewSenders(o.Push, o.PushClient)
	if err != nil {
		return fail(err)
	}
	steps.add("push connections", func(context.Context) error {
		for _, snd := range senders {
			if c, ok := snd.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
		return nil
	})
	for _, p := range device.Platforms {
		if senders[p] == nil {
			logger.Info("offline push platform off: no credentials", "platform", p)
		} else {
			logger.Info("offline push platform on", "platform", p)
		}
	}
	pusher, err := push.NewScheduler(o.Scheduler, push.SchedulerDeps{
		Devices: store, Queue: store, Invitations: store, Senders: senders, Logger: logger, Registry: reg,
	})
	if err != nil {
		return fail(err)
	}
	publisher, err := server.NewPublisher(bs, reg)
	if err != nil {
		return fail(err)
	}
	// With no platform on, no device can be registered, so nothing is ever
	// pushed: the engine asks for no pushes, and spares every ring a
	// device lookup (a Redis round trip) and the presence read.
	var offline invite.OfflinePusher
	if len(senders) > 0 {
		offline = pusher
	}
	engine, err := invite.NewEngine(o.Engine, invite.Deps{
		Store: store, Quotas: store, Groups: store, Publisher: publisher,
		Pusher: offline, Logger: logger, Registry: reg, Node: instance,
	})
	if err != nil {
		return fail(err)
	}
	if o.Server.MaxConnections == 0 {
		o.Server.MaxConnections = autoMaxConnections(fileLimit())
	}
	demoPage, err := newDemo(o, store)
	if err != nil {
		return fail(err)
	}
	srv, err := server.New(o.Server, server.Deps{
		Engine: engine, Hub: hb, Bus: bs, Node: instance, Verifier: auth.NewVerifier([]byte(o.JWTSecret), o.JWTLeeway),
		Health: monitor, Groups: store,
		Devices: store, PushEnabled: pusher.Enabled, AdminToken: o.AdminToken,
		Logger: logger, Registry: reg, Gatherer: gather, Demo: demoPage,
	})
	if err != nil {
		return fail(err)
	}
	gapTo.Store(srv)

	steps.goLoop("push scheduler", pusher.Run)
	steps.goLoop("timeout loop", engine.Run)

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", o.Addr, err))
	}
	ln = srv.Listener(ln)
	public := srv.Handler()
	if o.AdminAddr != "" {
		// Metrics, the profiler and the admin API on their own listener:
		// the public one faces the internet with the WebSocket and the
		// health checks only.
		public = srv.PublicHandler()
		aln, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fail(fmt.Errorf("admin listener on %s: %w", o.AdminAddr, err))
		}
		steps.add("admin http server", serveHTTP(aln, srv.AdminHandler(), o, logger, 0))
		logger.Info("admin listening", "addr", aln.Addr().String())
		adminAddr = aln.Addr().String()
	}
	serveErr := make(chan error, 1)
	httpSrv := newHTTPServer(public, o, logger, o.HTTPWriteTimeout)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	steps.add("http server", func(ctx context.Context) error {
		err := httpSrv.Shutdown(ctx)
		if e := <-serveErr; !errors.Is(e, http.ErrServerClosed) && err == nil {
			err = e
		}
		return err
	})
	steps.add("connections", srv.Shutdown)
	if o.PprofAddr != "" {
		stop, err := servePprof(o.PprofAddr, logger)
		if err != nil {
			return fail(err)
		}
		steps.add("pprof", stop)
	}
	logger.Info("signald listening", "addr", ln.Addr().String(), "store", storeName(o), "node", node, "instance", instance, "dev", o.Dev, "maxConnections", o.Server.MaxConnections)

	d := &Daemon{Addr: ln.Addr().String(), AdminAddr: adminAddr, done: make(chan error, 1)}
	go func() {
		var cause error
		select {
		case <-ctx.Done():
			if o.DrainPeriod > 0 {
				logger.Info("draining: /readyz answers 503", "for", o.DrainPeriod)
				srv.Drain()
				t := time.NewTimer(o.DrainPeriod)
				select {
				case <-t.C:
				case cause = <-serveErr:
					serveErr <- cause
					t.Stop()
				}
			}
			logger.Info("shutting down")
		case cause = <-serveErr:
			serveErr <- cause // for the http server step
			logger.Error("http server failed", "err", cause)
		}
		sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
		defer cancel()
		if err := steps.run(sctx, logger); err != nil && cause == nil {
			cause = err
		}
		logger.Info("stopped")
		d.done <- cause
	}()
	return d, nil
}

// autoMaxConnections is the connection cap for a file limit: the limit less
// a reserve (a tenth, at least 64) for Redis connections, the listener and
// files, so that a full server still answers the next client and keeps
// its own connections working. 0 (no cap) when the limit is unknown.
func autoMaxConnections(limit int) int {
	if limit <= 0 {
		return 0
	}
	return max(limit-max(64, limit/10), 1)
}

func storeName(o Options) string {
	if o.RedisURL == "" {
		return "memory"
	}
	return "redis"
}

// newHTTPServer returns an HTTP server for h with o's read timeouts and
// writeTimeout (0: none, for the admin listener, whose CPU profiles take
// as long as they are asked to).
func newHTTPServer(h http.Handler, o Options, logger *slog.Logger, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, o.HTTPReadTimeout),
		ReadTimeout:       o.HTTPReadTimeout, // cleared for a WebSocket once upgraded
		WriteTimeout:      writeTimeout,
		IdleTimeout:       o.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves h on ln until the returned shutdown step runs.
func serveHTTP(ln net.Listener, h http.Handler, o Options, logger *slog.Logger, writeTimeout time.Duration) func(context.Context) error {
	srv := newHTTPServer(h, o, logger, writeTimeout)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		<-done
		return err
	}
}

// servePprof serves the Go profiler on its own listener, never on the
// public one: profiles show internals and cost CPU to take.
func servePprof(addr string, logger *slog.Logger) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		<-done
		return err
	}, nil
}

// runningBus is a bus.Bus with the loop that serves it.
type runningBus interface {
	bus.Bus
	Run(ctx context.Context) error
}

// openBus returns the event bus of the store: in memory for the embedded
// store, Redis sharded Pub/Sub and streams when instances share a Redis.
func openBus(o Options, store closingBackend, hb *hub.Hub, node string, logger *slog.Logger, onGap func([]string)) (runningBus, error) {
	rb, ok := store.(redisBackend)
	if !ok {
		return bus.NewMemBus(hb, bus.MemBusOptions{Keep: o.EventsKept, KeepBytes: o.EventsKeptBytes,
			MaxBytes: o.EventsMaxBytes, Retention: o.EventsRetention}), nil
	}
	return redisbus.New(redisbus.Options{
		Client: rb.client, Prefix: o.RedisPrefix, Node: node, Hub: hb,
		Keep: o.EventsKept, KeepBytes: o.EventsKeptBytes, Retention: o.EventsRetention, Logger: logger, OnGap: onGap,
	})
}

type closingBackend interface {
	backend
	Close() error
}

type memBackend struct{ *memstore.Store }

func (memBackend) Close() error { return nil }

type redisBackend struct {
	*redisstore.Store
	client redis.UniversalClient
}

func (r redisBackend) Close() error { return r.client.Close() }

func openStore(ctx context.Context, o Options, node string, logger *slog.Logger) (closingBackend, error) {
	if o.RedisURL == "" {
		return memBackend{memstore.New()}, nil
	}
	client, err := newRedisClient(o, "signald-"+node)
	if err != nil {
		return nil, err
	}
	s, err := redisstore.New(redisstore.Options{Client: client, Prefix: o.RedisPrefix})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		// Not fatal: /readyz says 503 until Redis answers, and requests
		// answer 90994 meanwhile; an orchestrator may start us first.
		logger.Warn("redis not reachable yet", "mode", o.RedisMode, "err", err)
	}
	return redisBackend{Store: s, client: client}, nil
}

// newRedisClient makes the client of SIGNALD_REDIS_MODE from
// SIGNALD_REDIS_URL: a single server, a Sentinel-managed primary (the URL
// names the sentinels and master_name), or a Redis Cluster (the URL names
// seed nodes). go-redis's URL parameters (timeouts, pool size) apply to all.
//
// Every connection is named (CLIENT SETNAME) name, so that an operator
// reading CLIENT LIST, or a test, can tell the instances apart; a
// client_name in the URL wins.
func newRedisClient(o Options, name string) (redis.UniversalClient, error) {
	switch o.RedisMode {
	case "sentinel":
		fo, err := redis.ParseFailoverURL(o.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("SIGNALD_REDIS_URL (sentinel): %w", err)
		}
		if fo.MasterName == "" {
			return nil, errors.New("SIGNALD_REDIS_URL (sentinel) needs ?master_name=")
		}
		if fo.ClientName == "" {
			fo.ClientName = name
		}
		return redis.NewFailoverClient(fo), nil
	case "cluster":
		co, err := redis.ParseClusterURL(o.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("SIGNALD_REDIS_URL (cluster): %w", err)
		}
		if co.ClientName == "" {
			co.ClientName = name
		}
		return redis.NewClusterClient(co), nil
	default:
		ro, err := redis.ParseURL(o.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("SIGNALD_REDIS_URL: %w", err)
		}
		if ro.ClientName == "" {
			ro.ClientName = name
		}
		return redis.NewClient(ro), nil
	}
}

// redisLogger hands go-redis's log lines to slog, at warn: they tell of
// connections that failed.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), "component", "go-redis")
}

// shutdownSteps runs named teardown steps in reverse order of setup.
type shutdownSteps struct {
	names []string
	fns   []func(context.Context) error
}

func (s *shutdownSteps) add(name string, fn func(context.Context) error) {
	s.names = append(s.names, name)
	s.fns = append(s.fns, fn)
}

// goLoop starts run in a goroutine now and adds the step that stops it and
// waits for it.
func (s *shutdownSteps) goLoop(name string, run func(context.Context) error) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = run(ctx) }()
	s.add(name, func(context.Context) error { stop(); <-done; return nil })
}

func (s *shutdownSteps) run(ctx context.Context, logger *slog.Logger) error {
	var errs []error
	for i := len(s.fns) - 1; i >= 0; i-- {
		start := time.Now()
		if err := s.fns[i](ctx); err != nil {
			logger.Warn("shutdown step failed", "step", s.names[i], "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.names[i], err))
		} else {
			logger.Debug("shutdown step done", "step", s.names[i], "took", time.Since(start))
		}
	}
	return errors.Join(errs...)
}
