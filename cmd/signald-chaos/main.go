// Command signald-chaos is signald's fault-injection harness: it starts
// Redis and several signald instances as processes, drives simulated users
// and their devices while it kills, stops and restarts them, and checks
// that every event the protocol promises arrived, once. The work is done
// by internal/chaos; this file turns flags and signals into a run and the
// report into an exit status. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/signald/signald/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first Ctrl-C the run stops and cleans up; a second one
	// gets the default behaviour and kills the process.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit status, 0 when the
// check found nothing, 1 when it found something, 2 when the run could not
// be carried out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "signald-chaos:", err)
		return 2
	}
	level := slog.LevelInfo
	if o.cfg.Verbose {
		level = slog.LevelDebug
	}
	o.cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.build {
		dir, err := os.MkdirTemp("", "signald-chaos-bin-")
		if err != nil {
			fmt.Fprintln(stderr, "signald-chaos:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		o.cfg.SignaldBin = filepath.Join(dir, "signald")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.cfg.SignaldBin, "./cmd/signald")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, "signald-chaos: go build ./cmd/signald (run -build from the module's root):", err)
			return 2
		}
	}
	rep, err := chaos.Run(ctx, o.cfg)
	if rep != nil {
		if perr := rep.Print(stdout); perr != nil {
			fmt.Fprintln(stderr, "signald-chaos: print report:", perr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "signald-chaos: the run could not be carried out:", err)
		return 2
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
