package client

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5, Policy: 10 * time.Second}.withDefaults()
	for _, tc := range []struct {
		name      string
		failures  int
		closeCode int
		r         float64
		want      time.Duration
	}{
		{"first, no jitter drawn", 0, -1, 0, 100 * time.Millisecond},
		{"first, most jitter", 0, -1, 0.999999, 50 * time.Millisecond},
		{"doubling", 2, -1, 0, 400 * time.Millisecond},
		{"capped at Max", 5, -1, 0, time.Second},
		{"no overflow", 200, -1, 0, time.Second},
		{"1012: a random part of Initial", 0, closeServiceRestart, 0.25, 25 * time.Millisecond},
		{"1012, then as usual", 1, closeServiceRestart, 0, 200 * time.Millisecond},
		{"1008: at least Policy", 0, closePolicyViolation, 0, 10 * time.Second},
		{"1008: at least 3/4 of Policy", 0, closePolicyViolation, 0.999999, 7500 * time.Millisecond},
	} {
		got := b.delay(tc.failures, tc.closeCode, tc.r)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: delay(%d, %d, %v) = %v, want %v", tc.name, tc.failures, tc.closeCode, tc.r, got, tc.want)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	b := Backoff{}.withDefaults()
	if b.Initial != 500*time.Millisecond || b.Max != 30*time.Second || b.Jitter != 0.5 || b.Policy != 10*time.Second {
		t.Fatalf("defaults %+v", b)
	}
	if b := (Backoff{Jitter: -1}).withDefaults(); b.Jitter != 0 {
		t.Fatalf("negative jitter: %+v", b)
	}
}

func TestInviteOptionsTimeout(t *testing.T) {
	for _, tc := range []struct {
		o    InviteOptions
		want any
	}{
		{InviteOptions{}, nil},
		{InviteOptions{Timeout: 30 * time.Second}, int64(30)},
		{InviteOptions{Timeout: 1500 * time.Millisecond}, int64(2)},
		{InviteOptions{Timeout: -500 * time.Millisecond}, int64(-1)},
		{InviteOptions{NoTimeout: true, Timeout: time.Second}, 0},
	} {
		p := map[string]any{}
		tc.o.add(p)
		if p["timeout"] != tc.want {
			t.Errorf("%+v: timeout %v (%T), want %v", tc.o, p["timeout"], p["timeout"], tc.want)
		}
	}
}
