package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// heapReading is the server's memory at one instant: its Go heap, read from
// /metrics right after garbage collections forced through its pprof
// endpoint (so that garbage not yet collected does not count), and with
// -redis Redis's own memory.
type heapReading struct {
	at       time.Time
	gced     bool    // the collections were forced (-pprof given and answering)
	gcErr    error   // why they were not
	alloc    float64 // go_memstats_heap_alloc_bytes: the live objects, after a GC
	inuse    float64 // go_memstats_heap_inuse_bytes: the spans holding them
	rss      float64 // process_resident_memory_bytes; NaN when not exported
	active   float64 // signald_active_invitations; NaN when not exported
	err      error   // /metrics could not be read or lacks the heap: no heap figures
	redis    RedisMemory
	redisErr error // no Redis figures (none asked for: nil, and redis is zero)
}

// errNoPprof: the heap is read without forced collections, -pprof unset.
var errNoPprof = errors.New("no -pprof")

// heapGCs is how many collections are forced before a reading: the second
// frees what writing the first one's heap profile allocated.
const heapGCs = 2

// pprofBase turns the -pprof flag (http://host:port, optionally with
// /debug/pprof) into the base URL the profile paths are appended to.
func pprofBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("-pprof %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-pprof %q: want http://host:port (signald's --pprof-addr)", raw)
	}
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/debug/pprof")
	return u.Scheme + "://" + u.Host + path, nil
}

// forceGC makes the server collect its garbage heapGCs times: GET
// /debug/pprof/heap?gc=1 runs runtime.GC (a full collection, sweep
// included) before writing the profile.
func forceGC(ctx context.Context, hc *http.Client, base string) error {
	for range heapGCs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s/debug/pprof/heap?gc=1: %s", base, resp.Status)
		}
	}
	return nil
}

// readHeap takes one heapReading: collections, then /metrics, then Redis.
func (p *probe) readHeap(ctx context.Context) heapReading {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	h := heapReading{rss: math.NaN(), active: math.NaN()}
	if p.cfg.PprofURL == "" {
		h.gcErr = errNoPprof
	} else if base, err := pprofBase(p.cfg.PprofURL); err != nil {
		h.gcErr = err
	} else if h.gcErr = forceGC(ctx, &http.Client{Transport: p.hc.Transport, Timeout: 30 * time.Second}, base); h.gcErr == nil {
		h.gced = true
	}
	h.at = time.Now()
	m, err := ScrapeMetrics(ctx, p.hc, p.cfg.MetricsURL)
	if err != nil {
		h.err = err
	} else {
		var ok1, ok2 bool
		h.alloc, ok1 = m.Value("go_memstats_heap_alloc_bytes")
		h.inuse, ok2 = m.Value("go_memstats_heap_inuse_bytes")
		if !ok1 || !ok2 {
			h.err = fmt.Errorf("/metrics has no go_memstats_heap_alloc_bytes or go_memstats_heap_inuse_bytes (no Go collector)")
		}
		if v, ok := m.Value("process_resident_memory_bytes"); ok {
			h.rss = v
		}
		if v, ok := m.Value(activeInvitationsMetric); ok {
			h.active = v
		}
	}
	if p.rdb != nil {
		h.redis, h.redisErr = SnapshotRedisMemory(ctx, p.rdb)
	}
	return h
}

// activeInvitationsMetric is the server's gauge of invitations with an
// invitee still pending, made or ended on this instance.
const activeInvitationsMetric = "signald_active_invitations"

// perUnit is (after - before) / n: NaN when n is not positive, which
// Section.add leaves out.
func perUnit(before, after float64, n int64) float64 {
	if n <= 0 {
		return math.NaN()
	}
	return (after - before) / float64(n)
}

// memDelta is what changed between two heap readings; ok is false when
// either has no heap figures (or, for Redis, no Redis figures).
type memDelta struct {
	alloc, inuse, rss, active float64
	ok                        bool
	redis                     RedisMemory // UsedMemory, Dataset and Keys differences
	redisOK                   bool
	datasetOK                 bool // both readings had used_memory_dataset
}

func heapDelta(before, after heapReading) memDelta {
	d := memDelta{ok: before.err == nil && after.err == nil}
	if d.ok {
		d.alloc, d.inuse = after.alloc-before.alloc, after.inuse-before.inuse
		d.rss, d.active = after.rss-before.rss, after.active-before.active // NaN when not exported
	}
	if before.redisErr == nil && after.redisErr == nil && before.redis.UsedMemory > 0 {
		d.redisOK = true
		d.redis = RedisMemory{
			UsedMemory: after.redis.UsedMemory - before.redis.UsedMemory,
			Dataset:    after.redis.Dataset - before.redis.Dataset,
			Keys:       after.redis.Keys - before.redis.Keys,
		}
		d.datasetOK = before.redis.Dataset >= 0 && after.redis.Dataset >= 0
	}
	return d
}

// readingErr says why a pair of readings has no heap figures, or nil.
func readingErr(before, after heapReading) error {
	if before.err != nil {
		return before.err
	}
	return after.err
}

// noteUngced notes readings taken without forced collections (the first
// one of a run is noted by itself).
func noteUngced(rep *Report, what string, readings ...heapReading) {
	for _, h := range readings {
		if !h.gced && h.gcErr != nil && !errors.Is(h.gcErr, errNoPprof) {
			rep.note("%s: a heap reading without forced collections (%v): garbage inflates it", what, h.gcErr)
			return
		}
	}
}
