package invite

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxDataBytes is the largest data string any op may carry (12 KiB).
const MaxDataBytes = 12 * 1024

// MaxUserIDBytes bounds user and group IDs so that a client cannot make the
// server keep arbitrarily large keys.
const MaxUserIDBytes = 128

// Groups answers membership questions for inviteInGroup.
type Groups interface {
	// FirstNonMember returns the first of users not in the group, or "".
	// It fails with an error wrapping group.ErrNotFound for a missing group.
	FirstNonMember(ctx context.Context, groupID string, users []string) (string, error)
}

// PushInfo is the offlinePushInfo of an invite: what an offline push
// notification should show.
type PushInfo struct {
	Title       string
	Desc        string
	Ext         string
	DisablePush bool
}

// OfflinePusher requests a push notification for an invitee who has no live
// connection. It must not block: delivery to APNs/FCM is its own business.
type OfflinePusher interface {
	RequestPush(ctx context.Context, user string, inv *Invitation, info PushInfo)
}

// Caller is the user making a request, and the connection it came on.
type Caller struct {
	User    string
	Session uint64
}

// InviteRequest is the common part of invite and inviteInGroup.
type InviteRequest struct {
	GroupID        string // "" for invite
	Invitees       []string
	Data           string
	Timeout        int // seconds
	OnlineUserOnly bool
	Push           PushInfo
}

// Config is the engine's limits and timing.
type Config struct {
	MaxInvitees  int           // inviteeList length limit (10005 beyond it)
	MaxLifetime  time.Duration // upper bound of timeout, and lifetime of timeout-0 invitations
	Retention    time.Duration // how long an ended invitation stays readable
	PollInterval time.Duration // how often the timeout loop looks for due deadlines
	ClaimLease   time.Duration // how long a claimed deadline is hidden from other nodes
}

// DefaultConfig returns the protocol's defaults.
func DefaultConfig() Config {
	return Config{
		MaxInvitees:  200,
		MaxLifetime:  24 * time.Hour,
		Retention:    60 * time.Second,
		PollInterval: 50 * time.Millisecond,
		ClaimLease:   10 * time.Second,
	}
}

// Engine validates requests, applies them through a Store and publishes the
// events they cause. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	store  Store
	groups Groups
	pub    Publisher
	pusher OfflinePusher
	log    *slog.Logger
	now    func() time.Time

	claimFailing bool // owned by Run: the last ClaimDue failed, and that was logged

	doneMu sync.Mutex
	done   []Unannounced // announced changes the store has not been told of; guarded by doneMu

	timeoutsFired prometheus.Counter
	active        prometheus.Gauge
	storeErrors   *prometheus.CounterVec
	pushRequests  prometheus.Counter
}

// Deps are the engine's collaborators. All are required but Pusher.
type Deps struct {
	Store     Store
	Groups    Groups
	Publisher Publisher
	Pusher    OfflinePusher // nil: no offline pushes
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time // nil: time.Now
}

// NewEngine checks cfg and deps and registers the engine's metrics.
func NewEngine(cfg Config, d Deps) (*Engine, error) {
	switch {
	case d.Store == nil || d.Groups == nil || d.Publisher == nil:
		return nil, errors.New("invite: Store, Groups and Publisher are required")
	case d.Logger == nil || d.Registry == nil:
		return nil, errors.New("invite: Logger and Registry are required")
	case cfg.MaxInvitees < 1:
		return nil, errors.New("invite: MaxInvitees must be at least 1")
	case cfg.MaxLifetime < time.Second:
		return nil, errors.New("invite: MaxLifetime must be at least 1s")
	case cfg.Retention < 0:
		return nil, errors.New("invite: Retention must not be negative")
	case cfg.PollInterval <= 0 || cfg.ClaimLease <= 0:
		return nil, errors.New("invite: PollInterval and ClaimLease must be positive")
	}
	e := &Engine{
		cfg: cfg, store: d.Store, groups: d.Groups, pub: d.Publisher,
		pusher: d.Pusher, log: d.Logger, now: d.Now,
		timeoutsFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_timeouts_fired_total",
			Help: "Invitations whose deadline passed with invitees still pending, fired by this instance.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signald_active_invitations",
			Help: "Invitations created by this instance minus those ended by it; on several instances sum them.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_store_errors_total",
			Help: "Store calls that failed for a reason other than the request itself, by operation.",
		}, []string{"op"}),
		pushRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_offline_push_requests_total",
			Help: "Offline push notifications requested for invitees without a live connection.",
		}),
	}
	if e.now == nil {
		e.now = time.Now
	}
	for _, c := range []prometheus.Collector{e.timeoutsFired, e.active, e.storeErrors, e.pushRequests} {
		if err := d.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("invite: register metrics: %w", err)
		}
	}
	return e, nil
}

