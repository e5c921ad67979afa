package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// catcher brings connections up to date after a Pub/Sub gap (sequence.go),
// at a bounded pace, so that an instance whose subscription broke under
// load catches its clients up without a storm of its own against Redis:
// users are checked CatchUpCheckBatch at a time (one round trip a batch,
// one batch after the other), and replays are made at most CatchUpRate per
// second. It runs one goroutine, owned by the Server and stopped by
// Shutdown.
type catcher struct {
	srv *Server

	mu      sync.Mutex
	conns   []*conn    // catch-ups requested, oldest first; guarded by mu
	retry   []*conn    // catch-ups whose replay failed, due at retryAt; guarded by mu
	retryAt time.Time  // guarded by mu
	checks  [][]string // users to check after a gap, per gap; guarded by mu
	wake    chan struct{}

	limit *rate.Limiter
	// gapStart is when the oldest gap not yet fully caught up was taken
	// up; owned by run.
	gapStart time.Time
	done     chan struct{}
}

// Catch-up pacing and retries.
const (
	maxCatchUpTries = 5
	catchUpRetry    = 500 * time.Millisecond
)

func newCatcher(s *Server) *catcher {
	return &catcher{
		srv:   s,
		wake:  make(chan struct{}, 1),
		limit: rate.NewLimiter(rate.Limit(s.cfg.CatchUpRate), max(1, s.cfg.CatchUpRate/10)),
		done:  make(chan struct{}),
	}
}

// request queues a catch-up of c. It never blocks: the bus's receive loop
// calls it, through Hub.Deliver and conn.Send.
func (k *catcher) request(c *conn) {
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	k.poke()
}

// check queues a check of every connection of users after a gap.
func (k *catcher) check(users []string) {
	k.mu.Lock()
	k.checks = append(k.checks, users)
	k.mu.Unlock()
	k.poke()
}

func (k *catcher) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run serves requests until ctx ends.
func (k *catcher) run(ctx context.Context) {
	defer close(k.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		k.mu.Lock()
		checks, conns := k.checks, k.conns
		k.checks, k.conns = nil, nil
		if len(k.retry) > 0 && !time.Now().Before(k.retryAt) {
			conns = append(conns, k.retry...)
			k.retry = nil
		}
		var retryIn time.Duration
		if len(k.retry) > 0 {
			retryIn = time.Until(k.retryAt)
		}
		k.mu.Unlock()

		if len(checks) > 0 && k.gapStart.IsZero() {
			k.gapStart = time.Now()
		}
		for _, users := range checks {
			k.checkUsers(ctx, users)
		}
		for _, c := range conns {
			if k.limit.Wait(ctx) != nil {
				return
			}
			k.catchUp(ctx, c)
		}
		if len(checks) > 0 || len(conns) > 0 {
			continue // more may have come meanwhile
		}
		if retryIn <= 0 && !k.gapStart.IsZero() {
			took := time.Since(k.gapStart)
			k.gapStart = time.Time{}
			k.srv.m.gapCatchUp.Observe(took.Seconds())
			k.srv.log.Info("caught up the connections after a Pub/Sub gap", "took", took.Round(time.Millisecond))
		}
		if retryIn <= 0 {
			retryIn = time.Hour
		}
		t.Reset(retryIn)
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		case <-t.C:
		}
	}
}

// catchUp runs one connection's catch-up, and schedules another try when
// the bus failed; after maxCatchUpTries the client is asked to resume.
func (k *catcher) catchUp(ctx context.Context, c *conn) {
	select {
	case <-c.quit:
		return // closing: its client resumes anyway
	default:
	}
	rctx, cancel := context.WithTimeout(ctx, k.srv.cfg.RequestTimeout)
	ok := c.catchUp(rctx)
	cancel()
	k.srv.m.catchUps.WithLabelValues(catchUpResult(ok, c)).Inc()
	if ok {
		return
	}
	c.holdMu.Lock()
	c.catchTry++
	tries := c.catchTry
	c.holdMu.Unlock()
	if tries >= maxCatchUpTries {
		c.stop(closeResume, true)
		return
	}
	k.mu.Lock()
	if len(k.retry) == 0 {
		k.retryAt = time.Now().Add(catchUpRetry)
	}
	k.retry = append(k.retry, c)
	k.mu.Unlock()
}

func catchUpResult(ok bool, c *conn) string {
	if !ok {
		return "failed"
	}
	select {
	case <-c.quit:
		return "resume"
	default:
		return "caught_up"
	}
}

// checkUsers compares, CatchUpCheckBatch users at a time, the newest kept
// event of each user with the last one each of its connections here sent,
// and starts the catch-up of those behind.
func (k *catcher) checkUsers(ctx context.Context, users []string) {
	start := time.Now()
	byUser := k.srv.connsOf(users)
	users = users[:0:0]
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	for batch := range slices.Chunk(users, k.srv.cfg.CatchUpCheckBatch) {
		if ctx.Err() != nil {
			return
		}
		var lasts []string
		var err error
		for try := 0; ; try++ {
			rctx, cancel := context.WithTimeout(ctx, k.srv.cfg.RequestTimeout)
			lasts, err = k.srv.d.Bus.Lasts(rctx, batch)
			cancel()
			if err == nil || try == maxCatchUpTries-1 {
				break
			}
			if !sleep(ctx, catchUpRetry) {
				return
			}
		}
		for i, u := range batch {
			for _, c := range byUser[u] {
				if err != nil {
					// Cannot tell what they missed: let them resume.
					c.stop(closeResume, true)
				} else {
					c.checkBehind(lasts[i])
				}
			}
		}
	}
	k.srv.log.Debug("checked the connections of users whose events may have been missed", "users", len(users), "took", time.Since(start).Round(time.Millisecond))
}

// sleep waits d, or less when ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
