// Package app wires signald together: options from flags and environment,
// the store, engine, hub and server, and their start and ordered shutdown.
// cmd/signald only turns signals into a context and calls Main.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/server"
)

// Well-known values used by --dev. They are public, so a server started
// with them must never face the internet; Run logs a warning.
const (
	DevJWTSecret  = "signald-dev-secret"
	DevAdminToken = "signald-dev-admin-token"
)

// MinSecretBytes is the shortest userSig secret and admin token accepted
// outside --dev: 256 bits, out of reach of guessing, as HS256 wants.
const MinSecretBytes = 32

// Options is everything signald can be configured with.
type Options struct {
	Addr            string
	RedisURL        string // "": the embedded in-memory store
	RedisPrefix     string
	RedisMode       string // single, sentinel or cluster: how RedisURL is read
	JWTSecret       string
	AdminToken      string
	Dev             bool
	LogFormat       string // json or text
	LogLevel        string // debug, info, warn, error
	JWTLeeway       time.Duration
	ShutdownTimeout time.Duration
	// HTTP requests other than WebSockets (which their own limits govern
	// once upgraded): the whole request must arrive within ReadTimeout, the
	// answer be written within WriteTimeout, and an idle keep-alive
	// connection is closed after IdleTimeout.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	DrainPeriod                                        time.Duration // after SIGTERM, /readyz is 503 this long before connections are closed
	NodeID                                             string        // this instance's name among those sharing a Redis; "" picks a random one
	PprofAddr                                          string        // where to serve net/http/pprof; "" (the default) serves none
	AdminAddr                                          string        // a second listener for metrics, pprof and the admin API; "": they are on Addr
	EventsKept                                         int           // events kept per user for resume
	EventsKeptBytes                                    int           // bytes of events kept per user
	EventsMaxBytes                                     int64         // memory mode: bytes of events kept in all
	EventsRetention                                    time.Duration // how long a user's kept events outlive the newest of them
	Server                                             server.Config
	Engine                                             invite.Config
	Push                                               push.Config // credentials of the push platforms; a platform without is off
	Scheduler                                          push.SchedulerConfig
	// PushClient, when set, is the HTTP client of every push platform (a
	// test's, trusting its fakes); nil: each makes its own.
	PushClient *http.Client

	// Demo serves the demo page at /demo; with Dev also its token and
	// group endpoints. parseOptions turns it on with --dev unless
	// SIGNALD_DEMO or --demo says otherwise.
	Demo bool
}

// DefaultOptions returns the protocol's defaults (api/README.md) and a production
// posture: no secrets, so that a forgotten setting stops the start.
func DefaultOptions() Options {
	return Options{
		Addr:            ":8080",
		RedisPrefix:     "signald:",
		RedisMode:       "single",
		LogFormat:       "json",
		LogLevel:        "info",
		JWTLeeway:       5 * time.Second,
		ShutdownTimeout: 15 * time.Second,
		HTTPReadTimeout: 10 * time.Second, HTTPWriteTimeout: 30 * time.Second, HTTPIdleTimeout: 60 * time.Second,
		EventsKept:      100,
		EventsKeptBytes: 256 << 10,
		EventsMaxBytes:  512 << 20,
		EventsRetention: 24 * time.Hour,
		Server:          server.DefaultConfig(),
		Engine:          invite.DefaultConfig(),
		Scheduler:       push.DefaultSchedulerConfig(),
	}
}

