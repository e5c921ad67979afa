package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// injector causes one fault every interval while the load lasts, cycling
// through the enabled kinds in a random order per cycle, so that every
// kind happens and none twice in a row by design. Each fault includes its
// repair (the restart), so that faults never overlap.
type injector struct {
	env     *env
	devices []*device
	kinds   []FaultKind
	rng     *rand.Rand // owned by run

	mu      sync.Mutex
	counts  map[FaultKind]int // guarded by mu
	covered chan struct{}     // closed once every kind has happened
}

func newInjector(e *env, devices []*device, rng *rand.Rand) *injector {
	in := &injector{env: e, devices: devices, kinds: e.cfg.Faults, rng: rng, counts: make(map[FaultKind]int), covered: make(chan struct{})}
	if len(in.kinds) == 0 {
		close(in.covered)
	}
	return in
}

// run injects faults until ctx ends; a fault under way is finished (its
// restart too) with repairCtx. A fault that cannot be repaired (an
// instance that does not come back) ends the run with an error.
func (in *injector) run(ctx, repairCtx context.Context) error {
	if len(in.kinds) == 0 {
		<-ctx.Done()
		return nil
	}
	for {
		order := in.rng.Perm(len(in.kinds))
		for _, i := range order {
			t := time.NewTimer(in.env.cfg.FaultInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			if err := in.inject(repairCtx, in.kinds[i]); err != nil {
				return fmt.Errorf("fault %s: %w", in.kinds[i], err)
			}
		}
	}
}

// inject causes one fault and repairs it.
func (in *injector) inject(ctx context.Context, kind FaultKind) error {
	j := in.env.j
	rec := FaultRecord{Kind: kind, At: j.now()}
	start := time.Now()
	var err error
	switch kind {
	case FaultKill9, FaultSIGTERM:
		sig := syscall.SIGKILL
		if kind == FaultSIGTERM {
			sig = syscall.SIGTERM
		}
		target := in.env.dep.instances[in.rng.IntN(len(in.env.dep.instances))]
		rec.Target = target.node
		if err = target.stop(ctx, sig); err == nil {
			err = target.restart(ctx)
		}
	case FaultRedisRestart:
		rec.Target = "redis"
		r := in.env.dep.redis
		if err = r.stopGraceful(ctx); err == nil {
			t := time.NewTimer(redisDown) // the outage itself, not a wait for anything
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-t.C:
			}
			t.Stop()
		}
		if err == nil {
			err = r.restart(ctx)
		}
	case FaultPubSubKill:
		var n int64
		n, err = in.env.dep.redis.killPubSub(ctx)
		rec.Target = strconv.FormatInt(n, 10) + " subscription connections"
	case FaultDrop:
		var online []*device
		for _, d := range in.devices {
			if d.online() {
				online = append(online, d)
			}
		}
		n := 0
		if len(online) > 0 {
			share := 0.10 + 0.10*in.rng.Float64()
			want := max(1, int(share*float64(len(online))+0.5))
			for _, i := range in.rng.Perm(len(online))[:want] {
				if online[i].dropConnection() {
					n++
				}
			}
		}
		rec.Target = strconv.Itoa(n) + " connections"
	}
	rec.Took = time.Since(start)
	j.fault(rec)
	in.env.log.Info("fault", "kind", kind, "target", rec.Target, "at", rec.At.Round(time.Millisecond), "took", rec.Took.Round(time.Millisecond), "err", err)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.counts[kind]++
	if len(in.counts) == len(in.kinds) {
		select {
		case <-in.covered:
		default:
			close(in.covered)
		}
	}
	in.mu.Unlock()
	return nil
}

// tally returns how many faults of each kind happened.
func (in *injector) tally() map[FaultKind]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[FaultKind]int, len(in.counts))
	for k, n := range in.counts {
		out[k] = n
	}
	return out
}
