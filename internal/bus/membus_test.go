package bus_test

import (
	"context"
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
			return bustest.Node{Name: "mem", Bus: bus.NewMemBus(hb, bustest.Keep, time.Hour, nil), Hub: hb}, true
		}
	})
}

func TestMemBusIDsFromAnotherRunAreUnknown(t *testing.T) {
	ctx := context.Background()
	hb := bustest.NewHub(t)
	start := time.Now()
	before := bus.NewMemBus(hb, 10, time.Hour, func() time.Time { return start })
	if _, err := before.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`), Keep: true}); err != nil {
		t.Fatal(err)
	}
	id, _ := before.Last(ctx, "bob")
	after := bus.NewMemBus(hb, 10, time.Hour, func() time.Time { return start.Add(time.Second) })
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
