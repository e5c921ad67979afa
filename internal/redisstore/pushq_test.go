package redisstore

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/queuetest"
)

// TestAddDiesHalfway plays an Add that dies between its two steps: its
// jobs are recorded but not due, and the same Add made again makes them
// due, but not a job claimed or finished meanwhile.
func TestAddDiesHalfway(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	ring := queuetest.NewJob("inv-1", "bob", "phone", push.KindRing, now+30_000)
	done := queuetest.NewJob("inv-1", "carol", "phone", push.KindRing, now+30_000)
	if err := s.Add(ctx, "inv-1", []push.Job{done}, now, now+60_000); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, now, time.Minute, 10); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %+v, %v", got, err)
	}
	if err := s.Finish(ctx, done, push.OutcomeSent); err != nil {
		t.Fatal(err)
	}
	// The first step alone.
	args := []any{now + 60_000, jobKey(ring), pfRung + encodeList([]string{"bob"}), encodeList([]string{"phone"}), encodeJob(ring), 0}
	if err := pushaddScript.Run(ctx, c, []string{s.pushKey("inv-1")}, args...).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, now+1, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("a job recorded but not entered was claimed: %+v, %v", got, err)
	}
	// Rung knows it already: its end would be pushed.
	if got, err := s.Rung(ctx, "inv-1", []string{"bob"}); err != nil || !reflect.DeepEqual(got, []push.Job{ring}) {
		t.Fatalf("Rung = %+v, %v", got, err)
	}
	// The announcement taken over adds the same jobs again.
	if err := s.Add(ctx, "inv-1", []push.Job{ring, done}, now+2, now+60_000); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, now+2, time.Minute, 10); err != nil || !reflect.DeepEqual(got, []push.Job{ring}) {
		t.Fatalf("Claim after the Add made again = %+v, %v; want only the unfinished one", got, err)
	}
}

// TestClaimDropsLeftovers: entries of the due set whose record is gone
// (collected by Redis, or never written), finished, or past its
// invitation's expires leave the set when claimed, and are not returned.
func TestClaimDropsLeftovers(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	ghost := queuetest.NewJob("gone", "bob", "phone", push.KindRing, now+30_000)
	finished := queuetest.NewJob("inv-2", "bob", "phone", push.KindRing, now+30_000)
	expired := queuetest.NewJob("inv-3", "bob", "phone", push.KindRing, now+30_000)
	if err := c.ZAdd(ctx, s.pushQueueKey(),
		redis.Z{Score: float64(now), Member: pushMember("gone", ghost)},
		redis.Z{Score: float64(now), Member: "not a member"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "inv-2", []push.Job{finished}, now, now+60_000); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "inv-3", []push.Job{expired}, now, now+1000); err != nil {
		t.Fatal(err)
	}
	// Finish died after marking: its entry stayed.
	if err := pushmarkScript.Run(ctx, c, []string{s.pushKey("inv-2")}, jobKey(finished), pushMarkState, pushFinished+push.OutcomeSent).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, now+1000, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("Claim returned leftovers: %+v, %v", got, err)
	}
	if n, err := c.ZCard(ctx, s.pushQueueKey()).Result(); err != nil || n != 0 {
		t.Fatalf("%d entries left in the due set, %v", n, err)
	}
}

// TestPushExpiry: an invitation's push hash is collected by Redis at the
// latest expires given, and the due set never expires.
func TestPushExpiry(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	expireTime := func(key string) int64 {
		t.Helper()
		ms, err := c.Do(ctx, "PEXPIRETIME", key).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	j := queuetest.NewJob("inv", "bob", "phone", push.KindRing, now+30_000)
	end := queuetest.NewJob("inv", "bob", "phone", push.KindEnd, now+30_000)
	for _, step := range []struct {
		jobs    []push.Job
		expires int64
		want    int64
	}{
		{[]push.Job{j}, now + 60_000, now + 60_000},
		{[]push.Job{end}, now + 30_000, now + 60_000}, // never earlier
		{[]push.Job{j}, now + 90_000, now + 90_000},   // later, even when nothing is new
	} {
		if err := s.Add(ctx, "inv", step.jobs, now, step.expires); err != nil {
			t.Fatal(err)
		}
		if got := expireTime(s.pushKey("inv")); got != step.want {
			t.Fatalf("push hash expires at %d, want %d", got, step.want)
		}
	}
	if got := expireTime(s.pushQueueKey()); got != -1 {
		t.Fatalf("the due set expires at %d; it must not expire", got)
	}
	// A hash collected by Redis: its entries go at their next claim.
	if err := c.Del(ctx, s.pushKey("inv")).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, now, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("Claim after the hash was collected = %+v, %v", got, err)
	}
	// And Retry and Finish do not bring it back.
	if err := errors.Join(s.Retry(ctx, j, now), s.Finish(ctx, end, push.OutcomeSent)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, s.pushKey("inv")).Result(); err != nil || n != 0 {
		t.Fatalf("a collected push hash came back: %d, %v", n, err)
	}
}
