package invite

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// The outbox: every change to an invitation, its creation included, is
// recorded in the store in the same atomic step that makes it, as an
// Announcement under a token (Invitation.Unannounced), and entered for
// Store.ClaimUnannounced. Its effects (the event to its audience, kept in
// every user's stream, and for a new invitation the offline push requests)
// are carried out after that step, and the entry is forgotten
// (Store.Announced) only once they all succeeded. Effects are idempotent:
// an event carries the Once key "ann:<token>", so a user who already has it
// does not get it again.
//
// So a committed change reaches its whole audience whatever happens between
// the two steps: a publish that fails, even part-way (the backend restarts,
// answers LOADING, times out), is tried again here with backoff until it
// succeeds; an instance that dies leaves the entry to whichever instance
// claims it after AnnounceBy. The announcements of one invitation are
// carried out in the order their changes were applied (Announcement.Seq):
// each announce also carries out the earlier ones still in the outbox, so
// that nobody hears of a timeout before the accept that came first.
type outbox struct {
	mu sync.Mutex
	// done: entries announced (or refused) here that the store has not yet
	// been told of; Run tells it in batches. Guarded by mu.
	done []Unannounced
	// recent: tokens of done entries that were announced here, skipped
	// when an invitation read meanwhile still lists them. Guarded by mu.
	recent map[string]struct{}
	// retry: invitations whose announcement failed here, to be tried again
	// from Run; by inviteID. Guarded by mu.
	retry map[string]retryState
}

type retryState struct {
	attempt int
	at      time.Time
}

// maxRetryBacklog bounds the invitations retried here; beyond it a failed
// announcement is left to the claim after its lease, on any instance.
const maxRetryBacklog = 100_000

func (o *outbox) init() {
	o.recent = make(map[string]struct{})
	o.retry = make(map[string]retryState)
}

func (o *outbox) backlog() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.retry)
}

// announced records that an entry's effects are carried out.
func (o *outbox) announced(id, token string) {
	o.mu.Lock()
	o.done = append(o.done, Unannounced{ID: id, Token: token})
	o.recent[token] = struct{}{}
	o.mu.Unlock()
}

// forget records an entry with nothing to announce: its change was refused,
// or it is not (or no longer) recorded on its invitation.
func (o *outbox) forget(id, token string) {
	o.mu.Lock()
	o.done = append(o.done, Unannounced{ID: id, Token: token})
	o.mu.Unlock()
}

func (o *outbox) takeDone() []Unannounced {
	o.mu.Lock()
	defer o.mu.Unlock()
	done := o.done
	o.done = nil
	return done
}

// told drops the tokens the store has been told of (or failed to be: they
// are then claimed again after their lease and announced, once, by Once).
func (o *outbox) told(done []Unannounced) {
	o.mu.Lock()
	for _, d := range done {
		delete(o.recent, d.Token)
	}
	o.mu.Unlock()
}

// pending returns inv's outbox entries not announced here, in Seq order.
func (o *outbox) pending(inv *Invitation) []entry {
	if len(inv.Unannounced) == 0 {
		return nil
	}
	out := make([]entry, 0, len(inv.Unannounced))
	o.mu.Lock()
	for tok, a := range inv.Unannounced {
		if _, ok := o.recent[tok]; !ok {
			out = append(out, entry{tok, a})
		}
	}
	o.mu.Unlock()
	slices.SortFunc(out, func(a, b entry) int { return cmp.Compare(a.a.Seq, b.a.Seq) })
	return out
}

type entry struct {
	token string
	a     Announcement
}

// retryLater schedules another try of id's announcement, with backoff.
func (o *outbox) retryLater(id string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.retry[id]
	if !ok && len(o.retry) >= maxRetryBacklog {
		return
	}
	st.at = now.Add(min(100*time.Millisecond<<min(st.attempt, 5), 2*time.Second))
	st.attempt++
	o.retry[id] = st
}

