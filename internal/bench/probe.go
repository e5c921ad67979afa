package bench

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
)

// probe takes the before and after readings of a measured window: the
// server's /metrics, Redis's INFO, this process's CPU and the machine's.
// Every reading is best effort: a failed scrape becomes a note in the
// report, never a failed run.
type probe struct {
	cfg *Config
	hc  *http.Client
	rdb *redis.Client

	// Redis commands per second while the bench sends nothing (signald's
	// timeout poller runs all the time); negative when not measured.
	bgRate, bgScriptRate float64
}

// snapshot is one reading.
type snapshot struct {
	at         time.Time
	metrics    Metrics
	metricsErr error
	redis      RedisSnapshot
	redisErr   error
	self       time.Duration
	machine    MachineCPU
	loadAvg    float64 // 1-minute load average; -1 when unknown
}

func newProbe(cfg *Config) *probe {
	p := &probe{cfg: cfg, hc: &http.Client{Transport: newTransport(nil), Timeout: 5 * time.Second}, bgRate: -1, bgScriptRate: -1}
	if cfg.RedisAddr != "" {
		p.rdb = redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, MaxRetries: 1, PoolSize: 1,
			DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	}
	return p
}

func (p *probe) close() {
	p.hc.CloseIdleConnections()
	if p.rdb != nil {
		_ = p.rdb.Close()
	}
}

// take reads everything now.
func (p *probe) take(ctx context.Context) snapshot {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s := snapshot{at: time.Now(), self: SelfCPU(), machine: ReadMachineCPU(), loadAvg: ReadLoadAvg()}
	if p.cfg.metricsEnabled() {
		s.metrics, s.metricsErr = ScrapeMetrics(ctx, p.hc, p.cfg.MetricsURL)
	} else {
		s.metricsErr = fmt.Errorf("scraping is off")
	}
	if p.rdb != nil {
		s.redis, s.redisErr = SnapshotRedis(ctx, p.rdb)
	}
	return s
}

// redisBaseline measures Redis's command rate while the bench is idle, so
// that the per-setup figures can be corrected for signald's background
// work. It waits cfg.RedisBaseline (or less, if ctx ends).
func (p *probe) redisBaseline(ctx context.Context) {
	if p.rdb == nil || p.cfg.RedisBaseline <= 0 {
		return
	}
	a, err := SnapshotRedis(ctx, p.rdb)
	if err != nil {
		return
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return
	case <-time.After(p.cfg.RedisBaseline):
	}
	b, err := SnapshotRedis(ctx, p.rdb)
	if err != nil {
		return
	}
	d, secs := b.Sub(a), time.Since(start).Seconds()
	p.bgRate, p.bgScriptRate = float64(d.Calls)/secs, float64(d.ScriptCalls())/secs
}

// unit is a count of work done in the window, to divide costs by.
type unit struct {
	name string // singular: "setup", "delivery", "connection"
	n    float64
}

// costs fills the server, Redis and bench sections from two readings and
// the work done between them.
func (p *probe) costs(r *Report, before, after snapshot, units []unit) {
	window := after.at.Sub(before.at).Seconds()
	if window <= 0 {
		return
	}
	p.serverCosts(r, before, after, window, units)
	p.redisCosts(r, before, after, window, units)

	b := r.section("bench tool (this process)")
	self := (after.self - before.self).Seconds()
	b.add("cpu_seconds", "CPU used", self, "s")
	b.add("cpu_pct_of_core", "CPU, share of one core", 100*self/window, "%")
	for _, u := range units {
		if u.n > 0 {
			b.add("cpu_us_per_"+u.name, "CPU per "+u.name, 1e6*self/u.n, "µs")
		}
	}
	if sc, ok := cpuDelta(before, after); ok && sc > 0 {
		b.add("cpu_ratio_to_server", "CPU relative to the server's", self/sc, "x")
	}
	if busy := after.machine.BusyPct(before.machine); busy >= 0 {
		b.add("machine_busy_pct", "machine CPU busy (all processes)", busy, "%")
	}
	if before.loadAvg >= 0 && after.loadAvg >= 0 {
		b.add("loadavg_start", "load average (1 min) at the window's start", before.loadAvg, "")
		b.add("loadavg_end", "load average (1 min) at the window's end", after.loadAvg, "")
	}
	b.add("machine_cpus", "CPUs on this machine", float64(runtime.NumCPU()), "")
}

// cpuCost is the CPU the server and Redis used between two readings.
type cpuCost struct {
	server, redis       float64 // seconds
	hasServer, hasRedis bool
}

// cpuBetween reads the server's CPU (process_cpu_seconds_total) and
// Redis's (INFO cpu) deltas from two readings.
func cpuBetween(before, after snapshot) cpuCost {
	var c cpuCost
	c.server, c.hasServer = cpuDelta(before, after)
	if before.redisErr == nil && after.redisErr == nil {
		d := after.redis.Sub(before.redis)
		c.redis, c.hasRedis = d.CPUSeconds, d.HasCPU
	}
	return c
}

// perThousand adds the section "cpu per 1,000 <plural>": the server's
// CPU seconds, Redis's and both together, per 1,000 units of work. The
// together figure needs both (with -redis); without -redis it is the
// server's alone, as there is no Redis.
func (p *probe) perThousand(r *Report, c cpuCost, plural string, n float64) {
	if n <= 0 {
		return
	}
	s := r.section("cpu per 1,000 " + plural)
	k := 1000 / n
	if c.hasServer {
		s.add("server_cpu_s_per_1k", "server CPU seconds per 1,000 "+plural, c.server*k, "s")
	}
	if p.rdb == nil {
		return
	}
	if !c.hasRedis {
		r.note("Redis's INFO cpu could not be read: no Redis CPU per 1,000 %s", plural)
		return
	}
	s.add("redis_cpu_s_per_1k", "Redis CPU seconds per 1,000 "+plural+" (INFO cpu)", c.redis*k, "s")
	if c.hasServer {
		s.add("server_redis_cpu_s_per_1k", "server + Redis CPU seconds per 1,000 "+plural, (c.server+c.redis)*k, "s")
	}
}

