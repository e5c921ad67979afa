package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/bus/bustest"
)

func TestMemBusContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		started := false
		return func(t *testing.T) (bustest.Node, bool) {
			if started {
				return bustest.Node{}, false
			}
			started = true
			hb := bustest.NewHub(t)
			return bustest.Node{Name: "mem", Bus: bus.NewMemBus(hb, bus.MemBusOptions{Keep: bustest.Keep, KeepBytes: bustest.KeepBytes, Retention: time.Hour}), Hub: hb}, true
		}
	})
}

func TestMemBusIDsFromAnotherRunAreUnknown(t *testing.T) {
	ctx := context.Background()
	hb := bustest.NewHub(t)
	start := time.Now()
	before := bus.NewMemBus(hb, bus.MemBusOptions{Keep: 10, KeepBytes: 1 << 20, Retention: time.Hour, Now: func() time.Time { return start }})
	if _, err := before.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`), Keep: true}); err != nil {
		t.Fatal(err)
	}
	id, _ := before.Last(ctx, "bob")
	after := bus.NewMemBus(hb, bus.MemBusOptions{Keep: 10, KeepBytes: 1 << 20, Retention: time.Hour, Now: func() time.Time { return start.Add(time.Second) }})
	if _, ok, _ := after.Replay(ctx, "bob", id); ok {
		t.Fatal("an ID issued before a restart was taken for known")
	}
	if _, err := after.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`), Keep: true}); err != nil {
		t.Fatal(err)
	}
	if newer, _ := after.Last(ctx, "bob"); newer <= id {
		t.Fatalf("eventID after a restart %q is not greater than %q", newer, id)
	}
}

// TestMemBusEvictsOfflineLogsPastMaxBytes: a flood of 12 KiB events to
// many users who are not connected stops growing the memory at MaxBytes:
// the logs of offline users go, least recently active first; a connected
// user's log stays, and so does its resume.
func TestMemBusEvictsOfflineLogsPastMaxBytes(t *testing.T) {
	ctx := context.Background()
	hb := bustest.NewHub(t)
	const maxBytes = 1 << 20
	b := bus.NewMemBus(hb, bus.MemBusOptions{Keep: 100, KeepBytes: 256 << 10, MaxBytes: maxBytes, Retention: time.Hour})
	online := bustest.NewSink()
	hb.Register("online", online)
	t.Cleanup(func() { hb.Unregister("online", online) })
	frame := []byte(`{"event":"e","data":"` + strings.Repeat("x", 12*1024) + `"}`)
	if _, err := b.Publish(ctx, bus.Envelope{Users: []string{"online"}, Frame: frame, Keep: true}); err != nil {
		t.Fatal(err)
	}
	mark, _ := b.Last(ctx, "online")
	for i := range 1000 { // 12 MiB to a thousand offline users
		if _, err := b.Publish(ctx, bus.Envelope{Users: []string{fmt.Sprint("victim", i)}, Frame: frame, Keep: true}); err != nil {
			t.Fatal(err)
		}
		b.Evict() // Run does it when poked; here, every time
	}
	if got := b.KeptBytes(); got > maxBytes {
		t.Fatalf("%d bytes kept after the flood, want at most %d", got, maxBytes)
	}
	if last, _ := b.Last(ctx, "victim999"); last == "" {
		t.Fatal("the newest victim's log went before older ones")
	}
	if last, _ := b.Last(ctx, "victim0"); last != "" {
		t.Fatal("the oldest offline log stayed")
	}
	if _, err := b.Publish(ctx, bus.Envelope{Users: []string{"online"}, Frame: frame, Keep: true}); err != nil {
		t.Fatal(err)
	}
	if events, ok, _ := b.Replay(ctx, "online", mark); !ok || len(events) != 1 {
		t.Fatalf("the connected user's log: %d events, recovered %v", len(events), ok)
	}
}
