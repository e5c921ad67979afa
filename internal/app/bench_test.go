package app_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
)

// BenchmarkCallSetup is one whole call setup through a daemon started
// in-process, on loopback WebSockets: invite → callee's
// onReceiveNewInvitation → accept → caller's onInviteeAccepted, with 8
// setups in flight (8 caller/callee pairs). Client and server share the
// process, so this is for profiling the server's hot path:
//
//	go test -run '^$' -bench CallSetup/memory -cpuprofile cpu.out ./internal/app
//
// cmd/signald-bench measures the daemon as a separate process.
func BenchmarkCallSetup(b *testing.B) {
	for _, backend := range apptest.Backends {
		b.Run(backend, func(b *testing.B) {
			o := apptest.Options(b, backend)
			o.Server.RateLimit, o.Server.RateBurst = 1e9, 1e9
			dm := startDaemon(b, o)
			const pairs = 8
			type pair struct {
				caller, callee *clientT
				calleeID       string
			}
			ps := make([]pair, pairs)
			for i := range ps {
				ps[i] = pair{dm.login(fmt.Sprintf("caller%d", i)), dm.login(fmt.Sprintf("callee%d", i)), fmt.Sprintf("callee%d", i)}
			}
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, p := range ps {
				wg.Go(func() {
					ctx := context.Background()
					for left.Add(-1) >= 0 {
						id := invite(b, p.caller, map[string]any{"invitee": p.calleeID, "data": "{}", "timeout": 30})
						if ev, err := p.callee.Next(ctx); err != nil || ev.InviteID != id {
							b.Errorf("delivery: %v %+v", err, ev)
							return
						}
						if f, err := p.callee.Call(ctx, protocol.OpAccept, map[string]any{"inviteID": id}); err != nil || f.Code != 0 {
							b.Errorf("accept: %v %+v", err, f)
							return
						}
						if ev, err := p.caller.Next(ctx); err != nil || ev.Event != "onInviteeAccepted" {
							b.Errorf("accepted: %v %+v", err, ev)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
