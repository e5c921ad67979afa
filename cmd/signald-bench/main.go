// Command signald-bench is signald's load generator: it runs the idle,
// calls, group, gap, memory or invites scenario against a running signald
// and prints a report of throughput, latency percentiles, errors and
// server-side cost (gap: reconnects, lost events and the catch-up after
// Pub/Sub gaps; memory: heap per pending invitation and after a flood;
// invites: deliveries/s and CPU per 1,000 deliveries of server and Redis). The
// work is done by internal/bench; this file turns flags and signals into a
// run and the report into an exit status. Run it with -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/signald/signald/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first Ctrl-C the run winds down and reports; a second one
	// gets the default behaviour and kills the process.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "signald-bench:", err)
		return 2
	}
	limit, err := bench.RaiseNoFile()
	if err != nil {
		fmt.Fprintln(stderr, "signald-bench: cannot raise the open-file limit:", err)
	}
	if o.cfg.Scenario == bench.ScenarioIdle && limit > 0 && uint64(o.cfg.Conns)+64 > limit {
		fmt.Fprintf(stderr, "signald-bench: warning: %d connections need more than the open-file limit %d (ulimit -Hn)\n", o.cfg.Conns, limit)
	}
	if !o.quiet {
		o.cfg.Progress = stderr
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "signald-bench: -cpuprofile:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}

	rep, err := bench.Run(ctx, o.cfg)
	if rep != nil {
		if limit > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("open-file limit of the bench: %d", limit))
		}
		if perr := rep.Print(stdout); perr != nil {
			fmt.Fprintln(stderr, "signald-bench: print report:", perr)
		}
		if o.jsonPath != "" {
			if jerr := rep.WriteJSON(o.jsonPath); jerr != nil {
				fmt.Fprintln(stderr, "signald-bench: write JSON:", jerr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "signald-bench:", err)
		return 1
	}
	if err := rep.Check(o.cfg.MaxErrorPct); err != nil {
		fmt.Fprintln(stderr, "signald-bench: FAIL:", err)
		return 1
	}
	return 0
}
