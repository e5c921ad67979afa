package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// progressFunc reads a scenario's counters for the progress line: the
// successful operations so far, the failures so far, and anything else
// worth a glance (in flight, connections).
type progressFunc func() (ops, errs int64, extra string)

// startProgress prints one line per second to w until stop is called (or
// ctx ends). It owns one goroutine, which stop waits for. A nil w prints
// nothing and starts nothing.
func startProgress(ctx context.Context, w io.Writer, label, opName string, read progressFunc) (stop func()) {
	if w == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		var lastOps int64
		last := start
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				ops, errs, extra := read()
				rate := float64(ops-lastOps) / now.Sub(last).Seconds()
				lastOps, last = ops, now
				fmt.Fprintf(w, "[%s %4.0fs] %s %d  (%.0f/s)  errors %d  %s\n",
					label, now.Sub(start).Seconds(), opName, ops, rate, errs, extra)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
