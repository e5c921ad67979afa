// Package leaktest checks, at the end of a test, that the goroutines it
// started have ended, patiently: goleak.VerifyNone gives up after about
// 0.4 s, too soon on a loaded machine, where a goroutine that is ending
// may wait that long for a CPU. For tests only.
package leaktest

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long a goroutine may take to end after the test.
const Patience = 5 * time.Second

// Check makes t fail, after every cleanup registered later (cleanups run
// last-in first-out), if a goroutine started since the call outlived the
// test and those cleanups; opts ignore more. Call it first thing in the
// test.
func Check(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	opts = append(opts, goleak.IgnoreCurrent()) // the goroutines running now, before the test
	t.Cleanup(func() { Verify(t, opts...) })
}

// Verify fails t if goroutines other than those opts ignore are still
// running after Patience. Deferred with goleak.IgnoreCurrent() evaluated at
// the start of a test, it ignores those that ran when the test began.
func Verify(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Error(err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
