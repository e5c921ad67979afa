package bus

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/hub"
)

// MemBus is the Bus of a single instance: kept events live in memory and
// delivery goes straight to the local hub.
//
// EventIDs are "<epoch>-<seq>", both zero-padded: the epoch is the bus's
// start time, so IDs keep increasing across restarts, and an ID issued
// before a restart (whose events are gone) is recognised as unknown.
type MemBus struct {
	hub       *hub.Hub
	keep      int           // events kept per user
	keepBytes int           // bytes of frames kept per user
	maxBytes  int64         // bytes of frames kept in all, before the logs of offline users go
	retention time.Duration // a user's log is dropped this long after its newest event
	epoch     string
	now       func() time.Time
	seed      maphash.Seed
	stripes   [64]memStripe
	total     atomic.Int64  // bytes of frames kept in all
	evict     chan struct{} // asks Run to evict, when total passes maxBytes
}

// MemBusOptions configure a MemBus.
type MemBusOptions struct {
	// Keep and KeepBytes bound one user's kept events: the oldest go when
	// either is passed (the newest is always kept).
	Keep      int
	KeepBytes int
	// MaxBytes bounds the kept events of all users: past it, Run drops the
	// logs of users without a live connection, least recently active first
	// (a later resume of theirs is then not recovered: the client gets its
	// pending invitations and refreshes). 0: no bound.
	MaxBytes int64
	// Retention: a user's log is dropped this long after its newest event,
	// when the user has no live connection.
	Retention time.Duration
	Now       func() time.Time // nil: time.Now
}

type memStripe struct {
	mu   sync.Mutex
	logs map[string]*userLog // guarded by mu
}

// userLog is one user's kept events, oldest first.
type userLog struct {
	bytes   int    // of the kept frames
	seq     uint64 // last issued
	trimmed uint64 // highest seq no longer kept (0: none dropped)
	events  []keptEvent
	rung    map[string]uint64 // inviteID → seq of its onReceiveNewInvitation
	// once holds the Envelope.Once keys already published to this user, as
	// 64-bit hashes under the bus's random seed (a key is some 30 bytes, its
	// hash 8; that two of one user's few hundred keys collide is a chance of
	// about 10^-15); onceQ the same, oldest first: the oldest are forgotten
	// past 2×keep.
	once    map[uint64]struct{}
	onceQ   []uint64
	touched time.Time
}

type keptEvent struct {
	seq    uint64
	frame  []byte
	origin Origin
}

// NewMemBus returns a bus delivering to hub, keeping events as o says; the
// epoch of its eventIDs is the time it is made.
func NewMemBus(hub *hub.Hub, o MemBusOptions) *MemBus {
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &MemBus{
		hub: hub, keep: o.Keep, keepBytes: o.KeepBytes, maxBytes: o.MaxBytes, retention: o.Retention,
		now: o.Now, seed: maphash.MakeSeed(), evict: make(chan struct{}, 1),
	}
	b.epoch = fmt.Sprintf("%013d", o.Now().UnixMilli())
	for i := range b.stripes {
		b.stripes[i].logs = make(map[string]*userLog)
	}
	return b
}

func (b *MemBus) stripe(user string) *memStripe {
	return &b.stripes[maphash.String(b.seed, user)%uint64(len(b.stripes))]
}

func (b *MemBus) id(seq uint64) string { return fmt.Sprintf("%s-%020d", b.epoch, seq) }

// parse returns the seq of an ID this bus issued, or false.
func (b *MemBus) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != b.epoch || len(seq) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// Publish implements Bus. Delivery happens under the user's stripe lock, so
// that one user's events reach each connection in eventID order; it never
// blocks (Hub.Deliver does not).
func (b *MemBus) Publish(_ context.Context, env Envelope) ([]Reach, error) {
	if env.Listed != nil {
		return nil, ErrListed
	}
	reach := make([]Reach, len(env.Users))
	for i, u := range env.Users {
		st := b.stripe(u)
		st.mu.Lock()
		d := hub.Delivery{Frame: env.Frame, Kind: env.Kind}
		if env.Once != "" {
			l := st.log(u)
			key := maphash.String(b.seed, env.Once)
			if _, seen := l.once[key]; seen {
				st.mu.Unlock()
				reach[i].Online = true // published before
				if env.Presence {
					reach[i].Foreground = b.hub.Foreground(u)
				}
				continue
			}
			l.once[key] = struct{}{}
			l.onceQ = append(l.onceQ, key)
			if over := len(l.onceQ) - 2*b.keep; over > 0 {
				// A key only needs to outlive a claim lease (an announcement
				// made again); every event has one, so keep a bounded few.
				for _, k := range l.onceQ[:over] {
					delete(l.once, k)
				}
				l.onceQ = append(l.onceQ[:0], l.onceQ[over:]...)
			}
			l.touched = b.now()
		}
		if env.Keep {
			l := st.log(u)
			if l.seq > 0 {
				d.Prev = b.id(l.seq)
			}
			l.seq++
			d.ID = b.id(l.seq)
			d.Frame = WithEventID(env.Frame, d.ID)
			l.events = append(l.events, keptEvent{l.seq, d.Frame, env.Except})
			l.bytes += len(d.Frame)
			grown := len(d.Frame)
			over := 0
			for over < len(l.events)-1 && (len(l.events)-over > b.keep || l.bytes > b.keepBytes) {
				l.bytes -= len(l.events[over].frame)
				grown -= len(l.events[over].frame)
				over++
			}
			if over > 0 {
				l.trimmed = l.events[over-1].seq
				l.events = append(l.events[:0], l.events[over:]...)
			}
			if b.total.Add(int64(grown)) > b.maxBytes && b.maxBytes > 0 {
				select {
				case b.evict <- struct{}{}:
				default:
				}
			}
			if env.InviteID != "" {
				l.rung[env.InviteID] = l.seq
			}
			l.touched = b.now()
		}
		b.hub.Deliver(u, d, env.Except.Session)
		reach[i].Online = b.hub.Online(u)
		if env.Presence {
			reach[i].Foreground = b.hub.Foreground(u)
		}
		st.mu.Unlock()
	}
	return reach, nil
}

