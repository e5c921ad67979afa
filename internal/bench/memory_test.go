package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Captured from redis-server 7.0 (INFO memory and INFO keyspace), shortened.
const infoMemory = "# Memory\r\n" +
	"used_memory:144595824\r\n" +
	"used_memory_human:137.90M\r\n" +
	"used_memory_rss:205103104\r\n" +
	"used_memory_peak:180210904\r\n" +
	"used_memory_overhead:2958608\r\n" +
	"used_memory_startup:876176\r\n" +
	"used_memory_dataset:141637216\r\n" +
	"used_memory_dataset_perc:98.55%\r\n"

func TestParseInfoMemory(t *testing.T) {
	m, err := ParseInfoMemory(infoMemory)
	if err != nil {
		t.Fatal(err)
	}
	if m.UsedMemory != 144595824 || m.Dataset != 141637216 {
		t.Fatalf("got %+v", m)
	}
	// used_memory_dataset is optional; used_memory is not. Fields must
	// match whole: used_memory_rss is not used_memory.
	m, err = ParseInfoMemory("# Memory\r\nused_memory_rss:5\r\nused_memory:7\r\n")
	if err != nil || m.UsedMemory != 7 || m.Dataset != -1 {
		t.Fatalf("without dataset: %+v %v", m, err)
	}
	for _, bad := range []string{"", "# Memory\r\nused_memory_rss:5\r\n", "used_memory:lots\r\n"} {
		if _, err := ParseInfoMemory(bad); err == nil {
			t.Errorf("ParseInfoMemory(%q) succeeded", bad)
		}
	}
}

func TestParseKeyspaceKeys(t *testing.T) {
	for _, tc := range []struct {
		info string
		want int64
	}{
		{"# Keyspace\r\ndb0:keys=14288,expires=14288,avg_ttl=78676291\r\n", 14288},
		{"# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=9\r\n", 7},
		{"# Keyspace\r\n", 0}, // an empty Redis lists no database
	} {
		if got, err := ParseKeyspaceKeys(tc.info); err != nil || got != tc.want {
			t.Errorf("ParseKeyspaceKeys(%q) = %d, %v; want %d", tc.info, got, err, tc.want)
		}
	}
	for _, bad := range []string{"db0:keys=x,expires=0\r\n", "db0:expires=0\r\n"} {
		if _, err := ParseKeyspaceKeys(bad); err == nil {
			t.Errorf("ParseKeyspaceKeys(%q) succeeded", bad)
		}
	}
}

func TestPprofBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:6060":                "http://127.0.0.1:6060",
		"http://127.0.0.1:6060/":               "http://127.0.0.1:6060",
		"http://127.0.0.1:6060/debug/pprof":    "http://127.0.0.1:6060",
		"http://127.0.0.1:6060/debug/pprof/":   "http://127.0.0.1:6060",
		"https://host.test/prefix/debug/pprof": "https://host.test/prefix",
	} {
		if got, err := pprofBase(in); err != nil || got != want {
			t.Errorf("pprofBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:6060", "ftp://h:1", "http://", "::"} {
		if _, err := pprofBase(bad); err == nil {
			t.Errorf("pprofBase(%q) accepted", bad)
		}
	}
}

func TestHeapArithmetic(t *testing.T) {
	if got := perUnit(1000, 11000, 10); got != 1000 {
		t.Errorf("perUnit = %v, want 1000", got)
	}
	if got := perUnit(5000, 4000, 4); got != -250 {
		t.Errorf("a heap that shrank: perUnit = %v, want -250", got)
	}
	if !math.IsNaN(perUnit(0, 1, 0)) {
		t.Error("perUnit of nothing made is not NaN (which the report leaves out)")
	}

	before := heapReading{alloc: 10 << 20, inuse: 12 << 20, rss: math.NaN(), active: 3,
		redis: RedisMemory{UsedMemory: 1000, Dataset: 400, Keys: 10}}
	after := heapReading{alloc: 20 << 20, inuse: 30 << 20, rss: math.NaN(), active: 10003,
		redis: RedisMemory{UsedMemory: 21000, Dataset: -1, Keys: 11010}}
	d := heapDelta(before, after)
	if !d.ok || d.alloc != 10<<20 || d.inuse != 18<<20 || d.active != 10000 || !math.IsNaN(d.rss) {
		t.Fatalf("delta %+v", d)
	}
	if !d.redisOK || d.redis.UsedMemory != 20000 || d.redis.Keys != 11000 || d.datasetOK {
		t.Fatalf("redis delta %+v (dataset ok %v)", d.redis, d.datasetOK)
	}
	after.err = errFrame
	if d := heapDelta(before, after); d.ok || readingErr(before, after) == nil {
		t.Fatal("a failed reading gave heap figures")
	}
	if d := heapDelta(heapReading{}, heapReading{}); d.redisOK {
		t.Fatal("no Redis readings gave Redis figures")
	}

	// A reading whose collections failed is noted; one without -pprof is
	// not (the run notes that once).
	r := &Report{}
	noteUngced(r, "x", heapReading{gced: true}, heapReading{gcErr: errNoPprof})
	if len(r.Notes) != 0 {
		t.Fatalf("notes %q", r.Notes)
	}
	noteUngced(r, "x", heapReading{gced: true}, heapReading{gcErr: errFrame}, heapReading{gcErr: errFrame})
	if len(r.Notes) != 1 {
		t.Fatalf("notes %q", r.Notes)
	}
}

func TestInvitePlans(t *testing.T) {
	for _, tc := range []struct{ n, perUser int }{{10000, 50}, {10001, 50}, {7, 3}, {5, 50}, {1, 1}, {100, 100}} {
		p := spreadPlan(tc.n, tc.perUser)
		out, in := map[int]int{}, map[int]int{}
		pairs := map[[2]int]int{}
		for k := range p.n {
			i, j := p.pair(k)
			if i < 0 || i >= p.inviters || j < 0 || j >= p.invitees {
				t.Fatalf("%+v: invitation %d → (%d, %d) out of range", p, k, i, j)
			}
			out[i]++
			in[j]++
			pairs[[2]int{i, j}]++
		}
		for i, c := range out {
			if c > tc.perUser {
				t.Errorf("%+v: inviter %d makes %d, more than %d", p, i, c, tc.perUser)
			}
		}
		for j, c := range in {
			if c > tc.perUser {
				t.Errorf("%+v: invitee %d is in %d, more than %d", p, j, c, tc.perUser)
			}
		}
		if tc.perUser <= p.invitees {
			for pr, c := range pairs {
				if c > 1 {
					t.Errorf("%+v: inviter %d invites %d %d times", p, pr[0], pr[1], c)
				}
			}
		}
		if p.inviters != ceilDiv(tc.n, tc.perUser) {
			t.Errorf("%+v: %d inviters, want %d", p, p.inviters, ceilDiv(tc.n, tc.perUser))
		}
	}

	f := floodPlan(5000, 50)
	if f.inviters != 100 || f.invitees != 5000 {
		t.Fatalf("flood plan %+v", f)
	}
	seen := map[int]bool{}
	perInviter := map[int]int{}
	for k := range f.n {
		i, j := f.pair(k)
		if seen[j] {
			t.Fatalf("flood invitee %d invited twice", j)
		}
		seen[j] = true
		perInviter[i]++
	}
	for i, c := range perInviter {
		if c > 50 {
			t.Errorf("flood inviter %d makes %d", i, c)
		}
	}
	if p := spreadPlan(0, 50); p.inviters != 0 {
		t.Errorf("no invitations, %d inviters", p.inviters)
	}
}

func TestKeptBytes(t *testing.T) {
	for _, tc := range []struct {
		sizes           []int
		keep, keepBytes int
		want            int64
	}{
		{nil, 100, 1000, 0},
		{[]int{100, 200}, 100, 1000, 300},
		{[]int{100, 200, 300, 400}, 2, 1 << 20, 700},     // the count bound drops the oldest
		{[]int{100, 200, 300, 400}, 100, 750, 700},       // the byte bound drops the oldest
		{[]int{100, 2000}, 100, 1000, 2000},              // the newest stays, whatever its size
		{[]int{12500, 150}, 100, 256 << 10, 12650},       // a flood invitee: ring and timeout
		{[]int{150, 150, 150, 150}, 100, 256 << 10, 600}, // an inviter's timeouts
	} {
		if got := keptBytes(tc.sizes, tc.keep, tc.keepBytes); got != tc.want {
			t.Errorf("keptBytes(%v, %d, %d) = %d, want %d", tc.sizes, tc.keep, tc.keepBytes, got, tc.want)
		}
	}
}

func TestCalibrationEstimates(t *testing.T) {
	cal := &calibration{invitee: "p-calee", inviter: "p-calor", ring: map[int]int{32: 300}, timeoutInvitee: 120, timeoutInviter: 121}
	// Longer user names make longer frames, by the names' difference.
	if got := cal.ringSize(32, "p-fi10", "p-fu1234"); got != 300-7-7+6+8 {
		t.Errorf("ringSize = %d", got)
	}
	if got := cal.ringSize(1024, "a", "b"); got != 0 {
		t.Errorf("an uncalibrated size gave %d", got)
	}
	if a, b := cal.timeoutSizes("p-fu1234"); a != 121 || b != 122 {
		t.Errorf("timeoutSizes = %d, %d", a, b)
	}
	if a, b := (&calibration{}).timeoutSizes("x"); a != 0 || b != 0 {
		t.Errorf("uncalibrated timeouts = %d, %d", a, b)
	}

	inviter := &Conn{User: "p-calor"} // same lengths as the calibration's: no adjustment
	b := &batch{byInviter: [][]made{
		{{conn: inviter, id: "a", invitee: "p-calee"}, {conn: inviter, id: "b", invitee: "p-calex"}},
		{{conn: inviter, id: "c", invitee: "p-calee"}},
	}}
	if got := pendingKept(cal, b, 32); got != 900 {
		t.Errorf("pendingKept = %d, want 900", got)
	}
	if got := pendingKept(nil, b, 32); got != 0 {
		t.Errorf("pendingKept without calibration = %d", got)
	}
	cal.cancelInvitee = 110
	if got := cal.cancelSize("p-fi10"); got != 110-7+6 {
		t.Errorf("cancelSize = %d", got)
	}
	// Each invitee keeps its rings, then its cancels; each inviter its cancels.
	if got := cancelledKept(cal, b, 32); got != 3*(300+110)+3*110 {
		t.Errorf("cancelledKept = %d, want %d", got, 3*(300+110)+3*110)
	}
	if got := cancelledKept(cal, b, 1024); got != 0 {
		t.Errorf("cancelledKept of an uncalibrated size = %d", got)
	}
	cal.ring[12288] = 12500
	toInvitees, toInviters := floodKept(cal, b, 12288)
	if toInvitees != 3*(12500+120) || toInviters != 2*121+121 {
		t.Errorf("floodKept = %d, %d", toInvitees, toInviters)
	}
	cal.timeoutInviter = 0
	if a, b := floodKept(cal, b, 12288); a != 0 || b != 0 {
		t.Errorf("floodKept without the inviter's timeout = %d, %d", a, b)
	}
}

func TestPaddedDataAndFrameSize(t *testing.T) {
	for _, n := range []int{0, 1, 27, 28, 32, 1024, 12288} {
		if got := len(paddedData(n)); got != n {
			t.Errorf("len(paddedData(%d)) = %d", n, got)
		}
	}
	if !strings.HasPrefix(paddedData(32), `{"cmd":"videoCall"`) {
		t.Errorf("paddedData(32) = %q", paddedData(32))
	}
	b := []byte(`{"event":"onInvitationTimeout","inviteID":"X","inviteeList":["u"],"eventID":"1-2"}`)
	var f Frame
	if err := ParseFrame(b, &f); err != nil || f.Size != len(b) {
		t.Fatalf("Size = %d, %v; want %d", f.Size, err, len(b))
	}
}

func TestParseLoadAvg(t *testing.T) {
	if got := parseLoadAvg("1.31 1.64 1.65 2/121 13459\n"); got != 1.31 {
		t.Errorf("got %v", got)
	}
	for _, bad := range []string{"", "x 1 2"} {
		if got := parseLoadAvg(bad); got != -1 {
			t.Errorf("parseLoadAvg(%q) = %v", bad, got)
		}
	}
}

func TestMemoryConfig(t *testing.T) {
	ok := DefaultConfig()
	ok.Scenario = ScenarioMemory
	ok.PprofURL = "http://127.0.0.1:6060"
	if err := ok.Normalize(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if ok.Pending != 10000 || ok.Flood != 5000 || ok.FloodDataSize != 12288 || len(ok.PendingDataSizes) != 2 {
		t.Errorf("defaults %+v", ok)
	}
	for name, mod := range map[string]func(*Config){
		"nothing to do":    func(c *Config) { c.Pending, c.Flood = 0, 0 },
		"no sizes":         func(c *Config) { c.PendingDataSizes = nil },
		"data too large":   func(c *Config) { c.PendingDataSizes = []int{20000} },
		"flood too large":  func(c *Config) { c.FloodDataSize = 12289 },
		"per user":         func(c *Config) { c.PerUser = 0 },
		"short timeout":    func(c *Config) { c.PendingTimeout = 5 },
		"no flood wait":    func(c *Config) { c.FloodWait = 0 },
		"metrics off":      func(c *Config) { c.MetricsURL = "off" },
		"bad pprof":        func(c *Config) { c.PprofURL = "127.0.0.1:6060" },
		"negative pending": func(c *Config) { c.Pending = -1 },
	} {
		c := DefaultConfig()
		c.Scenario = ScenarioMemory
		mod(&c)
		if err := c.Normalize(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := DefaultConfig()
	c.Scenario, c.PendingTimeout, c.FloodWait = ScenarioMemory, 0, time.Second
	if err := c.Normalize(); err != nil {
		t.Errorf("timeout 0 (no deadline): %v", err)
	}
}
