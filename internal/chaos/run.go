package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/signald/signald/internal/auth"
)

// env is what the parts of a run share; read-only once Run has set it up.
type env struct {
	cfg    *Config
	dep    *deployment
	j      *journal
	log    *slog.Logger
	tokens map[string]string // userSig by user
}

// Run runs the scenario of the package comment and returns the oracle's
// report. It returns an error when the run itself could not be carried out
// (a process that does not start, a device that cannot log in, ctx ending);
// the report, when not nil, then holds what was gathered and the
// processes' output. Every process and goroutine it starts has ended when
// it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: &cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x636861_6f73))}
	return r.run(ctx)
}

// runner holds one run's parts, so that its phases can be methods and its
// cleanup one place.
type runner struct {
	cfg     *Config
	rng     *rand.Rand // owned by run, for setup decisions
	e       *env
	users   []*user
	devices []*device
	ignore  map[string]bool // warm-up invitations
	inj     *injector
	loadDur time.Duration
}

// child returns a generator of its own for a part that runs concurrently.
func (r *runner) child() *rand.Rand { return rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64())) }

func (r *runner) run(ctx context.Context) (rep *Report, err error) {
	cfg := r.cfg
	log := cfg.Logger
	j := newJournal()
	dir, err := os.MkdirTemp("", "signald-chaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	log.Info("starting Redis and instances", "instances", cfg.Instances, "seed", cfg.Seed)
	dep, err := startDeployment(ctx, cfg, dir, r.child())
	if err != nil {
		return nil, err
	}
	defer dep.close()
	r.e = &env{cfg: cfg, dep: dep, j: j, log: log, tokens: make(map[string]string)}
	// Whatever happens from here on, the report carries the processes'
	// output when the run fails.
	defer func() {
		if rep == nil {
			rep = &Report{}
		}
		rep.Stats.Seed, rep.Stats.Instances, rep.Stats.Users, rep.Stats.Devices = cfg.Seed, cfg.Instances, cfg.Users, len(r.devices)
		rep.Stats.Total = j.now()
		if err != nil || !rep.OK() || cfg.Verbose {
			rep.Logs = dep.tails(80)
		}
	}()

	if err := r.setupUsers(ctx); err != nil {
		return nil, err
	}
	if err := r.warmUp(ctx); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	devCtx, stopDevices := context.WithCancel(ctx)
	actCtx, stopActions := context.WithCancel(ctx)
	var devWG sync.WaitGroup
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		stopDevices()
		devWG.Wait()
		stopActions()
		for _, d := range r.devices {
			d.waitActions()
		}
	}
	defer stopAll()
	seed := r.rng.Uint64()
	for n, u := range r.users {
		for i := range u.devices {
			d := newDevice(DeviceID{u.name, i}, r.e, seed^uint64(n*2+i), actCtx)
			u.devices[i] = d
			r.devices = append(r.devices, d)
			devWG.Go(func() { d.run(devCtx) })
		}
	}
	log.Info("devices logging in", "devices", len(r.devices))
	if err := r.awaitFirstLogins(ctx); err != nil {
		return nil, err
	}

	if err := r.load(ctx); err != nil {
		return nil, err
	}
	if err := r.drain(ctx); err != nil {
		return nil, err
	}
	log.Info("reading final states")
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	ins := newInspector(r.e)
	known := r.known()
	finals := ins.getAll(fctx, known)
	ins.close()
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	stopAll()

	h := j.snapshot()
	h.Finals, h.Ignore = finals, r.ignore
	for _, d := range r.devices {
		h.Devices = append(h.Devices, d.id)
	}
	if cfg.LogDir != "" {
		if err := dumpHistory(cfg.LogDir, h); err != nil {
			log.Warn("writing the history", "err", err)
		}
	}
	rep = Check(h)
	r.diagnoseLosses(ctx, rep)
	rep.Faults = h.Faults
	rep.Stats = stats(h, r.inj.tally(), r.loadDur)
	return rep, nil
}