// validate fills in dev values and reports what is missing or wrong.
func (o *Options) validate() error {
	if o.Dev {
		if o.JWTSecret == "" {
			o.JWTSecret = DevJWTSecret
		}
		if o.AdminToken == "" {
			o.AdminToken = DevAdminToken
		}
	}
	var errs []error
	if o.JWTSecret == "" {
		errs = append(errs, errors.New("no userSig secret: set SIGNALD_JWT_SECRET (or --jwt-secret), or start with --dev for development"))
	} else if len(o.JWTSecret) < MinSecretBytes && !o.Dev {
		errs = append(errs, fmt.Errorf("SIGNALD_JWT_SECRET is %d bytes, at least %d are needed outside --dev (anyone who guesses it can log in as anyone): make one with `openssl rand -base64 48`", len(o.JWTSecret), MinSecretBytes))
	}
	if o.AdminToken == "" {
		errs = append(errs, errors.New("no admin token: set SIGNALD_ADMIN_TOKEN (or --admin-token), or start with --dev for development"))
	} else if len(o.AdminToken) < MinSecretBytes && !o.Dev {
		errs = append(errs, fmt.Errorf("SIGNALD_ADMIN_TOKEN is %d bytes, at least %d are needed outside --dev: make one with `openssl rand -base64 48`", len(o.AdminToken), MinSecretBytes))
	}
	if o.RedisMode != "single" && o.RedisURL == "" {
		errs = append(errs, fmt.Errorf("SIGNALD_REDIS_MODE is %s but SIGNALD_REDIS_URL is empty: set the URL, or leave the mode single for the embedded store", o.RedisMode))
	}
	if o.RedisURL != "" && !strings.HasPrefix(o.RedisURL, "redis://") && !strings.HasPrefix(o.RedisURL, "rediss://") {
		errs = append(errs, errors.New("SIGNALD_REDIS_URL must start with redis:// or rediss://"))
	}
	if o.RedisMode != "single" && o.RedisMode != "sentinel" && o.RedisMode != "cluster" {
		errs = append(errs, fmt.Errorf("SIGNALD_REDIS_MODE %q: want single, sentinel or cluster", o.RedisMode))
	}
	if o.LogFormat != "json" && o.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log format %q: want json or text", o.LogFormat))
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if o.EventsKept < 1 || o.EventsRetention <= 0 || o.EventsKeptBytes < 1 || o.EventsMaxBytes < 0 {
		errs = append(errs, errors.New("events kept and their retention must be positive"))
	}
	if err := o.Push.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Server.MaxConnections < 0 {
		errs = append(errs, errors.New("max connections must not be negative (0: from the open-file limit)"))
	}
	if o.HTTPReadTimeout <= 0 || o.HTTPWriteTimeout <= 0 || o.HTTPIdleTimeout <= 0 {
		errs = append(errs, errors.New("HTTP read, write and idle timeouts must be positive"))
	}
	if o.ShutdownTimeout <= 0 || o.JWTLeeway < 0 || o.DrainPeriod < 0 {
		errs = append(errs, errors.New("shutdown timeout must be positive, JWT leeway and drain period not negative"))
	}
	return errors.Join(errs...)
}

// envFlags binds flags whose defaults come from the environment, collecting
// environment values that do not parse.
type envFlags struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	errs    []error
	secrets []func()
}

func (e *envFlags) env(name string) (string, bool) {
	v := e.getenv(name)
	return v, v != ""
}

// secret binds a flag whose value must never be printed: its environment
// value is not shown as the default in -h (finish applies it).
func (e *envFlags) secret(p *string, flagName, envName, usage string) {
	e.fs.StringVar(p, flagName, "", usage+" ("+envName+")")
	e.secrets = append(e.secrets, func() {
		if *p == "" {
			*p = e.getenv(envName)
		}
	})
}

// finish applies what must wait for the command line to be parsed.
func (e *envFlags) finish() {
	for _, f := range e.secrets {
		f()
	}
}

func (e *envFlags) str(p *string, flagName, envName, usage string) {
	if v, ok := e.env(envName); ok {
		*p = v
	}
	e.fs.StringVar(p, flagName, *p, usage+" ("+envName+")")
}

func (e *envFlags) boolean(p *bool, flagName, envName, usage string) {
	if v, ok := e.env(envName); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want true or false", envName, v))
		}
		*p = b
	}
	e.fs.BoolVar(p, flagName, *p, usage+" ("+envName+")")
}

func (e *envFlags) duration(p *time.Duration, flagName, envName, usage string) {
	if v, ok := e.env(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want a duration such as 30s", envName, v))
		}
		*p = d
	}
	e.fs.DurationVar(p, flagName, *p, usage+" ("+envName+")")
}

