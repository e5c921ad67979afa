// Package bustest is the contract suite of bus.Bus implementations: the
// memory bus and the Redis bus run the same tests.
package bustest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
)

// Keep and KeepBytes bound the events per user the buses under test keep:
// at most Keep events and KeepBytes bytes of frames.
const (
	Keep      = 5
	KeepBytes = 4096
)

// Node is one instance: its bus and the hub the bus delivers to.
type Node struct {
	Name string
	Bus  bus.Bus
	Hub  *hub.Hub
}

// NewNodeFunc starts another instance sharing the backend of the ones
// started before it in the same test (a fresh backend for each test). A bus
// that cannot span instances returns false on the second call.
type NewNodeFunc func(t *testing.T) (Node, bool)

// NewHub returns a hub with its own registry, for factories.
func NewHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.NewHub(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Run runs the suite. newFactory returns a NewNodeFunc for one test.
func Run(t *testing.T, newFactory func(t *testing.T) NewNodeFunc) {
	t.Run("KeepAndReplay", func(t *testing.T) { testKeepAndReplay(t, newFactory(t)) })
	t.Run("Trim", func(t *testing.T) { testTrim(t, newFactory(t)) })
	t.Run("TrimBytes", func(t *testing.T) { testTrimBytes(t, newFactory(t)) })
	t.Run("DeliveryOrderAndExcept", func(t *testing.T) { testDelivery(t, newFactory(t)) })
	t.Run("RungAs", func(t *testing.T) { testRungAs(t, newFactory(t)) })
	t.Run("Once", func(t *testing.T) { testOnce(t, newFactory(t)) })
	t.Run("AcrossInstances", func(t *testing.T) { testAcross(t, newFactory(t)) })
	t.Run("Presence", func(t *testing.T) { testPresence(t, newFactory(t)) })
}

// onlines returns the Online of each reach.
func onlines(reach []bus.Reach) []bool {
	out := make([]bool, len(reach))
	for i, r := range reach {
		out[i] = r.Online
	}
	return out
}

// Sink records frames, as a connection would receive them, and every
// delivery, skipped ones (its own events) included.
type Sink struct {
	ID uint64
	// Device and Foreground are what Presence reports; set them before
	// registering the sink.
	Device     string
	Foreground bool
	mu         sync.Mutex
	frames     [][]byte
	all        []Delivered
	signal     chan struct{}
}

// Delivered is one delivery to a Sink.
type Delivered struct {
	hub.Delivery
	Skipped bool // the sink's own event: not sent
}

var nextSession atomic.Uint64

// NewSink returns a sink with a fresh session number.
func NewSink() *Sink {
	return &Sink{ID: nextSession.Add(1) + 1000, signal: make(chan struct{}, 1)}
}

// Session implements hub.Sink.
func (s *Sink) Session() uint64 { return s.ID }

// Send implements hub.Sink.
func (s *Sink) Send(d hub.Delivery) bool {
	s.mu.Lock()
	s.frames = append(s.frames, d.Frame)
	s.all = append(s.all, Delivered{Delivery: d})
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return true
}

// Presence implements hub.Sink.
func (s *Sink) Presence() (string, bool) { return s.Device, s.Foreground }

// Skip implements hub.Sink.
func (s *Sink) Skip(d hub.Delivery) {
	s.mu.Lock()
	s.all = append(s.all, Delivered{Delivery: d, Skipped: true})
	s.mu.Unlock()
}

// Deliveries returns every delivery so far, skipped ones included.
func (s *Sink) Deliveries() []Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// checkChain requires that the kept events delivered to s, skipped ones
// included, form one unbroken chain: each names the one before it as
// Prev, and its ID is the one in its frame. The first may follow anything
// (first: the Prev it must have, or "*" for any).
func checkChain(t *testing.T, s *Sink, first string) {
	t.Helper()
	prev := first
	for _, d := range s.Deliveries() {
		if d.ID == "" {
			continue
		}
		if prev != "*" && d.Prev != prev {
			t.Fatalf("sink %d: event %s names %q as the one before it, want %q", s.ID, d.ID, d.Prev, prev)
		}
		if got := bus.EventIDOf(d.Frame); got != d.ID {
			t.Fatalf("sink %d: delivery ID %q, frame's eventID %q", s.ID, d.ID, got)
		}
		prev = d.ID
	}
}

// WaitFor waits until the sink has n frames and returns them.
func (s *Sink) WaitFor(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := slices.Clone(s.frames)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.signal:
		case <-deadline:
			t.Fatalf("sink %d: %d frames after 10 s, want %d", s.ID, len(got), n)
		}
	}
}

