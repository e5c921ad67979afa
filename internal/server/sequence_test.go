package server

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
)

// streamBus is a bus.Bus whose Replay serves a user's kept stream as the
// test wrote it; nothing else of it is used here.
type streamBus struct {
	bus.Bus
	mu     sync.Mutex
	stream []bus.Kept // guarded by mu
}

func (b *streamBus) Replay(_ context.Context, _, after string) ([]bus.Kept, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []bus.Kept
	for _, k := range b.stream {
		if bus.EventIDOf(k.Frame) > after {
			out = append(out, k)
		}
	}
	return out, true, nil
}

func event(id string) []byte { return bus.WithEventID([]byte(`{"event":"e"}`), id) }

// queued returns the eventIDs queued on c, in order.
func queued(c *conn) []string {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	var ids []string
	for _, f := range c.queue {
		ids = append(ids, bus.EventIDOf(f))
	}
	return ids
}

// TestGapIsCaughtUpInOrderWithoutOwnEvents: a connection that is handed an
// event which does not follow the last one it sent holds it, replays what
// it missed from its user's stream, sends that, then what it held: in
// eventID order, none twice, and not the event it caused itself (it got a
// reply for that), which moves it along its sequence all the same.
func TestGapIsCaughtUpInOrderWithoutOwnEvents(t *testing.T) {
	sb := &streamBus{}
	s := &Server{cfg: DefaultConfig(), d: Deps{Bus: sb, Node: "n1", Logger: slog.New(slog.DiscardHandler)}}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	s.catcher = newCatcher(s)
	c := &conn{srv: s, session: 7, writing: true, // no writer runs: the queue stays as filled
		quit: make(chan struct{}), user: "bob"}
	c.loggedIn.Store(true)
	c.lastID = "01"

	// 02 went by live. 03 (this connection's own accept) and 04 were
	// published while the subscription was down; 05 arrives live.
	sb.stream = []bus.Kept{
		{Frame: event("02")},
		{Frame: event("03"), Origin: bus.Origin{Node: "n1", Session: 7}},
		{Frame: event("04"), Origin: bus.Origin{Node: "n2", Session: 7}}, // same session number, another instance
	}
	c.Send(hub.Delivery{Frame: event("02"), ID: "02", Prev: "01"})
	c.Send(hub.Delivery{Frame: event("05"), ID: "05", Prev: "04"})
	if got := queued(c); !slices.Equal(got, []string{"02"}) || !c.holding || !c.catching {
		t.Fatalf("after the gap: queued %v, holding %v, catching %v; want [02], holding", got, c.holding, c.catching)
	}
	// 06 arrives during the catch-up: held behind it.
	c.Send(hub.Delivery{Frame: event("06"), ID: "06", Prev: "05"})
	sb.stream = append(sb.stream, bus.Kept{Frame: event("05")}, bus.Kept{Frame: event("06")})

	if !c.catchUp(context.Background()) {
		t.Fatal("catch-up failed")
	}
	if got := queued(c); !slices.Equal(got, []string{"02", "04", "05", "06"}) {
		t.Fatalf("sent %v, want 02 04 05 06: the missed ones but its own, then the held ones, once each", got)
	}
	if c.holding || c.catching || c.lastID != "06" {
		t.Fatalf("after the catch-up: holding %v, catching %v, lastID %q", c.holding, c.catching, c.lastID)
	}
	// Its own event, live, moves it along without being sent.
	c.Skip(hub.Delivery{Frame: event("07"), ID: "07", Prev: "06"})
	c.Send(hub.Delivery{Frame: event("08"), ID: "08", Prev: "07"})
	if got := queued(c); !slices.Equal(got, []string{"02", "04", "05", "06", "08"}) || c.holding {
		t.Fatalf("after its own event: sent %v, holding %v", got, c.holding)
	}
}
