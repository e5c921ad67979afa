package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/invite"
)

// Devices is what the scheduler needs of the device registrations.
type Devices interface {
	Devices(ctx context.Context, users []string) ([][]device.Registration, error)
	Drop(ctx context.Context, r device.Registration) error
}

// Invitations is what the scheduler needs of the invitations: a ring is
// built from the invitation as it is when sent, and skipped once the
// invitee's part has ended.
type Invitations interface {
	Get(ctx context.Context, id string, now int64) (*invite.Invitation, error)
}

// SchedulerConfig is the scheduler's timing.
type SchedulerConfig struct {
	// Lease hides a claimed job from other instances; longer than an
	// attempt, so that a slow platform is not pushed twice.
	Lease time.Duration
	// Attempt bounds one try (one HTTP request, two with a credential
	// renewal); the job's deadline bounds it too.
	Attempt time.Duration
	// Poll is how often due jobs are looked for when nothing woke the
	// scheduler (retries, and jobs other instances made).
	Poll time.Duration
	// Workers is how many pushes are in flight at once.
	Workers int
	// RingWindow is how long a ring of an invitation without a deadline
	// (timeout 0) is tried; EndWindow, an end push.
	RingWindow, EndWindow time.Duration
}

// DefaultSchedulerConfig returns the defaults.
func DefaultSchedulerConfig() SchedulerConfig {
	return SchedulerConfig{
		Lease: 30 * time.Second, Attempt: 10 * time.Second, Poll: 200 * time.Millisecond, Workers: 32,
		RingWindow: 60 * time.Second, EndWindow: 60 * time.Second,
	}
}

// Scheduler decides which devices are pushed and pushes them. It is the
// engine's invite.OfflinePusher: Ring and End record jobs in the Queue,
// durably, from the announcement of the change (so a change is pushed even
// if the instance that made it dies); Run claims due jobs, from any
// instance, and sends them through the platforms' Senders until each is
// sent, dead, or past its deadline.
type Scheduler struct {
	cfg     SchedulerConfig
	devices Devices
	queue   Queue
	invites Invitations
	senders map[Platform]Sender
	log     *slog.Logger
	now     func() time.Time
	wake    chan struct{}

	jobs    *prometheus.CounterVec   // made, by platform and kind
	pushes  *prometheus.CounterVec   // by platform, kind, result
	latency *prometheus.HistogramVec // by platform, kind
	removed *prometheus.CounterVec   // registrations dropped, by platform
}

// SchedulerDeps are the scheduler's collaborators; all are required but Now.
type SchedulerDeps struct {
	Devices     Devices
	Queue       Queue
	Invitations Invitations
	Senders     map[Platform]Sender // the enabled platforms
	Logger      *slog.Logger
	Registry    prometheus.Registerer
	Now         func() time.Time
}

// Push results, the label of signald_pushes_total.
const (
	ResultSent    = OutcomeSent
	ResultDead    = OutcomeDead
	ResultGaveUp  = OutcomeGaveUp
	ResultFailed  = OutcomeFailed
	ResultSkipped = OutcomeSkipped
	ResultRetried = "retried" // an attempt failed; tried again later
)

