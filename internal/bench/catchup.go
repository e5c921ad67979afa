package bench

import (
	"context"
	"maps"
	"slices"
	"time"
)

// gapCatchUpMetric is signald's histogram of the time from a restored
// Pub/Sub subscription until every connection of its users was checked and
// caught up: one observation per gap.
const gapCatchUpMetric = "signald_gap_catchup_seconds"

// catchUpWatch follows gapCatchUpMetric on the server's /metrics. Scraped
// often enough, each step of the histogram's count is one gap and the step
// of its sum that gap's duration, so the bench reports every gap's
// catch-up, not only the buckets'. It is used by one goroutine.
type catchUpWatch struct {
	p        *probe
	exported bool          // the server has the metric
	base     PromHistogram // at the start
	last     PromHistogram // at the latest scrape
	perGap   *Histogram
	gaps     []time.Duration // in the order they were caught up
	merged   int             // steps of more than one gap (their mean is recorded for each)
}

func newCatchUpWatch(p *probe, start Metrics) *catchUpWatch {
	w := &catchUpWatch{p: p, perGap: NewHistogram()}
	w.base, w.exported = start.Histogram(gapCatchUpMetric)
	w.last = w.base
	return w
}

// seen is how many gaps were caught up since the start.
func (w *catchUpWatch) seen() int { return len(w.gaps) }

// observe takes the histogram of one scrape.
func (w *catchUpWatch) observe(h PromHistogram) {
	d := h.Sub(w.last)
	w.last = h
	if d.Count < 1 {
		return
	}
	if d.Count > 1 {
		w.merged++
	}
	each := time.Duration(d.Sum / d.Count * float64(time.Second))
	for range int(d.Count) {
		w.perGap.Record(each)
		w.gaps = append(w.gaps, each)
	}
}

// catchUpPoll is how often await scrapes /metrics.
const catchUpPoll = 100 * time.Millisecond

// await scrapes /metrics until want gaps have been caught up since the
// start, until, or ctx's end, and reports whether they were.
func (w *catchUpWatch) await(ctx context.Context, want int, until time.Time) bool {
	if !w.exported {
		return false
	}
	for w.seen() < want {
		if !time.Now().Before(until) || !sleepCtx(ctx, min(catchUpPoll, time.Until(until))) {
			return false
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := ScrapeMetrics(sctx, w.p.hc, w.p.cfg.MetricsURL)
		cancel()
		if err != nil {
			continue
		}
		if h, ok := m.Histogram(gapCatchUpMetric); ok {
			w.observe(h)
		}
	}
	return true
}

// gapCatchUpReport adds the server's catch-up figures: per gap from the
// watch's scrapes, and in total from the histogram and the counters
// between the two snapshots.
func gapCatchUpReport(rep *Report, cw *catchUpWatch, before, after snapshot, gaps int, caughtUp bool) {
	rep.addLatency("catch-up after a Pub/Sub gap (per gap)", cw.perGap)
	if before.metricsErr != nil || after.metricsErr != nil || !cw.exported {
		return
	}
	s := rep.section("catch-up after a Pub/Sub gap (from /metrics)")
	if h0, ok0 := before.metrics.Histogram(gapCatchUpMetric); ok0 {
		if h1, ok1 := after.metrics.Histogram(gapCatchUpMetric); ok1 {
			d := h1.Sub(h0)
			s.add("gaps_caught_up", "gaps caught up (histogram count)", d.Count, "")
			s.add("catchup_mean_ms", "catch-up after a Pub/Sub gap: mean", 1e3*d.Mean(), "ms")
			if sum := cw.perGap.Summarize(); sum.Count > 0 {
				s.add("catchup_max_ms", "catch-up after a Pub/Sub gap: max", ms(sum.Max), "ms")
			}
			s.add("catchup_max_bucket_ms", "catch-up after a Pub/Sub gap: max, bucket bound (≤)", 1e3*d.MaxBound(), "ms")
		}
	}
	delta := func(metric, label string) map[string]float64 {
		a, b := after.metrics.Labelled(metric, label), before.metrics.Labelled(metric, label)
		for k := range a {
			a[k] -= b[k]
		}
		return a
	}
	results := delta("signald_catchups_total", "result")
	for _, k := range []string{"caught_up", "resume", "failed"} {
		s.add("catchups_"+k, "catch-ups by result: "+k, results[k], "")
	}
	reasons := delta("signald_connections_closed_by_server_total", "reason")
	s.add("server_closed_restart", "closed by the server, its own count: restart", reasons["restart"], "")
	for _, k := range slices.Sorted(maps.Keys(reasons)) {
		if k != "restart" && reasons[k] > 0 {
			s.add("server_closed_"+k, "closed by the server, its own count: "+k, reasons[k], "")
		}
	}
	if !caughtUp {
		rep.fail("only %d of %d Pub/Sub gaps were caught up (%s) by -op-timeout after the load", cw.seen(), gaps, gapCatchUpMetric)
	}
	if cw.merged > 0 {
		rep.note("%d scrapes saw more than one gap caught up at once: each got their mean", cw.merged)
	}
	rep.note("catch-up: from a restored Pub/Sub subscription until every connection of its users was checked and caught up (%s); per gap from /metrics scraped every %v", gapCatchUpMetric, catchUpPoll)
}
