package push_test

import (
	"context"
	"testing"
	"time"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/bustest"
)

func TestMemBusContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		started := false
		return func(t *testing.T) (bustest.Node, bool) {
			if started {
				return bustest.Node{}, false
			}
			started = true
			hub := bustest.NewHub(t)
			return bustest.Node{Name: "mem", Bus: push.NewMemBus(hub, bustest.Keep, time.Hour, nil), Hub: hub}, true
		}
	})
}

func TestMemBusIDsFromAnotherRunAreUnknown(t *testing.T) {
	ctx := context.Background()
	hub := bustest.NewHub(t)
	start := time.Now()
	before := push.NewMemBus(hub, 10, time.Hour, func() time.Time { return start })
	if _, err := before.Publish(ctx, push.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`), Keep: true}); err != nil {
		t.Fatal(err)
	}
	id, _ := before.Last(ctx, "bob")
	after := push.NewMemBus(hub, 10, time.Hour, func() time.Time { return start.Add(time.Second) })
	if _, ok, _ := after.Replay(ctx, "bob", id); ok {
		t.Fatal("an ID issued before a restart was taken for known")
	}
	if _, err := after.Publish(ctx, push.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`), Keep: true}); err != nil {
		t.Fatal(err)
	}
	if newer, _ := after.Last(ctx, "bob"); newer <= id {
		t.Fatalf("eventID after a restart %q is not greater than %q", newer, id)
	}
}
