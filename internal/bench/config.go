package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioIdle    = "idle"
	ScenarioCalls   = "calls"
	ScenarioGroup   = "group"
	ScenarioGap     = "gap"
	ScenarioMemory  = "memory"
	ScenarioInvites = "invites"
)

// The invites scenario's warm-up and invite timeout: issue #11's shape.
// The command line applies them when -warmup and -invite-timeout are not
// given; a Config filled by hand says what it wants.
const (
	InvitesWarmup        = 3 * time.Second
	InvitesInviteTimeout = 60
)

// maxDataSize is the largest data signald accepts (invite.MaxDataBytes).
const maxDataSize = 12 << 10

// Config is everything a run is configured with. The command line of
// signald-bench maps onto it one to one; tests fill it directly.
type Config struct {
	Scenario string `json:"scenario"`

	URL string `json:"url"` // ws://host:port/v1/ws
	// OtherURL, when set, is a second instance of the same deployment: every
	// other connection (the callees of the calls scenario) goes there, so
	// that each event crosses instances. Server figures are the first's.
	OtherURL   string `json:"otherURL,omitempty"`
	AdminURL   string `json:"adminURL"`   // http://host:port; "" derives it from URL
	MetricsURL string `json:"metricsURL"` // http://host:port/metrics; "" derives it, "off" disables scraping
	AdminToken string `json:"-"`
	Secret     string `json:"-"` // HS256 secret userSigs are minted with
	Prefix     string `json:"prefix"`

	SrcAddrs        int `json:"srcAddrs"`        // bind connections to 127.0.0.1 … 127.0.0.K
	DialConcurrency int `json:"dialConcurrency"` // connects (dial + login) in flight

	// idle
	Conns int           `json:"conns"`
	Hold  time.Duration `json:"holdNs"`

	// calls
	Pairs         int           `json:"pairs"`
	Inflight      int           `json:"inflight"`
	Rate          float64       `json:"rate"` // setups started per second; 0 = as fast as Inflight allows
	Duration      time.Duration `json:"durationNs"`
	Warmup        time.Duration `json:"warmupNs"`
	RejectPct     float64       `json:"rejectPct"`
	CancelPct     float64       `json:"cancelPct"`
	TimeoutPct    float64       `json:"timeoutPct"`
	InviteTimeout int           `json:"inviteTimeout"` // seconds, the invite's timeout parameter
	DataSize      int           `json:"dataSize"`      // bytes of invite data; 0 = a short {"cmd":"videoCall"}

	// gap (besides Conns and the calls settings, which make its load)
	Kills        int           `json:"kills"`          // CLIENT KILL TYPE pubsub, this many times
	KillInterval time.Duration `json:"killIntervalNs"` // between kills, and after the last

	// invites (invites.go): Callees idle logged-in users, Callers callers
	// with PerCaller invites in flight each, closed loop (or paced to Rate),
	// for Warmup + Duration; InviteTimeout and DataSize shape the invite.
	Callers   int `json:"callers"`
	Callees   int `json:"callees"`
	PerCaller int `json:"perCaller"`
	// CancelDelivered: the caller cancels each invitation once it has been
	// delivered, so that none piles up against signald's quotas (100 active
	// per inviter, 100 pending per invitee). Off, they stay pending until
	// their timeout and the server's quotas must be raised.
	CancelDelivered bool `json:"cancelDelivered"`

	// group
	GroupSize int `json:"groupSize"`
	Rounds    int `json:"rounds"`

	// memory (memory.go): the server's heap (and Redis's memory) per pending
	// invitation, and after a flood of invitations has ended.
	PprofURL         string        `json:"pprofURL,omitempty"` // the daemon's --pprof-addr as http://host:port: forced GCs before each heap reading
	Pending          int           `json:"pending"`            // pending invitations per pass
	PendingDataSizes []int         `json:"pendingDataSizes"`   // one pass per size, bytes of data
	PendingTimeout   int           `json:"pendingTimeout"`     // seconds; 0: no deadline
	PerUser          int           `json:"perUser"`            // invitations per inviter and per invitee, under the server's quotas
	Flood            int           `json:"flood"`              // invitations of the flood, to as many offline users; 0: none
	FloodDataSize    int           `json:"floodDataSize"`      // bytes of data of each
	FloodWait        time.Duration `json:"floodWaitNs"`        // bound on the wait until they have timed out and been dropped
	RedisPrefix      string        `json:"redisPrefix,omitempty"`

	// OpTimeout bounds every wait for an answer: a setup or a round that
	// has not completed by then counts as failed.
	OpTimeout time.Duration `json:"opTimeoutNs"`

	RedisAddr     string        `json:"redis,omitempty"`
	RedisBaseline time.Duration `json:"redisBaselineNs"` // idle time to measure Redis's background command rate

	MaxErrorPct float64 `json:"maxErrorPct"`

	// Progress receives a line per second while the run goes; nil is quiet.
	Progress io.Writer `json:"-"`
}