// Invite creates an invitation (invite when req.GroupID is "", else
// inviteInGroup), rings its invitees and returns its ID. Errors, in the
// order they are checked: ErrInvalid, ErrDataTooLarge, ErrTooManyInvitees,
// group.ErrNotFound, ErrNotMember, ErrUnavailable.
func (e *Engine) Invite(ctx context.Context, c Caller, req InviteRequest) (string, error) {
	if err := e.checkInvite(c, req); err != nil {
		return "", err
	}
	if req.GroupID != "" {
		users := append([]string{c.User}, req.Invitees...)
		missing, err := e.groups.FirstNonMember(ctx, req.GroupID, users)
		if err != nil {
			return "", e.storeErr("group", fmt.Errorf("group %q: %w", req.GroupID, err))
		}
		if missing != "" {
			return "", fmt.Errorf("%q is not a member of group %q: %w", missing, req.GroupID, ErrNotMember)
		}
	}
	now := Millis(e.now())
	inv := &Invitation{
		ID:             rand.Text(),
		GroupID:        req.GroupID,
		Inviter:        c.User,
		Invitees:       slices.Clone(req.Invitees),
		Data:           req.Data,
		Timeout:        req.Timeout,
		OnlineUserOnly: req.OnlineUserOnly,
		CreatedAt:      now,
		States:         make(map[string]State, len(req.Invitees)),
	}
	for _, u := range inv.Invitees {
		inv.States[u] = StatePending
	}
	if inv.Timeout > 0 {
		inv.Deadline = now + int64(inv.Timeout)*1000
		inv.Expires = inv.Deadline + e.cfg.Retention.Milliseconds()
	} else {
		inv.Expires = now + e.cfg.MaxLifetime.Milliseconds()
	}
	if err := e.store.Create(ctx, inv); err != nil {
		return "", e.storeErr("create", err)
	}
	e.active.Inc()
	online := e.pub.Publish(ctx, Event{
		Kind: EvNewInvitation, InviteID: inv.ID, Inviter: inv.Inviter, GroupID: inv.GroupID,
		InviteeList: inv.Invitees, Data: inv.Data, Timeout: inv.Timeout,
		To: inv.Invitees, OnlineUserOnly: inv.OnlineUserOnly,
	})
	if !inv.OnlineUserOnly && !req.Push.DisablePush && e.pusher != nil {
		for i, u := range inv.Invitees {
			if i >= len(online) || !online[i] {
				e.pushRequests.Inc()
				e.pusher.RequestPush(ctx, u, inv, req.Push)
			}
		}
	}
	return inv.ID, nil
}

func (e *Engine) checkInvite(c Caller, req InviteRequest) error {
	if len(req.Invitees) == 0 {
		return fmt.Errorf("inviteeList is empty: %w", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(req.Invitees))
	for _, u := range req.Invitees {
		if err := CheckID("invitee", u); err != nil {
			return err
		}
		if u == c.User {
			return fmt.Errorf("cannot invite yourself: %w", ErrInvalid)
		}
		if _, dup := seen[u]; dup {
			return fmt.Errorf("invitee %q is listed twice: %w", u, ErrInvalid)
		}
		seen[u] = struct{}{}
	}
	if req.GroupID != "" {
		if err := CheckID("groupID", req.GroupID); err != nil {
			return err
		}
	}
	if req.Timeout < 0 || int64(req.Timeout) > int64(e.cfg.MaxLifetime/time.Second) {
		return fmt.Errorf("timeout must be between 0 and %d seconds: %w", int64(e.cfg.MaxLifetime/time.Second), ErrInvalid)
	}
	for _, s := range []string{req.Push.Title, req.Push.Desc, req.Push.Ext} {
		if len(s) > MaxDataBytes {
			return fmt.Errorf("offlinePushInfo field larger than %d bytes: %w", MaxDataBytes, ErrInvalid)
		}
	}
	if err := checkData(req.Data); err != nil {
		return err
	}
	if len(req.Invitees) > e.cfg.MaxInvitees {
		return fmt.Errorf("%d invitees, at most %d: %w", len(req.Invitees), e.cfg.MaxInvitees, ErrTooManyInvitees)
	}
	return nil
}

// CheckID validates a user or group ID: non-empty, valid UTF-8, bounded.
func CheckID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	case len(id) > MaxUserIDBytes:
		return fmt.Errorf("%s longer than %d bytes: %w", what, MaxUserIDBytes, ErrInvalid)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s is not valid UTF-8: %w", what, ErrInvalid)
	}
	return nil
}

