package redisbus

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
	"github.com/signald/signald/internal/redistest"
)

// registryPublish is the routing signald did not choose, written only to be
// measured against the one it did: a registry of the instances each user
// is connected to, and one channel per instance. Per user and event it
// keeps the event exactly as publish.lua does (trimming with XDEL), looks
// the user's instances up, and publishes to each instance's channel.
const registryPublish = `
local over = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1]) + 1
if over > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)) do
    redis.call('XDEL', KEYS[1], e[1])
  end
end
local id = redis.call('XADD', KEYS[1], '*', 'f', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local n = 0
for _, node in ipairs(redis.call('HKEYS', KEYS[2])) do
  n = n + redis.call('PUBLISH', ARGV[4] .. node, id .. '\n' .. ARGV[3])
end
return n
`

// BenchmarkRouting compares, on one Redis, the cost of sending one event to
// users recipients both ways, with the recipients' instance subscribed:
// per-user shard channels (signald's Publish: keep and SPUBLISH in one
// script per user) against an instance registry with per-instance
// channels. Both are one pipelined round trip per event.
//
//	go test -run '^$' -bench Routing -benchtime 2000x ./internal/redisbus
func BenchmarkRouting(b *testing.B) {
	frame := []byte(`{"event":"onInviteeAccepted","inviteID":"0123456789abcdef","invitee":"bob","data":""}`)
	for _, n := range []int{1, 8, 200} {
		users := make([]string, n)
		for i := range users {
			users[i] = "user" + strconv.Itoa(i)
		}
		b.Run(fmt.Sprintf("per-user-channels/users=%d", n), func(b *testing.B) {
			c, prefix := redistest.NewClient(b)
			hb, err := hub.NewHub(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			bb := startBus(b, Options{Client: c, Prefix: prefix, Node: "n1", Hub: hb})
			ctx := context.Background()
			for _, u := range users {
				if err := bb.Watch(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
			env := bus.Envelope{Users: users, Frame: frame, Keep: true, Kind: "e"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bb.Publish(ctx, env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("instance-registry/users=%d", n), func(b *testing.B) {
			c, prefix := redistest.NewClient(b)
			ctx := context.Background()
			ps := c.Subscribe(ctx, prefix+"node:n1")
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
				b.Fatal(err)
			}
			go func() { // the instance's receive loop, draining its channel
				for range ps.Channel() {
				}
			}()
			for _, u := range users {
				if err := c.HSet(ctx, prefix+"route:{u:"+u+"}", "n1", 1).Err(); err != nil {
					b.Fatal(err)
				}
			}
			script := redis.NewScript(registryPublish)
			if err := script.Load(ctx, c).Err(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				pipe := c.Pipeline()
				for _, u := range users {
					keys := []string{prefix + "ev:{u:" + u + "}", prefix + "route:{u:" + u + "}"}
					pipe.EvalSha(ctx, script.Hash(), keys, 100, 86_400_000, frame, prefix+"node:")
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