// DefaultConfig returns the defaults the command line documents.
func DefaultConfig() Config {
	return Config{
		Scenario:        ScenarioCalls,
		URL:             "ws://127.0.0.1:8080/v1/ws",
		AdminToken:      "signald-dev-admin-token",
		Secret:          "signald-dev-secret",
		SrcAddrs:        8,
		DialConcurrency: 200,
		Conns:           1000,
		Hold:            10 * time.Second,
		Pairs:           64,
		Callers:         8,
		Callees:         2000,
		PerCaller:       1,
		CancelDelivered: true,
		Inflight:        8,
		Duration:        10 * time.Second,
		Warmup:          time.Second,
		InviteTimeout:   30,
		GroupSize:       200,
		Rounds:          20,
		Kills:           3,
		KillInterval:    3 * time.Second,
		OpTimeout:       10 * time.Second,
		RedisBaseline:   time.Second,
		MaxErrorPct:     1,

		Pending:          10000,
		PendingDataSizes: []int{32, 1024},
		PendingTimeout:   3600,
		PerUser:          50,
		Flood:            5000,
		FloodDataSize:    12 << 10,
		FloodWait:        2 * time.Minute,
		RedisPrefix:      "signald:",
	}
}

// RandomPrefix returns a fresh user-ID prefix, so that runs against the
// same server never share users (a user's leftover pending invitation
// would be delivered to the next run's login).
func RandomPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "bench" + hex.EncodeToString(b[:])
}

// HTTPBase turns ws://host:port/... into http://host:port (wss into https).
func HTTPBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("url %q: want ws:// or wss://", wsURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("url %q has no host", wsURL)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Normalize derives the URLs left empty, fills the prefix and checks the
// values; it reports every problem at once.
func (c *Config) Normalize() error {
	var errs []error
	base, err := HTTPBase(c.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if c.AdminURL == "" {
		c.AdminURL = base
	}
	c.AdminURL = strings.TrimSuffix(c.AdminURL, "/")
	if c.MetricsURL == "" && base != "" {
		c.MetricsURL = base + "/metrics"
	}
	if c.Prefix == "" {
		c.Prefix = RandomPrefix()
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("-secret is empty"))
	}
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("-%s must be at least 1 (got %d)", name, v))
		}
	}
	positive("src-addrs", c.SrcAddrs)
	positive("dial-concurrency", c.DialConcurrency)
	if c.OpTimeout <= 0 {
		errs = append(errs, errors.New("-op-timeout must be positive"))
	}
	switch c.Scenario {
	case ScenarioIdle:
		positive("conns", c.Conns)
		if c.Hold < 0 {
			errs = append(errs, errors.New("-hold must not be negative"))
		}
	case ScenarioCalls, ScenarioGap:
		positive("pairs", c.Pairs)
		positive("inflight", c.Inflight)
		if c.Scenario == ScenarioGap {
			errs = append(errs, c.gapErrors()...)
		} else if c.Duration <= 0 {
			errs = append(errs, errors.New("-duration must be positive"))
		}
		if c.Warmup < 0 || c.Rate < 0 {
			errs = append(errs, errors.New("-warmup and -rate must not be negative"))
		}
		for name, p := range map[string]float64{"reject-pct": c.RejectPct, "cancel-pct": c.CancelPct, "timeout-pct": c.TimeoutPct} {
			if p < 0 || p > 100 {
				errs = append(errs, fmt.Errorf("-%s must be within 0..100 (got %v)", name, p))
			}
		}
		if s := c.RejectPct + c.CancelPct + c.TimeoutPct; s > 100 {
			errs = append(errs, fmt.Errorf("-reject-pct + -cancel-pct + -timeout-pct is %v, more than 100", s))
		}
		if c.InviteTimeout < 2 {
			// timeout 1 is what marks the timeout share; answered invitations
			// must not time out by accident.
			errs = append(errs, fmt.Errorf("-invite-timeout must be at least 2 seconds (got %d)", c.InviteTimeout))
		}
	case ScenarioGroup:
		positive("group-size", c.GroupSize)
		positive("rounds", c.Rounds)
		if c.InviteTimeout < 0 {
			errs = append(errs, errors.New("-invite-timeout must not be negative"))
		}
	case ScenarioMemory:
		errs = append(errs, c.memoryErrors()...)
	case ScenarioInvites:
		errs = append(errs, c.invitesErrors()...)
	default:
		errs = append(errs, fmt.Errorf("-scenario %q: want idle, calls, group, gap, memory or invites", c.Scenario))
	}
	if c.DataSize < 0 || c.DataSize > maxDataSize {
		errs = append(errs, fmt.Errorf("-data-size must be within 0..%d (got %d)", maxDataSize, c.DataSize))
	}
	return errors.Join(errs...)
}

