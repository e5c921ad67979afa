package invite

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/ids"
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

// OfflinePusher wakes the devices of invitees that hold no foreground
// connection (package push). Both methods record durable push jobs and
// return; delivery to APNs, FCM or a webhook is the pusher's own business.
// Both may be called again for the same change (an announcement made
// again): a job recorded before is not recorded twice.
type OfflinePusher interface {
	// Ring pushes the new invitation inv to every registered device of its
	// invitees but those in foreground[i], the devices of inv.Invitees[i]
	// with a foreground connection.
	Ring(ctx context.Context, inv *Invitation, foreground [][]string) error
	// End tells the devices rung for users that their part in inv ended,
	// for reason (accepted, rejected, cancelled, timeout). spare, when not
	// "", is the device of users that answered: it knows already.
	End(ctx context.Context, inv *Invitation, users []string, reason, spare string) error
}

// Caller is the user making a request, and the connection it came on.
type Caller struct {
	User    string
	Session uint64
	Device  string // the connection's deviceID, "" when it gave none
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
	Limits       Limits        // per-user quotas, enforced when Deps.Quotas is set
}

// DefaultConfig returns the protocol's defaults.
func DefaultConfig() Config {
	return Config{
		MaxInvitees:  200,
		MaxLifetime:  24 * time.Hour,
		Retention:    60 * time.Second,
		PollInterval: 50 * time.Millisecond,
		ClaimLease:   10 * time.Second,
		// Far above what a person does (ten calls a second, a hundred
		// unanswered at once), low enough to bound what one account can
		// make the server hold: a group call to 200 costs 200.
		Limits: Limits{Rate: 20, Burst: 400, MaxActive: 100, MaxPending: 100},
	}
}

// Engine validates requests, applies them through a Store and carries out
// their effects: the events to their audience and offline push requests,
// through the outbox (outbox.go). It is safe for concurrent use.
type Engine struct {
	cfg    Config
	store  Store
	quotas Quotas
	// admitting is the store when it is the quotas too and can admit in
	// the step that creates; else nil. publishing is that store when it
	// can also publish the ring in that step, and the publisher can
	// prepare it (preparer); else nil.
	admitting  AdmittingStore
	publishing PublishingStore
	preparer   EventPreparer
	groups     Groups
	pub        Publisher
	pusher     OfflinePusher
	log        *slog.Logger
	now        func() time.Time
	node       string

	claimFailing bool // owned by Run: the last ClaimDue failed, and that was logged

	out outbox
	// wakeAt (ms) is the earliest deadline created here since Run last
	// planned its sleep; wake tells Run to look at it. planned (ms) is when
	// Run plans to wake, so that only an earlier deadline wakes it.
	wakeAt  atomic.Int64
	planned atomic.Int64
	wake    chan struct{}

	metrics
}

// Deps are the engine's collaborators. All are required but Pusher, Now and
// Node.
type Deps struct {
	Store     Store
	Quotas    Quotas // nil: no per-user quotas
	Groups    Groups
	Publisher Publisher
	Pusher    OfflinePusher // nil: no offline pushes
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time // nil: time.Now
	// Node names this instance in the Origin of the changes it records, so
	// that whichever instance announces a change spares the connection that
	// made it.
	Node string
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
	case d.Quotas != nil && (cfg.Limits.Rate <= 0 || cfg.Limits.Burst < cfg.MaxInvitees || cfg.Limits.MaxActive < 1 || cfg.Limits.MaxPending < 1):
		return nil, errors.New("invite: quotas must be positive, the burst at least MaxInvitees (one full group call)")
	}
	e := &Engine{
		cfg: cfg, store: d.Store, quotas: d.Quotas, groups: d.Groups, pub: d.Publisher,
		pusher: d.Pusher, log: d.Logger, now: d.Now, node: d.Node,
		wake: make(chan struct{}, 1),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if a, ok := d.Store.(AdmittingStore); ok && d.Quotas != nil && any(d.Quotas) == any(d.Store) {
		e.admitting = a
		p, ok1 := d.Store.(PublishingStore)
		pr, ok2 := d.Publisher.(EventPreparer)
		if ok1 && ok2 {
			e.publishing, e.preparer = p, pr
		}
	}
	e.out.init()
	if err := e.metrics.register(d.Registry, e.out.backlog); err != nil {
		return nil, err
	}
	return e, nil
}