// setupUsers names the users, mints their userSigs, gives each one or two
// devices and puts them in groups of groupSize.
func (r *runner) setupUsers(ctx context.Context) error {
	cfg := r.cfg
	names := make([]string, cfg.Users)
	for i := range names {
		names[i] = fmt.Sprintf("u%03d", i+1)
		tok, err := auth.Mint([]byte(devJWTSecret), names[i], 24*time.Hour, time.Now())
		if err != nil {
			return err
		}
		r.e.tokens[names[i]] = tok
	}
	for i := 0; i < len(names); i += groupSize {
		members := names[i:min(i+groupSize, len(names))]
		gid := fmt.Sprintf("g%03d", i/groupSize+1)
		if err := r.e.dep.putGroup(ctx, gid, members); err != nil {
			return fmt.Errorf("group %s: %w", gid, err)
		}
		for _, name := range members {
			u := &user{name: name, group: gid, env: r.e, rng: r.child()}
			for _, m := range members {
				if m != name {
					u.mates = append(u.mates, m)
				}
			}
			for _, o := range names {
				if o != name {
					u.others = append(u.others, o)
				}
			}
			n := 1
			if r.rng.Float64() < cfg.TwoDeviceShare {
				n = 2
			}
			u.devices = make([]*device, n)
			r.users = append(r.users, u)
		}
	}
	return nil
}