// gapErrors checks what only the gap scenario needs.
func (c *Config) gapErrors() []error {
	var errs []error
	if c.RedisAddr == "" {
		errs = append(errs, errors.New("-scenario gap needs -redis (the Redis signald uses), to kill its Pub/Sub connections"))
	}
	if c.OtherURL != "" {
		errs = append(errs, errors.New("-scenario gap runs against one instance: -other-url is not supported"))
	}
	if c.Conns < 2*c.Pairs {
		errs = append(errs, fmt.Errorf("-conns %d is fewer than the %d users of -pairs %d", c.Conns, 2*c.Pairs, c.Pairs))
	}
	if c.Kills < 1 || c.KillInterval <= 0 {
		errs = append(errs, errors.New("-kills must be at least 1 and -kill-interval positive"))
	}
	if !c.metricsEnabled() {
		errs = append(errs, errors.New("-scenario gap reads the catch-up from /metrics: -metrics-url must not be off"))
	}
	return errs
}

// invitesErrors checks what only the invites scenario needs.
func (c *Config) invitesErrors() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"callers", c.Callers}, {"callees", c.Callees}, {"per-caller", c.PerCaller}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("-%s must be at least 1 (got %d)", f.name, f.v))
		}
	}
	if c.Callers >= 1 && c.PerCaller >= 1 && c.Callees < c.Callers*c.PerCaller {
		// Every invitation in flight has a callee of its own, so that a
		// delivery tells by its callee which invitation it is.
		errs = append(errs, fmt.Errorf("-callees %d is fewer than the %d invitations in flight (-callers × -per-caller): each needs a callee of its own",
			c.Callees, c.Callers*c.PerCaller))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if c.Warmup < 0 || c.Rate < 0 {
		errs = append(errs, errors.New("-warmup and -rate must not be negative"))
	}
	if c.InviteTimeout < 2 {
		errs = append(errs, fmt.Errorf("-invite-timeout must be at least 2 seconds (got %d)", c.InviteTimeout))
	}
	if c.OtherURL != "" {
		errs = append(errs, errors.New("-scenario invites runs against one instance: -other-url is not supported"))
	}
	return errs
}

// inviteData returns the invite's data string, DataSize bytes long when set.
func (c *Config) inviteData() string {
	if c.DataSize == 0 {
		return `{"cmd":"videoCall"}`
	}
	return paddedData(c.DataSize)
}

// paddedData returns a data string of exactly n bytes: a JSON object with
// a padding field when it fits, else n x's.
func paddedData(n int) string {
	const head, tail = `{"cmd":"videoCall","pad":"`, `"}`
	if n <= len(head)+len(tail) {
		return strings.Repeat("x", n)
	}
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// memoryErrors checks what only the memory scenario needs.
func (c *Config) memoryErrors() []error {
	var errs []error
	if c.Pending < 0 || c.Flood < 0 {
		errs = append(errs, errors.New("-pending and -flood must not be negative"))
	}
	if c.Pending > 0 && len(c.PendingDataSizes) == 0 {
		errs = append(errs, errors.New("-pending-data-sizes is empty"))
	}
	if c.Pending == 0 && c.Flood == 0 {
		errs = append(errs, errors.New("-pending and -flood are both 0: nothing to measure"))
	}
	if c.PerUser < 1 {
		errs = append(errs, fmt.Errorf("-per-user must be at least 1 (got %d)", c.PerUser))
	}
	for _, n := range append([]int{c.FloodDataSize}, c.PendingDataSizes...) {
		if n < 0 || n > maxDataSize {
			errs = append(errs, fmt.Errorf("data sizes must be within 0..%d (got %d)", maxDataSize, n))
		}
	}
	if c.PendingTimeout < 0 {
		errs = append(errs, errors.New("-pending-timeout must not be negative"))
	}
	if c.PendingTimeout > 0 && c.PendingTimeout < 60 {
		// The invitations must stay pending while they are counted.
		errs = append(errs, fmt.Errorf("-pending-timeout must be 0 (none) or at least 60 seconds (got %d)", c.PendingTimeout))
	}
	if c.Flood > 0 && c.FloodWait <= 0 {
		errs = append(errs, errors.New("-flood-wait must be positive"))
	}
	if !c.metricsEnabled() {
		errs = append(errs, errors.New("-scenario memory reads the heap from /metrics: -metrics-url must not be off"))
	}
	if c.PprofURL != "" {
		if _, err := pprofBase(c.PprofURL); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// metricsEnabled reports whether the server's /metrics is to be scraped.
func (c *Config) metricsEnabled() bool { return c.MetricsURL != "" && c.MetricsURL != "off" }