// Count returns how many frames the sink has.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

type frame struct {
	Event   string `json:"event"`
	N       int    `json:"n"`
	EventID string `json:"eventID"`
}

func parse(t *testing.T, b []byte) frame {
	t.Helper()
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %q: %v", b, err)
	}
	return f
}

func env(users []string, n int, keep bool) bus.Envelope {
	return bus.Envelope{Users: users, Frame: fmt.Appendf(nil, `{"event":"e","n":%d}`, n), Keep: keep, Kind: "e"}
}

func mustNode(t *testing.T, f NewNodeFunc) Node {
	t.Helper()
	n, ok := f(t)
	if !ok {
		t.Fatal("no node")
	}
	return n
}

func watch(t *testing.T, n Node, user string, s *Sink) {
	t.Helper()
	if err := n.Bus.Watch(context.Background(), user); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	n.Hub.Register(user, s)
	t.Cleanup(func() { n.Hub.Unregister(user, s); n.Bus.Unwatch(user) })
}

func testKeepAndReplay(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	if last, err := n.Bus.Last(ctx, "bob"); err != nil || last != "" {
		t.Fatalf("Last of a user without events = %q, %v", last, err)
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		if _, err := n.Bus.Publish(ctx, env([]string{"bob", "carol"}, i, true)); err != nil {
			t.Fatal(err)
		}
		last, err := n.Bus.Last(ctx, "bob")
		if err != nil || last == "" {
			t.Fatalf("Last = %q, %v", last, err)
		}
		if len(ids) > 0 && last <= ids[len(ids)-1] {
			t.Fatalf("eventID %q not greater than %q", last, ids[len(ids)-1])
		}
		ids = append(ids, last)
	}
	// An event not kept has no ID and is not replayed.
	if _, err := n.Bus.Publish(ctx, env([]string{"bob"}, 99, false)); err != nil {
		t.Fatal(err)
	}
	events, ok, err := n.Bus.Replay(ctx, "bob", ids[0])
	if err != nil || !ok || len(events) != 2 {
		t.Fatalf("Replay after the first = %d events, %v, %v; want 2, true", len(events), ok, err)
	}
	for i, e := range events {
		if f := parse(t, e.Frame); f.N != i+2 || f.EventID != ids[i+1] {
			t.Fatalf("replayed %s, want n=%d eventID %s", e.Frame, i+2, ids[i+1])
		}
	}
	if frames, ok, err := n.Bus.Replay(ctx, "bob", ids[2]); err != nil || !ok || len(frames) != 0 {
		t.Fatalf("Replay after the newest = %d, %v, %v; want none, true", len(frames), ok, err)
	}
	for _, bad := range []string{"garbage", "9" + ids[2], ids[2] + "0"} {
		if _, ok, err := n.Bus.Replay(ctx, "bob", bad); err != nil || ok {
			t.Fatalf("Replay after %q: recovered %v, %v; want false", bad, ok, err)
		}
	}
	if _, ok, _ := n.Bus.Replay(ctx, "dave", ids[0]); ok {
		t.Fatal("Replay of another user's ID for a user without events recovered")
	}
	// From "": everything kept, for a connection that has seen nothing.
	if events, ok, err := n.Bus.Replay(ctx, "bob", ""); err != nil || !ok || len(events) != 3 || parse(t, events[0].Frame).EventID != ids[0] {
		t.Fatalf("Replay from the start = %d events, %v, %v; want 3, true", len(events), ok, err)
	}
	if frames, ok, err := n.Bus.Replay(ctx, "dave", ""); err != nil || !ok || len(frames) != 0 {
		t.Fatalf("Replay from the start of a user without events = %d frames, %v, %v; want none, true", len(frames), ok, err)
	}
	if lasts, err := n.Bus.Lasts(ctx, []string{"bob", "dave", "carol"}); err != nil || len(lasts) != 3 ||
		lasts[0] != ids[2] || lasts[1] != "" || lasts[2] == "" {
		t.Fatalf("Lasts = %q, %v; want [%s \"\" carol's]", lasts, err, ids[2])
	}
}