func cpuDelta(before, after snapshot) (float64, bool) {
	if before.metricsErr != nil || after.metricsErr != nil {
		return 0, false
	}
	b, ok1 := before.metrics.Value("process_cpu_seconds_total")
	a, ok2 := after.metrics.Value("process_cpu_seconds_total")
	return a - b, ok1 && ok2
}

func (p *probe) serverCosts(r *Report, before, after snapshot, window float64, units []unit) {
	if err := after.metricsErr; err != nil || before.metricsErr != nil {
		if err == nil {
			err = before.metricsErr
		}
		r.note("no server figures: /metrics: %v", err)
		return
	}
	s := r.section("server (from /metrics)")
	if cpu, ok := cpuDelta(before, after); ok {
		s.add("cpu_seconds", "CPU used", cpu, "s")
		s.add("cpu_pct_of_core", "CPU, share of one core", 100*cpu/window, "%")
		for _, u := range units {
			if u.n > 0 {
				s.add("cpu_us_per_"+u.name, "CPU per "+u.name, 1e6*cpu/u.n, "µs")
			}
		}
	} else {
		r.note("the server exports no process_cpu_seconds_total (no process collector): no server CPU figures")
	}
	beforeAfter := func(metric, key, label string, scale float64, unitName string) {
		b, ok1 := before.metrics.Value(metric)
		a, ok2 := after.metrics.Value(metric)
		if ok1 && ok2 {
			s.add(key+"_before", label+" before", b/scale, unitName)
			s.add(key+"_after", label+" after", a/scale, unitName)
		}
	}
	beforeAfter("process_resident_memory_bytes", "rss_mib", "RSS", 1<<20, "MiB")
	beforeAfter("go_memstats_heap_inuse_bytes", "heap_inuse_mib", "Go heap in use", 1<<20, "MiB")
	beforeAfter("go_goroutines", "goroutines", "goroutines", 1, "")
	beforeAfter("signald_connections", "connections", "connections (signald_connections)", 1, "")
}

func (p *probe) redisCosts(r *Report, before, after snapshot, window float64, units []unit) {
	if p.rdb == nil {
		return
	}
	if err := after.redisErr; err != nil || before.redisErr != nil {
		if err == nil {
			err = before.redisErr
		}
		r.note("no Redis figures: %v", err)
		return
	}
	d := after.redis.Sub(before.redis)
	s := r.section("redis (INFO commandstats, measured window)")
	s.add("commands", "commands executed (without the bench's INFO)", float64(d.Calls), "")
	s.add("total_commands_processed", "total_commands_processed delta", float64(d.Total), "")
	s.add("script_calls", "script calls (eval/evalsha/fcall)", float64(d.ScriptCalls()), "")
	s.add("commands_per_s", "commands per second", float64(d.Calls)/window, "/s")
	var usec int64
	for _, c := range d.Commands {
		usec += c.Usec
	}
	s.add("busy_pct", "Redis busy executing commands", 100*float64(usec)/1e6/window, "%")
	if d.HasCPU {
		s.add("cpu_seconds", "Redis CPU used (INFO cpu: used_cpu_sys + used_cpu_user)", d.CPUSeconds, "s")
		s.add("cpu_pct_of_core", "Redis CPU, share of one core", 100*d.CPUSeconds/window, "%")
		for _, u := range units {
			if u.n > 0 {
				s.add("cpu_us_per_"+u.name, "Redis CPU per "+u.name, 1e6*d.CPUSeconds/u.n, "µs")
			}
		}
	}
	for i, u := range units {
		if u.n <= 0 {
			continue
		}
		s.add("script_calls_per_"+u.name, "script calls per "+u.name+" (≈ round trips)", float64(d.ScriptCalls())/u.n, "")
		s.add("commands_per_"+u.name, "commands per "+u.name+" (inside scripts included)", float64(d.Calls)/u.n, "")
		if p.bgRate >= 0 && i == 0 {
			netScripts := float64(d.ScriptCalls()) - p.bgScriptRate*window
			s.add("script_calls_per_"+u.name+"_net", "script calls per "+u.name+", background subtracted", netScripts/u.n, "")
			net := float64(d.Calls) - p.bgRate*window
			s.add("commands_per_"+u.name+"_net", "commands per "+u.name+", background subtracted", net/u.n, "")
		}
	}
	if p.bgRate >= 0 {
		s.add("background_commands_per_s", "background commands per second (idle, before the run)", p.bgRate, "/s")
	}
	r.RedisTop = d.Top(10)
	r.note("%s", "Redis round trips per "+units[0].name+" cannot be counted from the client side. They are approximated "+
		"by the script calls (eval/evalsha/fcall) Redis counted in INFO commandstats between the two readings: signald "+
		"makes every invitation state change one Lua script, so each is one round trip; plain commands signald sends "+
		"outside scripts are not in that figure. \"Commands\" counts every command Redis executed, those run inside "+
		"the scripts included (Redis counts both in commandstats and total_commands_processed), so it measures Redis's "+
		"work, not round trips. All counts cover every client of this Redis in the window (signald's timeout poller "+
		"too; \"background subtracted\" removes the rate measured while idle before the run) without the bench's own INFO.")
}
