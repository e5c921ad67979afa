package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaultsAndDerivedURLs(t *testing.T) {
	o, err := parseFlags([]string{"-url", "ws://127.0.0.1:18080/v1/ws"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Scenario != "calls" || c.Inflight != 8 || c.SrcAddrs != 8 || c.GroupSize != 200 || c.MaxErrorPct != 1 {
		t.Errorf("defaults: %+v", c)
	}
	if c.AdminURL != "http://127.0.0.1:18080" || c.MetricsURL != "http://127.0.0.1:18080/metrics" {
		t.Errorf("derived admin %q metrics %q", c.AdminURL, c.MetricsURL)
	}
	if c.Secret != "signald-dev-secret" || c.AdminToken != "signald-dev-admin-token" {
		t.Errorf("dev credentials: %q %q", c.Secret, c.AdminToken)
	}
	if !strings.HasPrefix(c.Prefix, "bench") || len(c.Prefix) < 8 {
		t.Errorf("random prefix %q", c.Prefix)
	}
	o2, _ := parseFlags(nil, &bytes.Buffer{})
	if o2.cfg.Prefix == c.Prefix {
		t.Errorf("two runs got the same prefix %q", c.Prefix)
	}

	o, err = parseFlags([]string{"-url", "wss://example.test:9443/v1/ws", "-metrics-url", "off", "-prefix", "p",
		"-scenario", "group", "-json", "out.json", "-quiet"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.AdminURL != "https://example.test:9443" || o.cfg.MetricsURL != "off" || o.cfg.Prefix != "p" ||
		o.jsonPath != "out.json" || !o.quiet {
		t.Errorf("explicit flags: %+v json %q quiet %v", o.cfg, o.jsonPath, o.quiet)
	}
}

func TestParseFlagsGap(t *testing.T) {
	o, err := parseFlags([]string{"-scenario", "gap", "-redis", "127.0.0.1:6379", "-kills", "2", "-kill-interval", "5s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Conns != 10000 || c.Kills != 2 || c.KillInterval != 5*time.Second || c.RedisAddr != "127.0.0.1:6379" {
		t.Errorf("gap: conns %d kills %d interval %v redis %q", c.Conns, c.Kills, c.KillInterval, c.RedisAddr)
	}
	o, err = parseFlags([]string{"-scenario", "gap", "-redis", "127.0.0.1:6379", "-conns", "500"}, &bytes.Buffer{})
	if err != nil || o.cfg.Conns != 500 {
		t.Errorf("-conns 500: %d, %v", o.cfg.Conns, err)
	}
	if o, _ := parseFlags([]string{"-scenario", "idle"}, &bytes.Buffer{}); o.cfg.Conns != 1000 {
		t.Errorf("idle's default -conns became %d", o.cfg.Conns)
	}
}

func TestParseFlagsMemory(t *testing.T) {
	o, err := parseFlags([]string{"-scenario", "memory", "-pprof", "http://127.0.0.1:6060"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Pending != 10000 || c.Flood != 5000 || c.FloodDataSize != 12288 || c.PerUser != 50 || c.PendingTimeout != 3600 ||
		len(c.PendingDataSizes) != 2 || c.PendingDataSizes[0] != 32 || c.PendingDataSizes[1] != 1024 || c.RedisPrefix != "signald:" {
		t.Errorf("memory defaults: %+v", c)
	}
	o, err = parseFlags([]string{"-scenario", "memory", "-pending", "500", "-pending-data-sizes", "64, 2048,4096",
		"-flood", "0", "-per-user", "10", "-pending-timeout", "0", "-redis", "127.0.0.1:6379", "-redis-prefix", "bench:"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Pending != 500 || len(c.PendingDataSizes) != 3 || c.PendingDataSizes[2] != 4096 || c.Flood != 0 ||
		c.PerUser != 10 || c.PendingTimeout != 0 || c.RedisPrefix != "bench:" || c.PprofURL != "" {
		t.Errorf("memory flags: %+v", c)
	}
}

func TestParseFlagsInvites(t *testing.T) {
	o, err := parseFlags([]string{"-scenario", "invites"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// Issue #11's shape unless told otherwise.
	if c := o.cfg; c.Callees != 2000 || c.Callers != 8 || c.PerCaller != 1 || c.Warmup != 3*time.Second ||
		c.Duration != 10*time.Second || c.InviteTimeout != 60 || !c.CancelDelivered || c.Rate != 0 {
		t.Errorf("invites defaults: %+v", c)
	}
	o, err = parseFlags([]string{"-scenario", "invites", "-callees", "100", "-callers", "4", "-per-caller", "2",
		"-warmup", "0s", "-invite-timeout", "30", "-cancel-delivered=false", "-rate", "2500"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Callees != 100 || c.Callers != 4 || c.PerCaller != 2 || c.Warmup != 0 || c.InviteTimeout != 30 ||
		c.CancelDelivered || c.Rate != 2500 {
		t.Errorf("invites flags: %+v", c)
	}
	// The calls scenario keeps its own defaults.
	if o, _ := parseFlags(nil, &bytes.Buffer{}); o.cfg.Warmup != time.Second || o.cfg.InviteTimeout != 30 {
		t.Errorf("calls: warmup %v, invite timeout %d", o.cfg.Warmup, o.cfg.InviteTimeout)
	}
}

func TestParseFlagsRejectsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "storm"},
		{"-url", "http://127.0.0.1:1/v1/ws"},
		{"-reject-pct", "60", "-cancel-pct", "50"},
		{"-timeout-pct", "-1"},
		{"-inflight", "0"},
		{"-scenario", "idle", "-conns", "0"},
		{"-scenario", "group", "-rounds", "0"},
		{"-scenario", "gap"}, // no -redis
		{"-scenario", "gap", "-redis", "127.0.0.1:1", "-kills", "0"},
		{"-scenario", "gap", "-redis", "127.0.0.1:1", "-conns", "10", "-pairs", "6"},
		{"-invite-timeout", "1"},
		{"-data-size", "20000"},
		{"-scenario", "memory", "-pending-data-sizes", "32,x"},
		{"-scenario", "memory", "-pending", "0", "-flood", "0"},
		{"-scenario", "memory", "-per-user", "0"},
		{"-scenario", "memory", "-pending-timeout", "10"},
		{"-scenario", "memory", "-flood-data-size", "12289"},
		{"-scenario", "memory", "-pprof", "127.0.0.1:6060"},
		{"-scenario", "memory", "-metrics-url", "off"},
		{"-scenario", "invites", "-callees", "10", "-callers", "4", "-per-caller", "3"},
		{"-scenario", "invites", "-callers", "0"},
		{"-scenario", "invites", "-per-caller", "0"},
		{"-scenario", "invites", "-other-url", "ws://127.0.0.1:2/v1/ws"},
		{"-scenario", "invites", "-rate", "-5"},
		{"stray"},
		{"-no-such-flag"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestHelpDocumentsEveryScenario(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"idle", "calls", "group", "gap", "memory", "invites", "-callees", "-callers", "-per-caller",
		"-cancel-delivered", "--max-active-invitations", "--invite-rate", "CLIENT KILL TYPE pubsub", "-kills", "-kill-interval", "-src-addrs", "-inflight", "-redis", "-max-error-pct", "-json",
		"-pprof", "-pending", "-pending-data-sizes", "-flood", "-flood-wait", "-per-user", "-redis-prefix", "--retention"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if code := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Errorf("run -h = %d", code)
	}
	if code := run(context.Background(), []string{"-scenario", "x"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("run with a bad flag = %d, want 2", code)
	}
}

// TestRunFailsWithoutServer points the bench at a loopback port nobody
// listens on (1, which no test binds: a port just freed may be taken by
// another test meanwhile): the run must end quickly with status 1, not
// run its 30 s or wait out its 30 s op timeout.
func TestRunFailsWithoutServer(t *testing.T) {
	addr := "127.0.0.1:1"
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"-url", "ws://" + addr + "/v1/ws", "-pairs", "2", "-quiet",
		"-metrics-url", "off", "-duration", "30s", "-op-timeout", "30s"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(stdout.String()+stderr.String(), "connection refused") {
		t.Errorf("the report does not say why:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
