package invite

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"
)

// fireConcurrency bounds the timeouts of one claimed batch fired at once:
// each costs a few store round trips, which overlap rather than queue.
const fireConcurrency = 32

// Run fires timeouts and tends the outbox until ctx ends. It sleeps until
// the earliest deadline it knows of, at most one poll interval, then claims
// the deadlines that are due and times out their invitations; every poll
// it also tells the store which announcements are done, tries again those
// that failed, and takes over those of instances that did not finish. Any
// number of instances may run it against one store; the claim lease and
// the atomic transition make each timeout fire once. Run returns nil when
// ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		at := e.now().Add(e.cfg.PollInterval)
		if next := e.FireDue(ctx); !next.IsZero() && next.Before(at) {
			at = next
		}
	plan:
		for {
			// A deadline created here after the claim may be earlier still.
			if w := e.wakeAt.Swap(0); w != 0 && time.UnixMilli(w).Before(at) {
				at = time.UnixMilli(w)
			}
			e.planned.Store(at.UnixMilli())
			d := at.Sub(e.now())
			if d <= 0 {
				break
			}
			t.Reset(d)
			for {
				select {
				case <-ctx.Done():
					e.flushAnnounced()
					return nil
				case <-t.C:
					break plan
				case <-e.wake:
				}
				// Re-plan only for an earlier deadline: resetting the timer
				// on every wake would keep pushing it back under load.
				if w := e.wakeAt.Load(); w != 0 && time.UnixMilli(w).Before(at) {
					continue plan
				}
			}
		}
	}
}

// flushAnnounced tells the store, on the way out, which announcements are
// done, so that no other instance announces them again (harmlessly, but
// for nothing) after their lease.
func (e *Engine) flushAnnounced() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e.tellDone(ctx)
}

// noteDeadline wakes Run for a deadline created here, should it plan to
// sleep past it.
func (e *Engine) noteDeadline(d int64) {
	if p := e.planned.Load(); p != 0 && d >= p {
		return // Run wakes before it anyway, and then asks the store
	}
	for {
		w := e.wakeAt.Load()
		if w != 0 && w <= d {
			break
		}
		if e.wakeAt.CompareAndSwap(w, d) {
			break
		}
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// FireDue tends the outbox and claims and fires every deadline due now, in
// batches, and returns the earliest deadline still waiting (zero when none,
// or unknown). It is Run's body, exported for tests that drive time
// themselves; it must not be called concurrently with itself or Run.
func (e *Engine) FireDue(ctx context.Context) time.Time {
	e.tidyOutbox(ctx)
	const batch = 256
	for ctx.Err() == nil {
		now := e.now()
		ids, next, err := e.store.ClaimDue(ctx, Millis(now), e.cfg.ClaimLease, batch)
		if err != nil {
			e.storeErr("claim", err)
			if !e.claimFailing && ctx.Err() == nil { // once per outage, not once per poll
				e.claimFailing = true
				e.log.Warn("cannot claim due timeouts; they fire once the store answers again", "err", err)
			}
			return time.Time{}
		}
		if e.claimFailing {
			e.claimFailing = false
			e.log.Info("claiming due timeouts again")
		}
		if len(ids) > 0 {
			e.fireAll(ctx, ids, now)
		}
		if len(ids) < batch {
			if next == 0 {
				return time.Time{}
			}
			return time.UnixMilli(next)
		}
	}
	return time.Time{}
}

// fireAll fires a claimed batch, fireConcurrency at a time, and releases
// the deadlines that are done with in one call.
func (e *Engine) fireAll(ctx context.Context, ids []string, now time.Time) {
	var (
		mu       sync.Mutex
		released []string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, fireConcurrency)
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if e.fire(ctx, id, now) {
				mu.Lock()
				released = append(released, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(released) > 0 {
		if err := e.store.ReleaseDeadlines(ctx, released); err != nil {
			// Claimed again after the lease, then found ended: released then.
			e.storeErr("timeout", err)
		}
	}
}

// fire times out one claimed invitation and announces it, and reports
// whether its deadline is done with. The timeout is recorded in the
// invitation's outbox by the step that applies it, so once applied it is
// announced whatever happens next; a deadline whose invitation had already
// ended (an answer, a cancel, or this timeout applied by an instance that
// then died) is done with too. On a store error the timeout may or may not
// have been applied: the deadline stays, claimed again after the lease.
func (e *Engine) fire(ctx context.Context, id string, now time.Time) bool {
	token := rand.Text()
	ms := Millis(now)
	ch := Change{
		Action: ActTimeout, Now: ms, Retention: e.cfg.Retention.Milliseconds(),
		Token: token, AnnounceBy: ms + e.cfg.ClaimLease.Milliseconds(),
	}
	// One step for the timeout and its event where the store can (see
	// change): who timed out is decided in the step, so the store's script
	// lists them in the frame.
	out, ev, report, published, err := e.apply(ctx, id, ch, &Event{Kind: EvTimeout, InviteID: id, Once: "ann:" + token, ListedInStep: true})
	switch {
	case err == nil:
		e.timeoutsFired.Inc()
		e.lateness.Observe(float64(ms-out.Invitation.Deadline) / 1000)
		e.active.Dec()
		e.changed(out, ms)
		e.finish(ctx, out.Invitation, token, ev, report, published)
		return true
	case errors.Is(err, ErrEnded), errors.Is(err, ErrNotFound):
		e.out.forget(id, token)
		return true
	case errors.Is(err, ErrNotDue):
		e.out.forget(id, token)
		return false // a clock behind the claimer's: claimed again later
	default:
		e.storeErr("timeout", err)
		e.log.Warn("firing a timeout failed; it is tried again after the claim lease", "inviteID", id, "err", err)
		return false
	}
}