// Invite creates an invitation (invite when req.GroupID is "", else
// inviteInGroup), rings its invitees and returns its ID. Errors, in the
// order they are checked: ErrInvalid, ErrDataTooLarge, ErrTooManyInvitees,
// group.ErrNotFound, ErrNotMember, ErrRateLimited, ErrTooManyActive,
// ErrTooManyPending, ErrUnavailable.
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
			return "", &NotMemberError{User: missing, Group: req.GroupID}
		}
	}
	now := Millis(e.now())
	if e.quotas != nil && e.admitting == nil {
		if err := e.quotas.Admit(ctx, c.User, req.Invitees, now, e.cfg.Limits); err != nil {
			return "", e.storeErr("admit", err)
		}
	}
	token := rand.Text()
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
		Push:           req.Push,
		Seq:            1,
		Unannounced:    map[string]Announcement{token: {Seq: 1, Action: ActInvite, Actor: c.User, Origin: e.origin(c)}},
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
	// The invitation is stored with its announcement in its outbox: should
	// ringing fail, or this instance die, it rings all the same, later.
	announceBy := now + e.cfg.ClaimLease.Milliseconds()
	var (
		ring      PreparedEvent
		report    []any
		published bool
		err       error
	)
	switch {
	case e.publishing != nil:
		// One step for the whole invite where the store can: the ring
		// kept and published with the invitation, its outbox entry
		// recorded all the same, so that pushes and a failed part are
		// carried out as for any announcement.
		ok := false
		if ev, known := e.eventOf(inv, token, inv.Unannounced[token]); known {
			ring, ok = e.prepare(ev)
		}
		if ok {
			ring.Complete = !e.pushed(inv)
			report, published, err = e.publishing.CreateAdmittedPublishing(ctx, inv, announceBy, e.cfg.Limits, ring)
		} else {
			err = e.admitting.CreateAdmitted(ctx, inv, announceBy, e.cfg.Limits)
		}
	case e.admitting != nil:
		err = e.admitting.CreateAdmitted(ctx, inv, announceBy, e.cfg.Limits)
	default:
		err = e.store.Create(ctx, inv, announceBy)
	}
	if err != nil {
		return "", e.storeErr("create", err)
	}
	e.active.Inc()
	e.created(inv)
	if inv.Deadline > 0 {
		e.noteDeadline(inv.Deadline)
	}
	e.finish(ctx, inv, token, ring, report, published)
	return inv.ID, nil
}

// origin is the Origin of a change c makes on this instance.
func (e *Engine) origin(c Caller) Origin {
	return Origin{Node: e.node, Session: c.Session, Device: c.Device}
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

// CheckID validates a user or group ID (package ids): not empty, bounded,
// valid UTF-8, no control or bidirectional formatting characters.
func CheckID(what, id string) error {
	if err := ids.Check(id, MaxUserIDBytes); err != nil {
		return fmt.Errorf("%s %w: %w", what, err, ErrInvalid)
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
	// The change is recorded in the invitation's outbox in the same step
	// that applies it, so that it is announced even if publishing fails or
	// this instance dies before.
	now := Millis(e.now())
	token := rand.Text()
	ch := Change{
		Action: act, Actor: c.User, Data: data, Now: now, Retention: e.cfg.Retention.Milliseconds(),
		Token: token, AnnounceBy: now + e.cfg.ClaimLease.Milliseconds(), Origin: e.origin(c),
	}
	// One step for the change and its event where the store can (see
	// Invite); the store reads the audience.
	var pe *Event
	if e.publishing != nil {
		if ev, known := answerEvent(id, token, Announcement{Action: act, Actor: c.User, Data: data, Origin: ch.Origin}); known {
			pe = &ev
		}
	}
	out, ev, report, published, err := e.apply(ctx, id, ch, pe)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrEnded) {
			// Refused, so nothing to announce: drop its outbox entry now
			// rather than have it claimed and looked up after the lease. On
			// any other error the change may have happened: the outbox decides.
			e.out.forget(id, token)
		}
		return e.storeErr(string(act), err)
	}
	if out.Ended {
		e.active.Dec()
	}
	e.changed(out, now)
	e.finish(ctx, out.Invitation, token, ev, report, published)
	return nil
}

// prepare readies ev for the step that makes its change (EventPreparer);
// ok is false when it cannot be, and the event is published after.
func (e *Engine) prepare(ev Event) (PreparedEvent, bool) {
	pe, ok, err := e.preparer.Prepare(ev)
	if err != nil {
		e.log.Error("readying an event for its change's step failed; it is published after", "inviteID", ev.InviteID, "event", ev.Kind, "err", err)
		return PreparedEvent{}, false
	}
	return pe, ok
}

// apply applies ch to invitation id and, where the store can
// (PublishingStore) and ev is not nil, publishes ev in the same step;
// published reports whether it did, prepared and report being what
// finish reads then.
func (e *Engine) apply(ctx context.Context, id string, ch Change, ev *Event) (out Outcome, prepared PreparedEvent, report []any, published bool, err error) {
	ok := false
	if e.publishing != nil && ev != nil {
		prepared, ok = e.prepare(*ev)
	}
	if !ok {
		out, err = e.store.Apply(ctx, id, ch)
		return out, prepared, nil, false, err
	}
	// Without a pusher nothing but the event is left to do; with one,
	// whether the invitation is pushed is known only once it is read.
	prepared.Complete = e.pusher == nil
	out, report, published, err = e.publishing.ApplyPublishing(ctx, id, ch, prepared)
	return out, prepared, report, published, err
}

// finish announces the change to inv made under token, unless its event
// was published in its step (published), which leaves only its pushes and
// its outbox entry to see to (doneInStep).
func (e *Engine) finish(ctx context.Context, inv *Invitation, token string, prepared PreparedEvent, report []any, published bool) {
	if published && e.doneInStep(ctx, inv, token, prepared, report) {
		return
	}
	e.announce(ctx, inv)
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