// SetForeground implements Bus: the local hub knows it already.
func (b *MemBus) SetForeground(context.Context, string, string, bool) error { return nil }

// log returns u's log, made if need be. Called with mu held.
func (st *memStripe) log(u string) *userLog {
	l := st.logs[u]
	if l == nil {
		l = &userLog{rung: make(map[string]uint64), once: make(map[uint64]struct{})}
		st.logs[u] = l
	}
	return l
}

// Watch implements Bus: the local hub already receives everything.
func (b *MemBus) Watch(context.Context, string) error { return nil }

// Unwatch implements Bus.
func (b *MemBus) Unwatch(string) {}

// Replay implements Bus.
func (b *MemBus) Replay(_ context.Context, user, after string) ([]Kept, bool, error) {
	var seq uint64
	if after != "" {
		var ok bool
		if seq, ok = b.parse(after); !ok {
			return nil, false, nil
		}
	}
	st := b.stripe(user)
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.logs[user]
	if l == nil {
		return nil, after == "", nil
	}
	if seq > l.seq || seq < l.trimmed {
		return nil, false, nil
	}
	var events []Kept
	for _, e := range l.events {
		if e.seq > seq {
			events = append(events, Kept{Frame: e.frame, Origin: e.origin})
		}
	}
	return events, true, nil
}

// Last implements Bus.
func (b *MemBus) Last(_ context.Context, user string) (string, error) {
	st := b.stripe(user)
	st.mu.Lock()
	defer st.mu.Unlock()
	if l := st.logs[user]; l != nil && l.seq > 0 {
		return b.id(l.seq), nil
	}
	return "", nil
}

// Lasts implements Bus.
func (b *MemBus) Lasts(ctx context.Context, users []string) ([]string, error) {
	out := make([]string, len(users))
	for i, u := range users {
		out[i], _ = b.Last(ctx, u)
	}
	return out, nil
}

// RungAs implements Bus.
func (b *MemBus) RungAs(_ context.Context, user string, inviteIDs []string) ([]string, error) {
	out := make([]string, len(inviteIDs))
	st := b.stripe(user)
	st.mu.Lock()
	defer st.mu.Unlock()
	if l := st.logs[user]; l != nil {
		for i, id := range inviteIDs {
			if seq, ok := l.rung[id]; ok {
				out[i] = b.id(seq)
			}
		}
	}
	return out, nil
}

// Run drops the logs of users with no event for the retention, every
// minute, and those of offline users when all the kept events pass
// MaxBytes, until ctx ends.
func (b *MemBus) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			b.Sweep()
		case <-b.evict:
			b.Evict()
		}
	}
}

// Evict drops the logs of users without a live connection, least
// recently active first, until the kept events take at most nine tenths
// of MaxBytes (so that it does not run again at once).
func (b *MemBus) Evict() {
	target := b.maxBytes * 9 / 10
	if b.maxBytes <= 0 || b.total.Load() <= target {
		return
	}
	type candidate struct {
		user    string
		touched time.Time
	}
	var cs []candidate
	for i := range b.stripes {
		st := &b.stripes[i]
		st.mu.Lock()
		for u, l := range st.logs {
			if !b.hub.Online(u) {
				cs = append(cs, candidate{u, l.touched})
			}
		}
		st.mu.Unlock()
	}
	slices.SortFunc(cs, func(a, b candidate) int { return a.touched.Compare(b.touched) })
	for _, c := range cs {
		if b.total.Load() <= target {
			return
		}
		st := b.stripe(c.user)
		st.mu.Lock()
		if l := st.logs[c.user]; l != nil && !b.hub.Online(c.user) {
			b.total.Add(-int64(l.bytes))
			delete(st.logs, c.user)
		}
		st.mu.Unlock()
	}
}

// KeptBytes returns how many bytes of frames are kept in all.
func (b *MemBus) KeptBytes() int64 { return b.total.Load() }

// Sweep drops the logs of users with no event for the retention and no
// live connection: a connection's place in its user's sequence must stay
// valid however long it is quiet.
func (b *MemBus) Sweep() {
	cutoff := b.now().Add(-b.retention)
	for i := range b.stripes {
		st := &b.stripes[i]
		st.mu.Lock()
		for u, l := range st.logs {
			if l.touched.Before(cutoff) && !b.hub.Online(u) {
				b.total.Add(-int64(l.bytes))
				delete(st.logs, u)
			}
		}
		st.mu.Unlock()
	}
}