func (e *envFlags) float(p *float64, flagName, envName, usage string) {
	if v, ok := e.env(envName); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want a number", envName, v))
		}
		*p = f
	}
	e.fs.Float64Var(p, flagName, *p, usage+" ("+envName+")")
}

func (e *envFlags) integer(p *int, flagName, envName, usage string) {
	if v, ok := e.env(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want a whole number", envName, v))
		}
		*p = n
	}
	e.fs.IntVar(p, flagName, *p, usage+" ("+envName+")")
}

// parseOptions reads the serve command's flags, with defaults from the
// environment; a flag given on the command line wins over the environment.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (Options, error) {
	o := DefaultOptions()
	fs := flag.NewFlagSet("signald serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: signald [serve] [flags]\n\nRuns the server. Each flag's default comes from the environment variable named\nbeside it (a flag on the command line wins); README.md has the table.\n\n")
		fs.PrintDefaults()
	}
	e := &envFlags{fs: fs, getenv: getenv}
	e.str(&o.Addr, "addr", "SIGNALD_ADDR", "listen address")
	e.secret(&o.RedisURL, "redis-url", "SIGNALD_REDIS_URL", "Redis URL (redis:// or rediss://; it may hold a password, so -h does not show it); empty for the embedded store")
	e.str(&o.RedisMode, "redis-mode", "SIGNALD_REDIS_MODE", "single, sentinel (URL names the sentinels, ?master_name=) or cluster (URL names seed nodes, ?addr= for more)")
	e.str(&o.RedisPrefix, "redis-prefix", "SIGNALD_REDIS_PREFIX", "prefix of every Redis key")
	e.secret(&o.JWTSecret, "jwt-secret", "SIGNALD_JWT_SECRET", "HS256 secret that userSig tokens are signed with, at least 32 bytes")
	e.secret(&o.AdminToken, "admin-token", "SIGNALD_ADMIN_TOKEN", "bearer token of the admin API, at least 32 bytes")
	e.boolean(&o.Dev, "dev", "SIGNALD_DEV", "development mode: well-known secret and admin token")
	e.boolean(&o.Demo, "demo", "SIGNALD_DEMO", "serve the demo page at /demo (default: on with --dev, off otherwise)")
	e.str(&o.LogFormat, "log-format", "SIGNALD_LOG_FORMAT", "log format: json or text")
	e.str(&o.LogLevel, "log-level", "SIGNALD_LOG_LEVEL", "log level: debug, info, warn or error")
	e.duration(&o.JWTLeeway, "jwt-leeway", "SIGNALD_JWT_LEEWAY", "clock leeway for userSig exp, nbf and iat")
	e.duration(&o.ShutdownTimeout, "shutdown-timeout", "SIGNALD_SHUTDOWN_TIMEOUT", "hard limit on graceful shutdown, after the drain period")
	e.str(&o.PprofAddr, "pprof-addr", "SIGNALD_PPROF_ADDR", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) for profiling; empty: off")
	e.str(&o.AdminAddr, "admin-addr", "SIGNALD_ADMIN_ADDR", "serve /metrics, pprof and the admin API on this address only (e.g. 127.0.0.1:9090 or :9090 on a private network); empty: on --addr, without pprof")
	proxies := ""
	e.str(&proxies, "trusted-proxies", "SIGNALD_TRUSTED_PROXIES", "comma-separated addresses or CIDRs of load balancers whose X-Forwarded-For names the client in logs; empty: the TCP peer is the client")
	e.str(&o.NodeID, "node-id", "SIGNALD_NODE_ID", "this instance's name among those sharing a Redis (default: random)")
	e.integer(&o.EventsKept, "events-kept", "SIGNALD_EVENTS_KEPT", "events kept per user for resume (lastEventID)")
	e.integer(&o.EventsKeptBytes, "events-kept-bytes", "SIGNALD_EVENTS_KEPT_BYTES", "bytes of events kept per user for resume (the newest always is)")
	maxBytes := int(o.EventsMaxBytes)
	e.integer(&maxBytes, "events-max-bytes", "SIGNALD_EVENTS_MAX_BYTES", "memory store: bytes of events kept in all; past it the logs of offline users go, least recently active first (0: no bound)")
	e.duration(&o.EventsRetention, "events-retention", "SIGNALD_EVENTS_RETENTION", "how long a user's kept events outlive the newest of them")
	e.duration(&o.DrainPeriod, "drain-period", "SIGNALD_DRAIN_PERIOD", "after SIGTERM, how long /readyz answers 503 before connections are closed")
	e.integer(&o.Server.CloseBatch, "close-batch", "SIGNALD_CLOSE_BATCH", "connections closed (1012) per batch on shutdown")
	e.duration(&o.Server.CloseInterval, "close-interval", "SIGNALD_CLOSE_INTERVAL", "pause between batches of closed connections")
	e.duration(&o.Server.LoginDeadline, "login-deadline", "SIGNALD_LOGIN_DEADLINE", "time a new connection has to log in")
	readLimit := int(o.Server.ReadLimit)
	e.integer(&readLimit, "read-limit", "SIGNALD_READ_LIMIT", "largest frame accepted, in bytes")
	e.integer(&o.Server.SendQueueBytes, "send-queue-bytes", "SIGNALD_SEND_QUEUE_BYTES", "bytes queued for one connection before it is closed as too slow (a client that reads is never)")
	e.duration(&o.Server.PingInterval, "ping-interval", "SIGNALD_PING_INTERVAL", "WebSocket ping interval")
	e.duration(&o.Server.WriteTimeout, "write-timeout", "SIGNALD_WRITE_TIMEOUT", "timeout of one frame's write")
	e.duration(&o.Server.RequestTimeout, "request-timeout", "SIGNALD_REQUEST_TIMEOUT", "timeout of one request's store work")
	rateLimit := float64(o.Server.RateLimit)
	e.fs.Float64Var(&rateLimit, "rate-limit", rateLimit, "requests per second per connection (SIGNALD_RATE_LIMIT)")
	if v, ok := e.env("SIGNALD_RATE_LIMIT"); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			rateLimit = f
			_ = fs.Set("rate-limit", v)
		} else {
			e.errs = append(e.errs, fmt.Errorf("SIGNALD_RATE_LIMIT=%q: want a number", v))
		}
	}
	e.integer(&o.Server.RateBurst, "rate-burst", "SIGNALD_RATE_BURST", "request burst per connection")
	origins := ""
	e.str(&origins, "allowed-origins", "SIGNALD_ALLOWED_ORIGINS", "comma-separated browser origin patterns allowed besides the server's own host")
	e.duration(&o.HTTPReadTimeout, "http-read-timeout", "SIGNALD_HTTP_READ_TIMEOUT", "time for an HTTP request, body included, to arrive (a slower one is cut off)")
	e.duration(&o.HTTPWriteTimeout, "http-write-timeout", "SIGNALD_HTTP_WRITE_TIMEOUT", "time to write an HTTP answer")
	e.duration(&o.HTTPIdleTimeout, "http-idle-timeout", "SIGNALD_HTTP_IDLE_TIMEOUT", "an idle keep-alive HTTP connection is closed after this")
	e.integer(&o.Server.MaxUnauthenticated, "max-unauthenticated", "SIGNALD_MAX_UNAUTHENTICATED", "most WebSocket connections waiting to log in; more are answered 503")
	e.integer(&o.Server.MaxConnections, "max-connections", "SIGNALD_MAX_CONNECTIONS", "most TCP connections open at once, more are answered 503; 0: the open-file limit less a reserve for Redis and files")
	e.float(&o.Engine.Limits.Rate, "invite-rate", "SIGNALD_INVITE_RATE", "invitees a user may invite per second, on every instance together (60018 beyond)")
	e.integer(&o.Engine.Limits.Burst, "invite-burst", "SIGNALD_INVITE_BURST", "invitees a user may invite at once (at least max-invitees)")
	e.integer(&o.Engine.Limits.MaxActive, "max-active-invitations", "SIGNALD_MAX_ACTIVE_INVITATIONS", "active invitations one user may have made (8013 beyond)")
	e.integer(&o.Engine.Limits.MaxPending, "max-pending-invitations", "SIGNALD_MAX_PENDING_INVITATIONS", "invitations one user may be pending in (8012 beyond)")
	e.integer(&o.Engine.MaxInvitees, "max-invitees", "SIGNALD_MAX_INVITEES", "longest inviteeList")
	e.duration(&o.Engine.MaxLifetime, "max-lifetime", "SIGNALD_MAX_LIFETIME", "maximum timeout, and lifetime of invitations without one")
	e.duration(&o.Engine.Retention, "retention", "SIGNALD_RETENTION", "how long an ended invitation stays readable")
	e.duration(&o.Engine.PollInterval, "poll-interval", "SIGNALD_POLL_INTERVAL", "how often due timeouts are looked for")
	e.duration(&o.Engine.ClaimLease, "claim-lease", "SIGNALD_CLAIM_LEASE", "how long a claimed timeout is hidden from other instances")
	e.str(&o.Push.APNs.KeyFile, "apns-key-file", "SIGNALD_APNS_KEY_FILE", "APNs token signing key (.p8 file)")
	e.str(&o.Push.APNs.KeyID, "apns-key-id", "SIGNALD_APNS_KEY_ID", "APNs key ID")
	e.str(&o.Push.APNs.TeamID, "apns-team-id", "SIGNALD_APNS_TEAM_ID", "Apple developer team ID")
	e.str(&o.Push.APNs.Topic, "apns-topic", "SIGNALD_APNS_TOPIC", "the app's bundle ID (VoIP pushes go to <bundle>.voip)")
	e.str(&o.Push.APNs.URL, "apns-url", "SIGNALD_APNS_URL", "replaces both APNs hosts (a proxy, tests); empty: Apple's")
	e.str(&o.Push.FCM.CredentialsFile, "fcm-credentials-file", "SIGNALD_FCM_CREDENTIALS_FILE", "FCM service account JSON key file")
	e.str(&o.Push.FCM.ProjectID, "fcm-project-id", "SIGNALD_FCM_PROJECT_ID", "Firebase project ID (default: the key file's)")
	e.str(&o.Push.FCM.URL, "fcm-url", "SIGNALD_FCM_URL", "replaces https://fcm.googleapis.com (a proxy, tests)")
	e.str(&o.Push.Webhook.URL, "push-webhook-url", "SIGNALD_PUSH_WEBHOOK_URL", "the app backend's URL that pushes are POSTed to")
	e.secret(&o.Push.Webhook.Secret, "push-webhook-secret", "SIGNALD_PUSH_WEBHOOK_SECRET", "the webhook's signing secret, whsec_<base64> (Standard Webhooks)")
	e.duration(&o.Scheduler.Lease, "push-lease", "SIGNALD_PUSH_LEASE", "how long a push being sent is hidden from other instances; one that died is taken over after it")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	e.finish()
	demoGiven := getenv("SIGNALD_DEMO") != ""
	fs.Visit(func(f *flag.Flag) { demoGiven = demoGiven || f.Name == "demo" })
	if !demoGiven {
		o.Demo = o.Dev
	}
	// An attempt must end well inside its lease, so that a slow platform
	// is never pushed twice.
	o.Scheduler.Attempt = min(o.Scheduler.Attempt, o.Scheduler.Lease/3)
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(e.errs) > 0 {
		return o, errors.Join(e.errs...)
	}
	o.Server.ReadLimit = int64(readLimit)
	o.EventsMaxBytes = int64(maxBytes)
	o.Server.RateLimit = rate.Limit(rateLimit)
	if origins != "" {
		o.Server.OriginPatterns = strings.Split(origins, ",")
	}
	if proxies != "" {
		p, err := parsePrefixes(proxies)
		if err != nil {
			return o, fmt.Errorf("SIGNALD_TRUSTED_PROXIES: %w", err)
		}
		o.Server.TrustedProxies = p
	}
	return o, o.validate()
}

// parsePrefixes reads a comma-separated list of addresses and CIDRs.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
