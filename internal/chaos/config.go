package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// FaultKind names one kind of fault the injector can cause.
type FaultKind string

// The fault kinds.
const (
	FaultKill9        FaultKind = "kill9"         // kill -9 of an instance, then restart
	FaultSIGTERM      FaultKind = "sigterm"       // SIGTERM of an instance (it closes its connections with 1012), then restart
	FaultRedisRestart FaultKind = "redis-restart" // SIGTERM of Redis, down RedisDown, then start on the same port and directory
	FaultPubSubKill   FaultKind = "pubsub-kill"   // CLIENT KILL TYPE pubsub
	FaultDrop         FaultKind = "drop"          // 10–20 % of the client connections dropped without a close frame
)

// AllFaults lists every fault kind, in the order the injector starts with.
var AllFaults = []FaultKind{FaultKill9, FaultSIGTERM, FaultRedisRestart, FaultPubSubKill, FaultDrop}

// ParseFaults reads a comma-separated list of fault kinds; "all" is every
// kind and "none" (or "") is none.
func ParseFaults(s string) ([]FaultKind, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "all":
		return slices.Clone(AllFaults), nil
	case "", "none":
		return nil, nil
	}
	var out []FaultKind
	for _, part := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(part))
		if !slices.Contains(AllFaults, k) {
			return nil, fmt.Errorf("unknown fault %q: want all, none, or a list of %v", part, AllFaults)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Timing of the simulated behaviour. They are part of the scenario, not
// knobs: the drain waits are derived from them.
const (
	minTimeout     = 2 // seconds, the shortest invitation timeout
	maxTimeout     = 8 // seconds, the longest
	claimLease     = 2 * time.Second
	groupShare     = 0.20 // of calls that are inviteInGroup
	acceptShare    = 0.35 // of rung devices that accept
	rejectShare    = 0.25 // of rung devices that reject (the rest ignore the ring)
	cancelShare    = 0.15 // of placed calls the inviter cancels
	modifyShare    = 0.05 // of placed calls the inviter modifies
	groupSize      = 6    // users per group
	redisDown      = 2 * time.Second
	quietFor       = 2 * time.Second // no event for this long: quiescence
	requestTimeout = 15 * time.Second
)

// Config is one run.
type Config struct {
	SignaldBin     string // the signald binary; required
	RedisServerBin string // redis-server; "" looks it up on PATH
	Instances      int
	Users          int
	TwoDeviceShare float64 // share of users with two devices
	// Duration is how long calls are placed. The load goes on past it
	// until every enabled fault kind has happened once (at most three
	// times as long).
	Duration      time.Duration
	Seed          uint64
	Faults        []FaultKind
	FaultInterval time.Duration // pause between the end of one fault and the next
	CallEveryMin  time.Duration // each user places a call every CallEveryMin–CallEveryMax
	CallEveryMax  time.Duration
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// LogDir, when set, receives each process's whole output as
	// <name>.log besides the tail kept in memory for the report.
	LogDir string
	// Verbose puts the tail of every process's output in the report even
	// when the run passed.
	Verbose bool
}

// DefaultConfig is the long run of `make chaos` without the binary.
func DefaultConfig() Config {
	return Config{
		Instances:      3,
		Users:          150,
		TwoDeviceShare: 0.5,
		Duration:       120 * time.Second,
		Seed:           1,
		Faults:         slices.Clone(AllFaults),
		FaultInterval:  4 * time.Second,
		CallEveryMin:   5 * time.Second,
		CallEveryMax:   15 * time.Second,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.SignaldBin == "" {
		errs = append(errs, errors.New("the signald binary is required"))
	}
	if c.Instances < 1 {
		errs = append(errs, errors.New("at least one instance"))
	}
	if c.Users < 3 {
		errs = append(errs, errors.New("at least three users"))
	}
	if c.TwoDeviceShare < 0 || c.TwoDeviceShare > 1 {
		errs = append(errs, errors.New("the share of users with two devices must be within 0 and 1"))
	}
	if c.Duration <= 0 || c.FaultInterval <= 0 {
		errs = append(errs, errors.New("duration and fault interval must be positive"))
	}
	if c.CallEveryMin <= 0 || c.CallEveryMax < c.CallEveryMin {
		errs = append(errs, errors.New("call pace: want 0 < min <= max"))
	}
	for _, k := range c.Faults {
		if !slices.Contains(AllFaults, k) {
			errs = append(errs, fmt.Errorf("unknown fault %q", k))
		}
	}
	if (slices.Contains(c.Faults, FaultKill9) || slices.Contains(c.Faults, FaultSIGTERM)) && c.Instances < 2 {
		errs = append(errs, errors.New("stopping instances needs at least two, so that devices have somewhere to go"))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}