// warmUp has every user invite the next one and cancel, on connections of
// its own, so that every user has kept events before its devices log in
// (see the package comment). Their invitations are left out of the check.
func (r *runner) warmUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	ins := newInspector(r.e)
	defer ins.close()
	r.ignore = make(map[string]bool)
	var mu sync.Mutex
	var errs []error
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				id, err := r.warmUpOne(ctx, ins, r.users[i].name, r.users[(i+1)%len(r.users)].name)
				mu.Lock()
				if id != "" {
					r.ignore[id] = true
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for i := range r.users {
		work <- i
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

func (r *runner) warmUpOne(ctx context.Context, ins *inspector, from, to string) (string, error) {
	c, err := ins.conn(ctx, from)
	if err != nil {
		return "", err
	}
	f, err := c.call(ctx, "invite", map[string]any{"invitee": to, "data": "warm-up", "timeout": 60})
	if err != nil {
		return "", err
	}
	var id string
	if f.Code != 0 || json.Unmarshal(f.Data, &id) != nil {
		return "", fmt.Errorf("invite %s→%s answered %d %q", from, to, f.Code, f.Desc)
	}
	f, err = c.call(ctx, "cancel", map[string]any{"inviteID": id})
	if err != nil {
		return id, err
	}
	if f.Code != 0 {
		return id, fmt.Errorf("cancel of %s answered %d %q", id, f.Code, f.Desc)
	}
	return id, nil
}

// awaitFirstLogins waits until every device has logged in once, and checks
// that each got an anchor.
func (r *runner) awaitFirstLogins(ctx context.Context) error {
	t := time.NewTimer(startLimit)
	defer t.Stop()
	for _, d := range r.devices {
		select {
		case <-d.ready:
		case <-t.C:
			return fmt.Errorf("%v did not log in within %v", d.id, startLimit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, l := range r.e.j.snapshot().Logins {
		if !l.Resume && l.Code == 0 && l.LastEventID == "" {
			return fmt.Errorf("%v logged in without an anchor (lastEventID \"\") although the warm-up gave its user events", l.Device)
		}
	}
	return nil
}

// load places calls and injects faults for the configured duration, and
// on until every enabled fault kind has happened (at most three times the
// duration), then stops both and waits for them.
func (r *runner) load(ctx context.Context) error {
	cfg, log := r.cfg, r.cfg.Logger
	log.Info("load", "duration", cfg.Duration, "faults", cfg.Faults, "interval", cfg.FaultInterval)
	start := time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var drivers sync.WaitGroup
	for _, u := range r.users {
		drivers.Go(func() { u.drive(loadCtx) })
	}
	r.inj = newInjector(r.e, r.devices, r.child())
	injDone := make(chan error, 1)
	go func() { injDone <- r.inj.run(loadCtx, ctx) }()

	var injErr error
	finished := false
	wait := func(until <-chan struct{}, limit time.Duration) {
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-until:
		case <-t.C:
		case <-ctx.Done():
		case injErr = <-injDone:
			finished = true
		}
	}
	wait(nil, cfg.Duration)
	if !finished && ctx.Err() == nil {
		wait(r.inj.covered, 2*cfg.Duration)
	}
	stopLoad()
	drivers.Wait()
	if !finished {
		injErr = <-injDone
	}
	r.loadDur = time.Since(start)
	log.Info("load over", "took", r.loadDur.Round(time.Second), "faults", r.inj.tally())
	if injErr != nil {
		return injErr
	}
	return ctx.Err()
}

// drain brings everything up, waits until every invitation has ended, has
// every device resume once more, and waits until no event has arrived for
// quietFor.
func (r *runner) drain(ctx context.Context) error {
	log := r.cfg.Logger
	log.Info("drain: bringing Redis and every instance up")
	if err := r.e.dep.ensureUp(ctx); err != nil {
		return err
	}
	// No invitation can outlive the last invite's deadline, plus the claim
	// lease of a timeout whose claimer died.
	var lastInvite time.Duration
	for _, q := range r.e.j.snapshot().Requests {
		if q.Op == "invite" || q.Op == "inviteInGroup" {
			lastInvite = max(lastInvite, q.Sent)
		}
	}
	if err := sleepUntil(ctx, r.e.j.start.Add(lastInvite+maxTimeout*time.Second+claimLease+time.Second)); err != nil {
		return err
	}
	log.Info("drain: waiting until every invitation has ended")
	ins := newInspector(r.e)
	defer ins.close()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	open := r.known()
	for len(open) > 0 {
		finals := ins.getAll(wctx, open)
		for id, f := range finals {
			if f.ended() {
				delete(open, id)
			}
		}
		if len(open) == 0 {
			break
		}
		if err := sleepUntil(wctx, time.Now().Add(500*time.Millisecond)); err != nil {
			log.Warn("drain: invitations still active; the check will report them", "count", len(open))
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	log.Info("drain: every device resumes once more")
	marks := make([]int, len(r.devices))
	for i, d := range r.devices {
		marks[i] = d.replaceConnection()
	}
	rctx, cancel2 := context.WithTimeout(ctx, startLimit)
	defer cancel2()
	for i, d := range r.devices {
		if err := d.awaitLoginAfter(rctx, marks[i]); err != nil {
			return err
		}
	}
	log.Info("drain: waiting for quiescence", "quiet", quietFor)
	r.e.j.touch() // the replays may not have begun yet
	deadline := time.Now().Add(startLimit)
	for r.e.j.quietSince() < quietFor {
		if time.Now().After(deadline) {
			return fmt.Errorf("events still arriving %v after the final resume", startLimit)
		}
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

// known returns the invitations to check: every one a reply or an event
// names, but the warm-up's.
func (r *runner) known() map[string]string {
	known := r.e.j.knownInvitations()
	for id := range r.ignore {
		delete(known, id)
	}
	return known
}

// sleepUntil waits until t, or returns ctx's error.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// stats summarises a run's history.
func stats(h *History, faults map[FaultKind]int, load time.Duration) Stats {
	s := Stats{Load: load, States: make(map[string]int), Requests: make(map[string]map[int]int), FaultCounts: faults, Events: len(h.Events)}
	for id, f := range h.Finals {
		if h.Ignore[id] || f.Info == nil {
			continue
		}
		s.Invitations++
		for _, st := range f.Info.States {
			s.States[st]++
		}
	}
	for _, q := range h.Requests {
		if s.Requests[q.Op] == nil {
			s.Requests[q.Op] = make(map[int]int)
		}
		s.Requests[q.Op][q.Code]++
	}
	for _, l := range h.Logins {
		switch {
		case l.Code != 0:
			s.FailedLogins++
		case l.Resume:
			s.Logins++
			s.Resumes++
		default:
			s.Logins++
		}
	}
	return s
}