func checkData(data string) error {
	if len(data) > MaxDataBytes {
		return fmt.Errorf("data is %d bytes, at most %d: %w", len(data), MaxDataBytes, ErrDataTooLarge)
	}
	return nil
}

// Accept, Reject, Cancel and Modify apply one change on behalf of c and
// publish its event. Errors: ErrInvalid (empty ID), ErrDataTooLarge,
// ErrNotFound, ErrForbidden, ErrEnded, ErrUnavailable.
func (e *Engine) Accept(ctx context.Context, c Caller, id, data string) error {
	return e.change(ctx, c, id, ActAccept, data)
}

// Reject: see Accept.
func (e *Engine) Reject(ctx context.Context, c Caller, id, data string) error {
	return e.change(ctx, c, id, ActReject, data)
}

// Cancel: see Accept.
func (e *Engine) Cancel(ctx context.Context, c Caller, id, data string) error {
	return e.change(ctx, c, id, ActCancel, data)
}

// Modify: see Accept.
func (e *Engine) Modify(ctx context.Context, c Caller, id, data string) error {
	return e.change(ctx, c, id, ActModify, data)
}

func (e *Engine) change(ctx context.Context, c Caller, id string, act Action, data string) error {
	if id == "" {
		return fmt.Errorf("inviteID is empty: %w", ErrInvalid)
	}
	if err := checkData(data); err != nil {
		return err
	}
	// The change is recorded under a token until its event is published, so
	// that if this instance dies in between another announces it.
	now := Millis(e.now())
	token := rand.Text()
	out, err := e.store.Apply(ctx, id, Change{
		Action: act, Actor: c.User, Data: data, Now: now, Retention: e.cfg.Retention.Milliseconds(),
		Token: token, AnnounceBy: now + e.cfg.ClaimLease.Milliseconds(),
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrEnded) {
			// Refused, so nothing to announce: drop its recovery entry now
			// rather than have it claimed and looked up after the lease. On
			// any other error the change may have happened: recovery decides.
			e.markAnnounced(id, token)
		}
		return e.storeErr(string(act), err)
	}
	if out.Ended {
		e.active.Dec()
	}
	e.pub.Publish(ctx, changeEvent(id, token, Announcement{Action: act, Actor: c.User, Data: data}, out.Invitation, c.Session))
	e.markAnnounced(id, token)
	return nil
}

// markAnnounced queues a change for Store.Announced, which Run sends in
// batches every poll interval.
func (e *Engine) markAnnounced(id, token string) {
	e.doneMu.Lock()
	e.done = append(e.done, Unannounced{ID: id, Token: token})
	e.doneMu.Unlock()
}

// changeEvent is the event of a change to inv: for the inviter and every
// invitee, but the connection that made it (session; 0 when announced by
// another instance). Its Once key lets the change be announced again
// without anyone hearing of it twice.
func changeEvent(id, token string, a Announcement, inv *Invitation, session uint64) Event {
	ev := Event{
		InviteID: id, Data: a.Data, To: append([]string{inv.Inviter}, inv.Invitees...),
		ExceptSession: session, OnlineUserOnly: inv.OnlineUserOnly, Once: "ann:" + token,
	}
	switch a.Action {
	case ActAccept:
		ev.Kind, ev.Invitee = EvAccepted, a.Actor
	case ActReject:
		ev.Kind, ev.Invitee = EvRejected, a.Actor
	case ActCancel:
		ev.Kind, ev.Inviter = EvCancelled, inv.Inviter
	case ActModify:
		ev.Kind = EvModified
	}
	return ev
}

// announceOverdue tells the store which changes have been announced, and
// announces the changes other instances recorded but did not live to
// announce. Run calls it every poll interval.
func (e *Engine) announceOverdue(ctx context.Context) {
	e.doneMu.Lock()
	done := e.done
	e.done = nil
	e.doneMu.Unlock()
	if len(done) > 0 {
		if err := e.store.Announced(ctx, done); err != nil {
			e.storeErr("announced", err)
			return // they are claimed after their lease and found announced
		}
	}
	claimed, err := e.store.ClaimUnannounced(ctx, Millis(e.now()), e.cfg.ClaimLease, 256)
	if err != nil {
		e.storeErr("claim", err)
		return
	}
	var finished []Unannounced
	for _, u := range claimed {
		inv, err := e.store.Get(ctx, u.ID, Millis(e.now()))
		if err != nil && !errors.Is(err, ErrNotFound) {
			e.storeErr("get", err)
			continue // claimed again after the lease
		}
		if inv != nil {
			if a, ok := inv.Unannounced[u.Token]; ok {
				e.log.Info("announcing a change another instance made but did not announce", "inviteID", u.ID, "action", a.Action)
				e.pub.Publish(ctx, changeEvent(u.ID, u.Token, a, inv, 0))
			}
		}
		finished = append(finished, u)
	}
	if err := e.store.Announced(ctx, finished); err != nil {
		e.storeErr("announced", err)
	}
}

