package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/signald/signald/internal/bench"
)

// options are the command line: the run's configuration plus what only
// the command does with the report.
type options struct {
	cfg        bench.Config
	jsonPath   string
	quiet      bool
	cpuProfile string
}

const usageHead = `signald-bench drives a running signald over real WebSockets and reports
throughput, latency percentiles, errors by reply code, and what the work cost
the server (from its /metrics), Redis (INFO commandstats and cpu, with -redis) and
the bench itself.

Scenarios (-scenario):
  idle   open -conns logged-in connections spread over -src-addrs source
         addresses, hold them -hold, report connect time and the server's
         RSS and CPU per idle connection.
  calls  -pairs caller/callee pairs run call setups (invite -> callee gets
         onReceiveNewInvitation -> accept -> caller gets onInviteeAccepted),
         -inflight at a time, for -warmup + -duration; a share can be
         rejected, cancelled by the caller or left to time out.
  group  one inviter and -group-size invitees in one group (made through the
         admin API); each of -rounds rounds invites them all, waits until
         all K have it, cancels and waits until all K have the cancel.
  gap    -conns logged-in users on one instance in Redis mode, the calls
         load (-pairs, -rate, ...) among 2x-pairs of them; after -warmup,
         -kills times CLIENT KILL TYPE pubsub (on -redis, required),
         -kill-interval apart, the load going on one interval after the
         last. Reports connections closed by the server, events lost, kept
         events out of eventID order, and the server's catch-up after each
         gap (signald_gap_catchup_seconds); fails unless none was closed
         and none lost.
  memory the server's memory per pending invitation and after a flood.
         Each heap reading follows two garbage collections forced through
         -pprof (signald's --pprof-addr). First -flood invitations with
         -flood-data-size bytes of data and a 1 s timeout go to as many
         offline users; once all have timed out and been dropped (run
         signald with a short --retention) the heap after the flood is
         reported against before, beside the bytes of the events it left
         kept. Then, per size in -pending-data-sizes, -pending invitations
         (timeout -pending-timeout) from many inviters to many offline
         invitees, at most -per-user each: heap per pending invitation, and
         with -redis Redis's used_memory and MEMORY USAGE per invitation
         (-redis-prefix: signald's --redis-prefix). They are cancelled at
         the end, and once dropped the heap is read again: what is left
         beyond their kept events is memory that does not come back.
  invites issue #11's load shape: -callees idle logged-in users (2000),
         -callers callers (8) with -per-caller invites in flight each (1),
         3 s of warm-up then -duration. Each invite (timeout 60 s) goes to
         a callee of its own, round-robin; the delivery measured is its
         onReceiveNewInvitation, and the slot's next invite goes out as
         soon as it arrived (closed loop) or on -rate's schedule. Callees
         never answer; the caller cancels each delivered invitation
         (-cancel-delivered) so that none piles up against signald's
         quotas. Reports deliveries/s, invite -> delivery p50/p90/p99/max,
         the cancels, and CPU seconds per 1,000 deliveries of the server
         (/metrics) and, with -redis, of Redis (INFO cpu) and both.
         signald must run with its per-connection rate limit and invite
         budget raised (--rate-limit, --rate-burst, --invite-rate,
         --invite-burst).

The run stops by itself; Ctrl-C stops it early and still prints what was
measured. The exit status is 1 when nothing succeeded, more than
-max-error-pct percent failed or a check failed (gap: a connection closed,
an event lost; memory: the flood or the cancelled invitations not
dropped within -flood-wait), 2 for bad flags.

Examples:
  signald-bench -url ws://127.0.0.1:18080/v1/ws -scenario calls -duration 10s
  signald-bench -scenario idle -conns 15000 -src-addrs 8 -hold 10s
  signald-bench -scenario group -group-size 200 -rounds 20 -json group.json
  signald-bench -scenario calls -redis 127.0.0.1:6379
  signald-bench -scenario gap -conns 10000 -rate 500 -redis 127.0.0.1:6379
  signald-bench -scenario memory -pprof http://127.0.0.1:6060   (signald --pprof-addr 127.0.0.1:6060 --retention 2s)
  signald-bench -scenario invites -redis 127.0.0.1:6379
  signald-bench -scenario invites -rate 3000                     (half of a run's deliveries/s: the latency target)

Flags:
`

// gapConns is -conns of the gap scenario unless set: the 10,000
// connected users.
const gapConns = 10000

