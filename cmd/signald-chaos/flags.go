package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/signald/signald/internal/chaos"
)

// options are the command line: the run's configuration plus how to get
// the binary.
type options struct {
	cfg   chaos.Config
	build bool
}

const usageHead = `signald-chaos starts redis-server and several signald instances as
processes on loopback, drives simulated users (each with one or two devices
that drop, reconnect and resume) placing calls with 2-8 s timeouts, and
injects faults: kill -9 and SIGTERM of instances, graceful Redis restarts,
CLIENT KILL TYPE pubsub, dropped client connections. Then it checks, per
device, that every event the protocol promises arrived, none twice, and
that the final states agree with every reply. The last line of the report
is "lost=N duplicated=N inconsistent=N".

Exit status: 0 when everything checked out, 1 when something was lost,
duplicated, inconsistent or unrecovered, 2 for bad flags or a run that
could not be carried out.

Examples:
  signald-chaos -signald bin/signald
  signald-chaos -build -users 40 -duration 30s -faults redis-restart
  signald-chaos -signald bin/signald -faults none -seed 7

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{cfg: chaos.DefaultConfig()}
	c := &o.cfg
	fs := flag.NewFlagSet("signald-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	faults := "all"
	fs.StringVar(&c.SignaldBin, "signald", "", "the signald binary (required unless -build)")
	fs.BoolVar(&o.build, "build", false, "build ./cmd/signald into a temporary directory first (run from the module's root)")
	fs.StringVar(&c.RedisServerBin, "redis-server", "", "the redis-server binary (default: from PATH)")
	fs.IntVar(&c.Instances, "instances", c.Instances, "signald instances sharing one Redis")
	fs.IntVar(&c.Users, "users", c.Users, "simulated users")
	fs.Float64Var(&c.TwoDeviceShare, "two-devices", c.TwoDeviceShare, "share of users with two devices")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long calls are placed (longer until every enabled fault kind has happened)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of every random choice")
	fs.StringVar(&faults, "faults", faults, "faults to inject: all, none, or a comma-separated list of kill9, sigterm, redis-restart, pubsub-kill, drop")
	fs.DurationVar(&c.FaultInterval, "fault-interval", c.FaultInterval, "pause between the end of one fault and the next")
	fs.DurationVar(&c.CallEveryMin, "call-every-min", c.CallEveryMin, "each user places a call every call-every-min to call-every-max")
	fs.DurationVar(&c.CallEveryMax, "call-every-max", c.CallEveryMax, "see -call-every-min")
	fs.StringVar(&c.LogDir, "logdir", "", "write each process's whole output to DIR/<name>.log")
	fs.BoolVar(&c.Verbose, "v", false, "debug progress, and the tail of every process's output in the report")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Faults, err = chaos.ParseFaults(faults); err != nil {
		return o, err
	}
	if c.SignaldBin == "" && !o.build {
		return o, errors.New("-signald PATH or -build is required")
	}
	if c.SignaldBin != "" && o.build {
		return o, errors.New("-signald and -build exclude each other")
	}
	return o, nil
}