// Get returns the invitation for getSignalingInfo. Errors: ErrInvalid,
// ErrNotFound, ErrForbidden, ErrUnavailable.
func (e *Engine) Get(ctx context.Context, c Caller, id string) (*Invitation, error) {
	if id == "" {
		return nil, fmt.Errorf("inviteID is empty: %w", ErrInvalid)
	}
	inv, err := e.store.Get(ctx, id, Millis(e.now()))
	if err != nil {
		return nil, e.storeErr("get", err)
	}
	if inv.Inviter != c.User && !inv.IsInvitee(c.User) {
		return nil, fmt.Errorf("get %s: %w", id, ErrForbidden)
	}
	return inv, nil
}

// Pending returns the invitations a user who just logged in must be rung
// for, oldest first.
func (e *Engine) Pending(ctx context.Context, user string) ([]*Invitation, error) {
	invs, err := e.store.PendingFor(ctx, user, Millis(e.now()))
	if err != nil {
		return nil, e.storeErr("pending", err)
	}
	return invs, nil
}

// storeErr counts failures that are the store's, not the request's.
func (e *Engine) storeErr(op string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		e.storeErrors.WithLabelValues(op).Inc()
	}
	return err
}

// Run fires timeouts until ctx ends: every poll interval it claims the
// deadlines that are due and times out their invitations, and announces
// the changes that instances recorded but did not live to announce. Any number of
// instances may run it against one store; the claim lease and the atomic
// transition make each timeout fire once. Run returns nil when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		e.FireDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// FireDue claims and fires every deadline due now, in batches. It is Run's
// body, exported for tests that drive time themselves; it must not be
// called concurrently with itself or Run.
func (e *Engine) FireDue(ctx context.Context) {
	e.announceOverdue(ctx)
	const batch = 256
	for ctx.Err() == nil {
		now := e.now()
		ids, err := e.store.ClaimDue(ctx, Millis(now), e.cfg.ClaimLease, batch)
		if err != nil {
			e.storeErr("claim", err)
			if !e.claimFailing && ctx.Err() == nil { // once per outage, not once per poll
				e.claimFailing = true
				e.log.Warn("cannot claim due timeouts; they fire once the store answers again", "err", err)
			}
			return
		}
		if e.claimFailing {
			e.claimFailing = false
			e.log.Info("claiming due timeouts again")
		}
		for _, id := range ids {
			e.fire(ctx, id, now)
		}
		if len(ids) < batch {
			return
		}
	}
}

// fire times out one claimed invitation and announces it. The state change
// and the announcement are two steps, so the deadline is released only
// after the announcement: an instance that dies in between (even kill -9)
// leaves the claim to expire, and whichever instance claims it next finds
// the invitation timed out and announces it again. The event's Once key
// makes the bus deliver it to each user once, however often it is announced.
func (e *Engine) fire(ctx context.Context, id string, now time.Time) {
	out, err := e.store.Apply(ctx, id, Change{Action: ActTimeout, Now: Millis(now), Retention: e.cfg.Retention.Milliseconds()})
	var inv *Invitation
	var timedOut []string
	switch {
	case err == nil:
		e.timeoutsFired.Inc()
		e.active.Dec()
		inv, timedOut = out.Invitation, out.Changed
	case errors.Is(err, ErrEnded):
		// Answered or cancelled before the deadline, or timed out by an
		// instance that may not have lived to announce it.
		inv, err = e.store.Get(ctx, id, Millis(now))
		if err != nil && !errors.Is(err, ErrNotFound) {
			e.storeErr("timeout", err)
			return // claimed again after the lease
		}
		if inv != nil {
			for _, u := range inv.Invitees {
				if inv.States[u] == StateTimeout {
					timedOut = append(timedOut, u)
				}
			}
		}
	case errors.Is(err, ErrNotFound):
	case errors.Is(err, ErrNotDue):
		return // a clock behind the claimer's: claimed again later
	default:
		e.storeErr("timeout", err)
		e.log.Warn("firing a timeout failed; it is retried after the claim lease", "inviteID", id, "err", err)
		return
	}
	if len(timedOut) > 0 {
		e.pub.Publish(ctx, Event{
			Kind: EvTimeout, InviteID: id, InviteeList: timedOut,
			To: append([]string{inv.Inviter}, timedOut...), OnlineUserOnly: inv.OnlineUserOnly,
			Once: "timeout:" + id,
		})
	}
	if err := e.store.ReleaseDeadline(ctx, id); err != nil {
		e.storeErr("timeout", err) // claimed again after the lease; announced once all the same
	}
}