// NewScheduler checks its inputs and registers its metrics.
func NewScheduler(cfg SchedulerConfig, d SchedulerDeps) (*Scheduler, error) {
	switch {
	case d.Devices == nil || d.Queue == nil || d.Invitations == nil || d.Logger == nil || d.Registry == nil:
		return nil, errors.New("push: Devices, Queue, Invitations, Logger and Registry are required")
	case cfg.Lease <= cfg.Attempt || cfg.Attempt <= 0 || cfg.Poll <= 0 || cfg.Workers < 1 || cfg.RingWindow <= 0 || cfg.EndWindow <= 0:
		return nil, errors.New("push: the scheduler's durations and workers must be positive, the lease longer than an attempt")
	}
	s := &Scheduler{
		cfg: cfg, devices: d.Devices, queue: d.Queue, invites: d.Invitations, senders: d.Senders,
		log: d.Logger, now: d.Now, wake: make(chan struct{}, 1),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_push_jobs_total",
			Help: "Offline pushes decided by this instance (one per device and kind, made when the change is announced), by platform and kind (invite, end).",
		}, []string{"platform", "kind"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_pushes_total",
			Help: "Offline push attempts, by platform, kind (invite, end) and result: sent, retried, dead (token removed), gave_up (still failing at the deadline), failed (refused for good), skipped (the call ended first).",
		}, []string{"platform", "kind", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signald_push_latency_seconds",
			Help:    "From the job's making (a ring: the invitation's creation) to the platform accepting the push.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"platform", "kind"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_push_registrations_removed_total",
			Help: "Device registrations removed because their platform called the token dead, by platform.",
		}, []string{"platform"}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	for p := range s.senders {
		s.removed.WithLabelValues(string(p))
		for _, k := range []string{KindRing, KindEnd} {
			if k == KindEnd && !endsBy(p) {
				continue
			}
			s.jobs.WithLabelValues(string(p), k)
			s.latency.WithLabelValues(string(p), k)
			for _, r := range []string{ResultSent, ResultRetried, ResultDead, ResultGaveUp, ResultFailed, ResultSkipped} {
				s.pushes.WithLabelValues(string(p), k, r)
			}
		}
	}
	for _, c := range []prometheus.Collector{s.jobs, s.pushes, s.latency, s.removed} {
		if err := d.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Enabled reports whether p has credentials here: a registration for
// another platform is refused, as it could never be pushed.
func (s *Scheduler) Enabled(p Platform) bool {
	_, ok := s.senders[p]
	return ok
}

// endsBy reports whether an end push goes by p: FCM and webhook. Never by
// APNs: iOS kills an app that gets a VoIP push it does not report as a new
// call, and an alert saying a call ended is noise; a woken iOS app reads
// the state itself.
func endsBy(p Platform) bool { return p == PlatformFCM || p == PlatformWebhook }

// ringDeadline is when a ring of inv stops being worth sending.
func (s *Scheduler) ringDeadline(inv *invite.Invitation) int64 {
	if inv.Deadline > 0 {
		return inv.Deadline
	}
	return inv.CreatedAt + s.cfg.RingWindow.Milliseconds()
}

// Ring implements invite.OfflinePusher: one job per registered device of
// each invitee, on the first of its platforms (in device.Platforms order)
// that is enabled here, but for the devices in foreground[i].
func (s *Scheduler) Ring(ctx context.Context, inv *invite.Invitation, foreground [][]string) error {
	regs, err := s.devices.Devices(ctx, inv.Invitees)
	if err != nil {
		return err
	}
	deadline := s.ringDeadline(inv)
	var jobs []Job
	for i, u := range inv.Invitees {
		var fg []string
		if i < len(foreground) {
			fg = foreground[i]
		}
		for _, r := range s.choose(regs[i]) {
			if !slices.Contains(fg, r.Device) {
				jobs = append(jobs, Job{InviteID: inv.ID, User: u, Device: r.Device, Kind: KindRing, Reg: r, Deadline: deadline})
			}
		}
	}
	return s.add(ctx, inv, jobs)
}

// choose returns, of one user's registrations (ordered by device, then by
// platform preference), the first enabled one of each device.
func (s *Scheduler) choose(regs []device.Registration) []device.Registration {
	var out []device.Registration
	for _, r := range regs {
		if !s.Enabled(r.Platform) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Device == r.Device {
			if device.Rank(r.Platform) < device.Rank(out[n-1].Platform) {
				out[n-1] = r
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// End implements invite.OfflinePusher: an end push to every device rung for
// users by FCM or webhook, but spare.
func (s *Scheduler) End(ctx context.Context, inv *invite.Invitation, users []string, reason, spare string) error {
	if len(users) == 0 {
		return nil
	}
	rung, err := s.queue.Rung(ctx, inv.ID, users)
	if err != nil {
		return err
	}
	deadline := s.now().Add(s.cfg.EndWindow).UnixMilli()
	var jobs []Job
	for _, r := range rung {
		if !endsBy(r.Reg.Platform) || (spare != "" && r.Device == spare) {
			continue
		}
		jobs = append(jobs, Job{InviteID: inv.ID, User: r.User, Device: r.Device, Kind: KindEnd, Reg: r.Reg, Reason: reason, Deadline: deadline})
	}
	return s.add(ctx, inv, jobs)
}

// add records jobs and wakes Run, so that this instance sends them at once.
func (s *Scheduler) add(ctx context.Context, inv *invite.Invitation, jobs []Job) error {
	if len(jobs) == 0 {
		return nil
	}
	now := s.now().UnixMilli()
	// Everything of the invitation may go once the invitation itself is
	// gone and the last end push is past its window.
	expires := max(inv.Expires, now) + s.cfg.EndWindow.Milliseconds()
	if err := s.queue.Add(ctx, inv.ID, jobs, now, expires); err != nil {
		return err
	}
	// Counted as decided here, also when made again by a retried or taken
	// over announcement (the queue keeps one of each).
	for _, j := range jobs {
		s.jobs.WithLabelValues(string(j.Reg.Platform), j.Kind).Inc()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run claims and sends due jobs until ctx ends, Workers at a time, then
// waits for the pushes in flight and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.Workers)
	t := time.NewTimer(s.cfg.Poll)
	defer t.Stop()
	failing := false
	for {
		free := s.cfg.Workers - len(slots)
		var jobs []Job
		if free > 0 {
			var err error
			jobs, err = s.queue.Claim(ctx, s.now().UnixMilli(), s.cfg.Lease, free)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				failing = true
				s.log.Warn("cannot claim push jobs; they are sent once the store answers again", "err", err)
			case err == nil && failing:
				failing = false
				s.log.Info("claiming push jobs again")
			}
		}
		for _, j := range jobs {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				s.process(ctx, j)
				select { // a slot is free: there may be more to claim
				case s.wake <- struct{}{}:
				default:
				}
			})
		}
		if len(jobs) > 0 && len(jobs) == free {
			continue // more may be due
		}
		t.Reset(s.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

// process makes one attempt at a claimed job and records what came of it.
func (s *Scheduler) process(ctx context.Context, j Job) {
	now := s.now()
	platform := string(j.Reg.Platform)
	finish := func(outcome string) {
		s.pushes.WithLabelValues(platform, j.Kind, outcome).Inc()
		if err := s.queue.Finish(ctx, j, outcome); err != nil && ctx.Err() == nil {
			// Claimed again after the lease, and finished then.
			s.log.Warn("recording a push's outcome failed", "inviteID", j.InviteID, "outcome", outcome, "err", err)
		}
	}
	deadline := time.UnixMilli(j.Deadline)
	if !now.Before(deadline) {
		finish(OutcomeGaveUp)
		return
	}
	sender := s.senders[j.Reg.Platform]
	if sender == nil {
		finish(OutcomeFailed) // its platform was turned off since
		return
	}
	m, made, ok, err := s.message(ctx, j, now)
	if err != nil {
		s.retry(ctx, j, now, err)
		return
	}
	if !ok {
		finish(OutcomeSkipped)
		return
	}
	until := now.Add(s.cfg.Attempt)
	if deadline.Before(until) {
		until = deadline
	}
	actx, cancel := context.WithDeadline(ctx, until)
	err = sender.Send(actx, Target{User: j.User, Device: j.Device, Platform: j.Reg.Platform, Token: j.Reg.Token, Sandbox: j.Reg.Sandbox}, m)
	cancel()
	var rerr *RetryError
	switch {
	case err == nil:
		s.latency.WithLabelValues(platform, j.Kind).Observe(max(s.now().Sub(made), 0).Seconds())
		finish(OutcomeSent)
	case errors.Is(err, ErrUnregistered):
		if derr := s.devices.Drop(ctx, j.Reg); derr != nil {
			s.log.Warn("removing a dead registration failed", "user", j.User, "device", j.Device, "platform", platform, "err", derr)
		} else {
			s.removed.WithLabelValues(platform).Inc()
			s.log.Info("removed a registration its platform called dead", "user", j.User, "device", j.Device, "platform", platform)
		}
		finish(OutcomeDead)
	case errors.Is(err, ErrExpired):
		finish(OutcomeGaveUp)
	case errors.As(err, &rerr):
		s.retry(ctx, j, now, err)
	default:
		s.log.Warn("a push was refused", "inviteID", j.InviteID, "user", j.User, "device", j.Device, "platform", platform, "kind", j.Kind, "err", err)
		finish(OutcomeFailed)
	}
}

// retry schedules another attempt of j, after the platform's Retry-After
// or a backoff, unless that would be past its deadline.
func (s *Scheduler) retry(ctx context.Context, j Job, now time.Time, cause error) {
	platform := string(j.Reg.Platform)
	wait := min(500*time.Millisecond<<min(j.Attempts, 5), 10*time.Second)
	var rerr *RetryError
	if errors.As(cause, &rerr) && rerr.After > wait {
		wait = rerr.After
	}
	at := now.Add(wait)
	if !at.Before(time.UnixMilli(j.Deadline)) {
		s.log.Info("a push gave up at its deadline", "inviteID", j.InviteID, "user", j.User, "device", j.Device, "platform", platform, "kind", j.Kind, "attempts", j.Attempts+1, "err", cause)
		s.pushes.WithLabelValues(platform, j.Kind, OutcomeGaveUp).Inc()
		if err := s.queue.Finish(ctx, j, OutcomeGaveUp); err != nil && ctx.Err() == nil {
			s.log.Warn("recording a push's outcome failed", "inviteID", j.InviteID, "err", err)
		}
		return
	}
	s.pushes.WithLabelValues(platform, j.Kind, ResultRetried).Inc()
	j.Attempts++
	if err := s.queue.Retry(ctx, j, at.UnixMilli()); err != nil && ctx.Err() == nil {
		s.log.Warn("scheduling a push's retry failed; it comes back after its lease", "inviteID", j.InviteID, "err", err)
	}
}

// message builds j's push, and when the job was made. It reports false
// for a ring whose invitee is no longer pending: not worth sending.
func (s *Scheduler) message(ctx context.Context, j Job, now time.Time) (Message, time.Time, bool, error) {
	m := Message{ID: messageID(j), Deadline: time.UnixMilli(j.Deadline)}
	if j.Kind == KindEnd {
		m.Fields = map[string]string{"type": KindEnd, "inviteID": j.InviteID, "reason": j.Reason}
		made := time.UnixMilli(j.Deadline).Add(-s.cfg.EndWindow)
		return m, made, true, nil
	}
	inv, err := s.invites.Get(ctx, j.InviteID, now.UnixMilli())
	if errors.Is(err, invite.ErrNotFound) {
		return m, now, false, nil
	}
	if err != nil {
		return m, now, false, err
	}
	if !inv.Active() || inv.States[j.User] != invite.StatePending {
		return m, now, false, nil
	}
	list, _ := json.Marshal(inv.Invitees)
	m.Fields = map[string]string{
		"type":        KindRing,
		"inviteID":    inv.ID,
		"inviter":     inv.Inviter,
		"groupID":     inv.GroupID,
		"inviteeList": string(list),
		"data":        inv.Data,
		"timeout":     strconv.Itoa(inv.Timeout),
		"sentAt":      strconv.FormatInt(now.UnixMilli(), 10),
		"deadline":    strconv.FormatInt(inv.Deadline, 10),
		"title":       inv.Push.Title,
		"desc":        inv.Push.Desc,
		"ext":         inv.Push.Ext,
	}
	m.Title, m.Body = inv.Push.Title, inv.Push.Desc
	if m.Title == "" {
		m.Title = inv.Inviter
	}
	return m, time.UnixMilli(inv.CreatedAt), true, nil
}

// messageID is the push's ID on every try and instance (apns-id,
// webhook-id): a hash of the invitation and the job's key, so that it is
// header-safe whatever the IDs hold.
func messageID(j Job) string {
	h := sha256.Sum256([]byte(j.InviteID + "\x00" + j.Key()))
	return fmt.Sprintf("msg_%s", hex.EncodeToString(h[:16]))
}