func testTrim(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	var ids []string
	for i := 1; i <= Keep+3; i++ {
		if _, err := n.Bus.Publish(ctx, env([]string{"bob"}, i, true)); err != nil {
			t.Fatal(err)
		}
		last, _ := n.Bus.Last(ctx, "bob")
		ids = append(ids, last)
	}
	// Events 1..3 are gone: resuming after event 1 or 2, or from the
	// start, would miss some.
	for _, i := range []int{0, 1} {
		if _, ok, _ := n.Bus.Replay(ctx, "bob", ids[i]); ok {
			t.Fatalf("Replay after event %d recovered, though events after it were dropped", i+1)
		}
	}
	if _, ok, _ := n.Bus.Replay(ctx, "bob", ""); ok {
		t.Fatal("Replay from the start recovered, though events were dropped")
	}
	// After event 3, every later event is still kept.
	frames, ok, err := n.Bus.Replay(ctx, "bob", ids[2])
	if err != nil || !ok || len(frames) != Keep {
		t.Fatalf("Replay after the last dropped event: %d frames, %v, %v; want %d, true", len(frames), ok, err, Keep)
	}
}

func testDelivery(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	phone, laptop := NewSink(), NewSink()
	watch(t, n, "bob", phone)
	watch(t, n, "bob", laptop)
	reach, err := n.Bus.Publish(ctx, bus.Envelope{Users: []string{"bob", "nobody"}, Frame: []byte(`{"event":"e","n":1}`), Keep: true, Kind: "e"})
	if online := onlines(reach); err != nil || !slices.Equal(online, []bool{true, false}) {
		t.Fatalf("Publish: online %v, %v; want [true false]", online, err)
	}
	// The phone caused the second event: only the laptop gets it.
	first, _ := n.Bus.Last(ctx, "bob")
	phoneOrigin := bus.Origin{Node: nodeName(n), Session: phone.ID}
	if _, err := n.Bus.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e","n":2}`), Keep: true, Kind: "e",
		Except: phoneOrigin}); err != nil {
		t.Fatal(err)
	}
	// A replay says whose it was, so that the phone can skip it when it
	// catches up on its own sequence.
	if events, ok, err := n.Bus.Replay(ctx, "bob", first); err != nil || !ok || len(events) != 1 || events[0].Origin != phoneOrigin {
		t.Fatalf("Replay of the phone's event: %+v, %v, %v; want it with its origin %+v", events, ok, err, phoneOrigin)
	}
	const many = 50
	var wg sync.WaitGroup
	for g := range 2 { // concurrent publishers: order must still follow eventIDs
		wg.Go(func() {
			for i := range many / 2 {
				if _, err := n.Bus.Publish(ctx, env([]string{"bob"}, 100+g*1000+i, true)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := laptop.WaitFor(t, 2+many)
	checkIncreasing(t, got)
	if f := parse(t, got[1]); f.N != 2 {
		t.Fatalf("laptop's second frame %s, want n=2", got[1])
	}
	phoneGot := phone.WaitFor(t, 1+many)
	checkIncreasing(t, phoneGot)
	for _, b := range phoneGot {
		if parse(t, b).N == 2 {
			t.Fatal("the originating connection received its own event")
		}
	}
	// Every event names the one before it, the phone's own (skipped) too:
	// a connection can tell whether it missed one.
	checkChain(t, laptop, "")
	checkChain(t, phone, "")
	if d := phone.Deliveries(); len(d) != 2+many || !d[1].Skipped || parse(t, d[1].Frame).N != 2 {
		t.Fatalf("the phone was not told of its own event in its place: %+v", d[1])
	}
}

func checkIncreasing(t *testing.T, frames [][]byte) {
	t.Helper()
	prev := ""
	for _, b := range frames {
		f := parse(t, b)
		if f.EventID <= prev {
			t.Fatalf("eventID %q after %q: out of order", f.EventID, prev)
		}
		prev = f.EventID
	}
}

func nodeName(n Node) string { return n.Name }

func testRungAs(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	e := env([]string{"bob", "carol"}, 1, true)
	e.InviteID = "inv1"
	if _, err := n.Bus.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	bobID, _ := n.Bus.Last(ctx, "bob")
	got, err := n.Bus.RungAs(ctx, "bob", []string{"inv0", "inv1"})
	if err != nil || !slices.Equal(got, []string{"", bobID}) {
		t.Fatalf("RungAs = %v, %v; want [\"\" %s]", got, err, bobID)
	}
}

// testOnce: an event with a once-key published twice (a timeout announced
// again by another instance) reaches each user once, kept or not.
func testOnce(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	phone := NewSink()
	watch(t, n, "bob", phone)
	for _, keep := range []bool{true, false} {
		e := env([]string{"bob", "carol"}, 1, keep)
		e.Once = fmt.Sprintf("timeout:inv-%v", keep)
		for range 2 {
			reach, err := n.Bus.Publish(ctx, e)
			if err != nil || !reach[0].Online {
				t.Fatalf("Publish: %v, %v", reach, err)
			}
		}
	}
	// A later event shows that nothing more is on its way.
	if _, err := n.Bus.Publish(ctx, env([]string{"bob"}, 2, true)); err != nil {
		t.Fatal(err)
	}
	got := phone.WaitFor(t, 3)
	if len(got) != 3 || parse(t, got[2]).N != 2 {
		t.Fatalf("bob got %d frames (%q), want the two once-events once each and then the marker", len(got), got)
	}
	last, _ := n.Bus.Last(ctx, "carol")
	if last == "" {
		t.Fatal("the kept once-event was not kept for carol")
	}
}

func testAcross(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	a := mustNode(t, f)
	b, ok := f(t)
	if !ok {
		t.Skip("this bus serves a single instance")
	}
	onA, onB := NewSink(), NewSink()
	watch(t, a, "bob", onA)
	watch(t, b, "bob", onB)
	other := NewSink() // registered by hand: the end of the test unregisters it
	if err := b.Bus.Watch(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	b.Hub.Register("carol", other)
	reach, err := a.Bus.Publish(ctx, env([]string{"bob", "carol", "nobody"}, 1, true))
	if online := onlines(reach); err != nil || !slices.Equal(online, []bool{true, true, false}) {
		t.Fatalf("online %v, %v; want [true true false]", online, err)
	}
	// The same session number on another instance is another connection.
	if _, err := b.Bus.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e","n":2}`), Keep: true, Kind: "e",
		Except: bus.Origin{Node: b.Name, Session: onA.ID}}); err != nil {
		t.Fatal(err)
	}
	checkIncreasing(t, onA.WaitFor(t, 2))
	checkIncreasing(t, onB.WaitFor(t, 2))
	checkChain(t, onA, "")
	checkChain(t, onB, "")
	other.WaitFor(t, 1)
	// Replay works on any instance.
	first, _ := a.Bus.Last(ctx, "carol")
	if _, ok, err := b.Bus.Replay(ctx, "carol", first); err != nil || !ok {
		t.Fatalf("Replay on the other instance: %v, %v", ok, err)
	}
	// After Unwatch an instance no longer receives the user's events.
	b.Hub.Unregister("carol", other)
	b.Bus.Unwatch("carol")
	if reach, _ := a.Bus.Publish(ctx, env([]string{"carol"}, 3, true)); reach[0].Online {
		t.Fatal("carol still online after her only connection left")
	}
}

// testPresence: a publish that asks for it reports each user's devices with
// a foreground connection, on every instance, each once: not those in the
// background, not connections without a deviceID, and not a device once it
// went to the background. An event published before reports them too.
func testPresence(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	a := mustNode(t, f)
	phone := &Sink{ID: 1, Device: "phone", Foreground: true, signal: make(chan struct{}, 1)}
	phone2 := &Sink{ID: 2, Device: "phone", Foreground: true, signal: make(chan struct{}, 1)}
	tablet := &Sink{ID: 3, Device: "tablet", signal: make(chan struct{}, 1)}
	laptop := &Sink{ID: 4, Foreground: true, signal: make(chan struct{}, 1)}
	for _, s := range []*Sink{phone, phone2, tablet, laptop} {
		watch(t, a, "bob", s)
		if s.Device != "" {
			if err := a.Bus.SetForeground(ctx, "bob", s.Device, s.Foreground); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"phone"}
	b, across := f(t)
	if across {
		watch(t, b, "bob", &Sink{ID: 1, Device: "watch", Foreground: true, signal: make(chan struct{}, 1)})
		if err := b.Bus.SetForeground(ctx, "bob", "watch", true); err != nil {
			t.Fatal(err)
		}
		want = []string{"phone", "watch"}
	}
	e := env([]string{"bob", "nobody"}, 1, true)
	e.Presence, e.Once = true, "ring-1"
	for range 2 { // the second time as published before
		reach, err := a.Bus.Publish(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(slices.Values(reach[0].Foreground))
		if !slices.Equal(got, want) || len(reach[1].Foreground) != 0 {
			t.Fatalf("foreground devices %v and %v, want %v and none", reach[0].Foreground, reach[1].Foreground, want)
		}
	}
	if across {
		if err := b.Bus.SetForeground(ctx, "bob", "watch", false); err != nil {
			t.Fatal(err)
		}
		e.Once = "ring-2"
		reach, err := a.Bus.Publish(ctx, e)
		if err != nil || !slices.Equal(reach[0].Foreground, []string{"phone"}) {
			t.Fatalf("after the watch went to the background: %v, %v", reach, err)
		}
	}
}

// testTrimBytes: kept events are bounded in bytes too: large frames push
// the oldest out before Keep is reached, and a frame larger than the bound
// is still kept, alone.
func testTrimBytes(t *testing.T, f NewNodeFunc) {
	ctx := context.Background()
	n := mustNode(t, f)
	big := func(i int) bus.Envelope {
		return bus.Envelope{Users: []string{"bob"}, Frame: fmt.Appendf(nil, `{"event":"e","n":%d,"pad":"%s"}`, i, strings.Repeat("x", KeepBytes/3)), Keep: true, Kind: "e"}
	}
	var ids []string
	for i := 1; i <= 4; i++ {
		if _, err := n.Bus.Publish(ctx, big(i)); err != nil {
			t.Fatal(err)
		}
		last, _ := n.Bus.Last(ctx, "bob")
		ids = append(ids, last)
	}
	// Each is over a third of KeepBytes: at most two fit.
	if _, ok, _ := n.Bus.Replay(ctx, "bob", ids[0]); ok {
		t.Fatal("events beyond the byte bound were kept")
	}
	events, ok, err := n.Bus.Replay(ctx, "bob", ids[1])
	if err != nil || !ok || len(events) != 2 {
		t.Fatalf("Replay after the third newest: %d events, %v, %v; want the two newest", len(events), ok, err)
	}
	huge := bus.Envelope{Users: []string{"bob"}, Frame: fmt.Appendf(nil, `{"event":"e","pad":"%s"}`, strings.Repeat("y", 2*KeepBytes)), Keep: true, Kind: "e"}
	if _, err := n.Bus.Publish(ctx, huge); err != nil {
		t.Fatal(err)
	}
	events, ok, err = n.Bus.Replay(ctx, "bob", ids[3])
	if err != nil || !ok || len(events) != 1 {
		t.Fatalf("after a frame over the bound: %d events, %v, %v; want it alone", len(events), ok, err)
	}
}