// dueRetries returns up to max invitations whose next try is due at now.
func (o *outbox) dueRetries(now time.Time, max int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, st := range o.retry {
		if len(ids) == max {
			break
		}
		if !st.at.After(now) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (o *outbox) dropRetry(id string) {
	o.mu.Lock()
	delete(o.retry, id)
	o.mu.Unlock()
}

// announce carries out, in Seq order, the effects of every entry of inv's
// outbox not announced here yet. It stops at the first failure, which it
// schedules for another try, so that a later change is never announced
// before an earlier one; it reports whether all succeeded.
func (e *Engine) announce(ctx context.Context, inv *Invitation) bool {
	return e.announceAs(ctx, inv, false)
}

// announceAs is announce; takenOver says the announcer is not the
// instance that made the changes, nor one that answered their requests:
// their connections then get the events too, as nobody can tell whether
// they heard of success (a request that got 90994, an instance that died).
func (e *Engine) announceAs(ctx context.Context, inv *Invitation, takenOver bool) bool {
	for _, en := range e.out.pending(inv) {
		if takenOver {
			en.a.Origin = Origin{Device: en.a.Origin.Device}
		}
		if err := e.effects(ctx, inv, en.token, en.a); err != nil {
			e.log.Warn("announcing a change failed; it is tried again", "inviteID", inv.ID, "action", en.a.Action, "err", err)
			e.out.retryLater(inv.ID, e.now())
			return false
		}
		e.out.announced(inv.ID, en.token)
	}
	return true
}

// effects carries out one announcement: its event, published to its whole
// audience, and for a new invitation the offline push requests. inv is the
// invitation as read at or after the change; what a change did that later
// changes cannot alter (who timed out) is read from it.
func (e *Engine) effects(ctx context.Context, inv *Invitation, token string, a Announcement) error {
	ev, ok := e.eventOf(inv, token, a)
	if !ok {
		return nil
	}
	foreground, err := e.pub.Publish(ctx, ev)
	if err != nil {
		return err
	}
	return e.pushes(ctx, inv, a, foreground)
}

// eventOf is the event of announcement a (under token) of inv; ok is false
// for an unknown action, which is logged and dropped.
func (e *Engine) eventOf(inv *Invitation, token string, a Announcement) (ev Event, ok bool) {
	switch a.Action {
	case ActInvite:
		// With the data as it is now: a modify announced after it says the same.
		ev = Event{
			Kind: EvNewInvitation, InviteID: inv.ID, Inviter: inv.Inviter, GroupID: inv.GroupID,
			InviteeList: inv.Invitees, Data: inv.Data, Timeout: inv.Timeout, To: inv.Invitees,
		}
	case ActTimeout:
		var timedOut []string
		for _, u := range inv.Invitees {
			if inv.States[u] == StateTimeout {
				timedOut = append(timedOut, u)
			}
		}
		ev = Event{Kind: EvTimeout, InviteID: inv.ID, InviteeList: timedOut, To: append([]string{inv.Inviter}, timedOut...)}
	default:
		if ev, ok = answerEvent(inv.ID, token, a); !ok {
			e.log.Error("unknown action in an outbox; dropped", "inviteID", inv.ID, "action", a.Action)
			return Event{}, false
		}
		ev.To = append([]string{inv.Inviter}, inv.Invitees...)
	}
	ev.Except, ev.OnlineUserOnly, ev.Once = a.Origin, inv.OnlineUserOnly, "ann:"+token
	ev.Presence = e.pushed(inv) && a.Action == ActInvite
	return ev, true
}

// pushed reports whether inv's changes are pushed to devices offline.
func (e *Engine) pushed(inv *Invitation) bool {
	return e.pusher != nil && !inv.OnlineUserOnly && !inv.Push.DisablePush
}

// pushes records the offline push requests of announcement a of inv,
// once its event is published; foreground is what Publish returned.
func (e *Engine) pushes(ctx context.Context, inv *Invitation, a Announcement, foreground [][]string) error {
	if !e.pushed(inv) {
		return nil
	}
	// The pushes are recorded before the announcement is forgotten: made
	// again, it records them again, and a job recorded before stays one.
	var err error
	switch a.Action {
	case ActInvite:
		if inv.Active() {
			err = e.pusher.Ring(ctx, inv, foreground)
		}
	case ActAccept, ActReject:
		err = e.pusher.End(ctx, inv, []string{a.Actor}, string(inv.States[a.Actor]), a.Origin.Device)
	case ActCancel, ActTimeout:
		state := StateCancelled
		if a.Action == ActTimeout {
			state = StateTimeout
		}
		var ended []string
		for _, u := range inv.Invitees {
			if inv.States[u] == state {
				ended = append(ended, u)
			}
		}
		err = e.pusher.End(ctx, inv, ended, string(state), "")
	}
	return err
}

// doneInStep finishes the announcement of a change to inv (under token)
// whose event the store published in the step that made it (report, for
// ev.Done): the offline pushes, then the outbox entry is done, unless the
// store forgot it already (ev.Complete). It reports false when the report
// is unreadable, and the caller announces as usual (the event's Once key
// keeps anyone from getting it twice).
func (e *Engine) doneInStep(ctx context.Context, inv *Invitation, token string, ev PreparedEvent, report []any) bool {
	foreground, err := ev.Done(report, inv.OnlineUserOnly)
	if err != nil {
		e.log.Warn("reading an event published with its change failed; it is announced again", "inviteID", inv.ID, "err", err)
		return false
	}
	if ev.Complete {
		return true
	}
	a := inv.Unannounced[token]
	if err := e.pushes(ctx, inv, a, foreground); err != nil {
		e.log.Warn("announcing a change failed; it is tried again", "inviteID", inv.ID, "action", a.Action, "err", err)
		e.out.retryLater(inv.ID, e.now())
		return true
	}
	e.out.announced(inv.ID, token)
	return true
}

// answerEvent is the event of announcement a (under token) of an answer
// or a modify to invitation id, for the inviter and every invitee: all
// its fields but To, known before the change is applied, so that the
// store can publish it in the change's step (its audience read there);
// ok is false for any other action (an invite or a timeout: their events
// depend on the invitation, or on the outcome).
func answerEvent(id, token string, a Announcement) (ev Event, ok bool) {
	ev = Event{InviteID: id, Data: a.Data, Except: a.Origin, Once: "ann:" + token}
	switch a.Action {
	case ActAccept:
		ev.Kind, ev.Invitee = EvAccepted, a.Actor
	case ActReject:
		ev.Kind, ev.Invitee = EvRejected, a.Actor
	case ActCancel:
		ev.Kind, ev.Inviter = EvCancelled, a.Actor // refused unless the inviter
	case ActModify:
		ev.Kind = EvModified
	default:
		return Event{}, false
	}
	return ev, true
}

// tidyOutbox runs every poll interval, from Run: it tells the store which
// entries are announced, tries again the announcements that failed here,
// and takes over the entries whose announcer did not finish in time.
func (e *Engine) tidyOutbox(ctx context.Context) {
	e.tellDone(ctx)
	e.retryDue(ctx)
	e.takeOver(ctx)
}

// tellDone tells the store which entries are announced, in one call.
func (e *Engine) tellDone(ctx context.Context) {
	if done := e.out.takeDone(); len(done) > 0 {
		err := e.store.Announced(ctx, done)
		e.out.told(done)
		if err != nil {
			e.storeErr("announced", err) // claimed after their lease, announced once by Once
		}
	}
}

// retryDue tries again the announcements that failed here and are due.
func (e *Engine) retryDue(ctx context.Context) {
	now := e.now()
	for _, id := range e.out.dueRetries(now, 256) {
		inv, err := e.store.Get(ctx, id, Millis(now))
		switch {
		case errors.Is(err, ErrNotFound):
			e.out.dropRetry(id) // dropped after its retention: nobody can hear of it now
			continue
		case err != nil:
			e.storeErr("get", err)
			e.out.retryLater(id, now)
			continue
		}
		e.announceRetries.Inc()
		if e.announce(ctx, inv) {
			e.out.dropRetry(id)
		}
	}
}

// takeOver claims the outbox entries whose AnnounceBy has passed (their
// announcer died, or failed for longer than a lease) and announces them.
func (e *Engine) takeOver(ctx context.Context) {
	now := Millis(e.now())
	claimed, err := e.store.ClaimUnannounced(ctx, now, e.cfg.ClaimLease, 256)
	if err != nil {
		e.storeErr("claim", err)
		return
	}
	byID := make(map[string][]string)
	for _, u := range claimed {
		byID[u.ID] = append(byID[u.ID], u.Token)
	}
	for id, tokens := range byID {
		inv, err := e.store.Get(ctx, id, now)
		if err != nil && !errors.Is(err, ErrNotFound) {
			e.storeErr("get", err)
			continue // claimed again after the lease
		}
		recorded := 0
		for _, tok := range tokens {
			if inv != nil && inv.Unannounced[tok].Action != "" {
				recorded++
			} else {
				e.out.forget(id, tok) // its change failed, or it was announced
			}
		}
		if recorded > 0 {
			e.announceTakeover.Add(float64(recorded))
			e.log.Info("announcing changes whose announcer did not finish", "inviteID", id, "entries", recorded)
			e.announceAs(ctx, inv, true)
		}
	}
}