// isSet reports whether the command line set flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseFlags parses the command line into options. -h prints the usage and
// returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{cfg: bench.DefaultConfig()}
	c := &o.cfg
	fs := flag.NewFlagSet("signald-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}

	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "what to run: idle, calls, group, gap, memory or invites")
	fs.StringVar(&c.URL, "url", c.URL, "signald WebSocket endpoint")
	fs.StringVar(&c.OtherURL, "other-url", "", "a second instance sharing the same Redis: every other connection (the callees) goes there, to measure the cross-instance path; server figures are -url's")
	fs.StringVar(&c.AdminURL, "admin-url", "", "base URL of the admin API (default: http://host:port of -url)")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", "server metrics to scrape before and after (default: http://host:port/metrics of -url; \"off\" to skip)")
	fs.StringVar(&c.Secret, "secret", c.Secret, "HS256 secret to mint userSigs with, signald's --dev secret by default")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token of the admin API, signald's --dev token by default")
	fs.StringVar(&c.Prefix, "prefix", "", "prefix of every user and group ID (default: random per run, so runs never collide)")
	fs.IntVar(&c.SrcAddrs, "src-addrs", c.SrcAddrs, "spread connections over source addresses 127.0.0.1 … 127.0.0.K (loopback targets only)")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", c.DialConcurrency, "connects (dial + login) in flight at once")

	fs.IntVar(&c.Conns, "conns", c.Conns, "idle, gap: connections (users) to open; gap: 10000 unless set, the pairs' users included")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "idle: how long to hold them open")

	fs.IntVar(&c.Pairs, "pairs", c.Pairs, "calls, gap: caller/callee pairs, each user its own connection")
	fs.IntVar(&c.Inflight, "inflight", c.Inflight, "calls, gap: setups in flight at once, over all pairs")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "calls, gap: target setups started per second (0 = as fast as -inflight allows); invites: target invites per second over all callers (0 = closed loop)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "calls, invites: measured time after the warmup")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "calls, gap, invites: load before measuring starts (not in the figures); gap: before the first kill; invites: 3s unless set")
	fs.Float64Var(&c.RejectPct, "reject-pct", c.RejectPct, "calls, gap: percent of invitations the callee rejects")
	fs.Float64Var(&c.CancelPct, "cancel-pct", c.CancelPct, "calls, gap: percent the caller cancels once the callee has the invitation")
	fs.Float64Var(&c.TimeoutPct, "timeout-pct", c.TimeoutPct, "calls, gap: percent sent with timeout 1 and left unanswered (kept out of the setup latency)")
	fs.IntVar(&c.InviteTimeout, "invite-timeout", c.InviteTimeout, "timeout parameter (seconds) of answered invitations and group invitations; invites: 60 unless set")
	fs.IntVar(&c.DataSize, "data-size", c.DataSize, "bytes of invite data (0 = a short {\"cmd\":\"videoCall\"})")

	fs.IntVar(&c.Kills, "kills", c.Kills, "gap: how many times to kill signald's Pub/Sub connections (CLIENT KILL TYPE pubsub)")
	fs.DurationVar(&c.KillInterval, "kill-interval", c.KillInterval, "gap: time between kills, and load after the last")

	fs.IntVar(&c.Callees, "callees", c.Callees, "invites: idle logged-in callees (N); at least -callers × -per-caller")
	fs.IntVar(&c.Callers, "callers", c.Callers, "invites: callers (P), each its own connection")
	fs.IntVar(&c.PerCaller, "per-caller", c.PerCaller, "invites: invites in flight per caller (W)")
	fs.BoolVar(&c.CancelDelivered, "cancel-delivered", c.CancelDelivered, "invites: the caller cancels each invitation once delivered (false: they stay pending until their timeout; raise signald's --max-active-invitations and --max-pending-invitations)")

	fs.IntVar(&c.GroupSize, "group-size", c.GroupSize, "group: invitees per group invitation (K)")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "group: invite-and-cancel rounds")

	fs.StringVar(&c.PprofURL, "pprof", "", "memory: signald's pprof server (its --pprof-addr) as http://host:port, to force garbage collections before each heap reading")
	fs.IntVar(&c.Pending, "pending", c.Pending, "memory: pending invitations per pass (0: no pass)")
	fs.Var((*intList)(&c.PendingDataSizes), "pending-data-sizes", "memory: bytes of data of each pass's invitations, comma-separated: one pass per size")
	fs.IntVar(&c.PendingTimeout, "pending-timeout", c.PendingTimeout, "memory: timeout (seconds) of the pending invitations; 0: none (they live until the maximum lifetime)")
	fs.IntVar(&c.PerUser, "per-user", c.PerUser, "memory: invitations per inviter and per invitee at most (signald's quotas: 100 active per inviter, 100 pending per invitee)")
	fs.IntVar(&c.Flood, "flood", c.Flood, "memory: invitations of the flood, each to an offline user of its own (0: no flood)")
	fs.IntVar(&c.FloodDataSize, "flood-data-size", c.FloodDataSize, "memory: bytes of data of each flood invitation")
	fs.DurationVar(&c.FloodWait, "flood-wait", c.FloodWait, "memory: how long to wait for the flood's invitations to time out and be dropped, and for the cancelled pending ones to be dropped (more than signald's --retention)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "memory, with -redis: signald's --redis-prefix, to weigh the keys of the invitations and users made (MEMORY USAGE)")

	fs.DurationVar(&c.OpTimeout, "op-timeout", c.OpTimeout, "a setup, connect or round step not done within this counts as failed")
	fs.StringVar(&c.RedisAddr, "redis", "", "host:port of the Redis signald uses: adds Redis command counts per setup (INFO commandstats); gap: where its Pub/Sub connections are killed")
	fs.DurationVar(&c.RedisBaseline, "redis-baseline", c.RedisBaseline, "with -redis: idle time before the run to measure Redis's background command rate")
	fs.Float64Var(&c.MaxErrorPct, "max-error-pct", c.MaxErrorPct, "exit 1 when more than this percent of operations failed")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr every second")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the bench's own CPU profile to this file (to check the tool is not the bottleneck)")

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.Scenario == bench.ScenarioGap && !isSet(fs, "conns") {
		c.Conns = gapConns
	}
	if c.Scenario == bench.ScenarioInvites {
		if !isSet(fs, "warmup") {
			c.Warmup = bench.InvitesWarmup
		}
		if !isSet(fs, "invite-timeout") {
			c.InviteTimeout = bench.InvitesInviteTimeout
		}
	}
	return o, c.Normalize()
}

// intList is a flag of comma-separated whole numbers.
type intList []int

func (l *intList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", part)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
