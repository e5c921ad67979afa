package bench

import (
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const catchUpExposition = `# HELP signald_gap_catchup_seconds From a restored Pub/Sub subscription until every connection of its users was checked and caught up.
# TYPE signald_gap_catchup_seconds histogram
signald_gap_catchup_seconds_bucket{le="0.005"} 1
signald_gap_catchup_seconds_bucket{le="0.01"} 1
signald_gap_catchup_seconds_bucket{le="0.02"} 3
signald_gap_catchup_seconds_bucket{le="0.04"} 4
signald_gap_catchup_seconds_bucket{le="+Inf"} 4
signald_gap_catchup_seconds_sum 0.062
signald_gap_catchup_seconds_count 4
signald_catchups_total{result="caught_up"} 12
signald_catchups_total{result="failed"} 0
signald_catchups_total{result="resume"} 1
signald_connections_closed_by_server_total{reason="restart"} 1
other{result="caught_up"} 99
odd{a="x,y=\"z\"",result="a\\b"} 5
odd{result="a\\b",b="1"} 2
`

func TestHistogramAndLabelled(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(catchUpExposition))
	if err != nil {
		t.Fatal(err)
	}
	h, ok := m.Histogram("signald_gap_catchup_seconds")
	if !ok {
		t.Fatal("histogram not found")
	}
	if h.Count != 4 || h.Sum != 0.062 || len(h.Buckets) != 5 {
		t.Fatalf("histogram %+v", h)
	}
	for i, want := range []float64{0.005, 0.01, 0.02, 0.04, math.Inf(1)} {
		if h.Buckets[i].LE != want {
			t.Fatalf("bucket %d bound %v, want %v (buckets must be sorted): %+v", i, h.Buckets[i].LE, want, h.Buckets)
		}
	}
	if got := h.Mean(); math.Abs(got-0.0155) > 1e-12 {
		t.Errorf("mean %v", got)
	}
	if got := h.MaxBound(); got != 0.04 {
		t.Errorf("max bound %v, want 0.04", got)
	}
	if _, ok := m.Histogram("absent_seconds"); ok {
		t.Error("an absent histogram was found")
	}

	results := m.Labelled("signald_catchups_total", "result")
	if len(results) != 3 || results["caught_up"] != 12 || results["resume"] != 1 || results["failed"] != 0 {
		t.Errorf("catch-ups by result %v", results)
	}
	if odd := m.Labelled("odd", "result"); len(odd) != 1 || odd[`a\b`] != 7 {
		t.Errorf("labels with escapes, commas and quotes: %v", odd)
	}
	if none := m.Labelled("signald_catchups_total", "reason"); len(none) != 0 {
		t.Errorf("series without the label: %v", none)
	}
}

func TestPromHistogramDelta(t *testing.T) {
	before := PromHistogram{Count: 2, Sum: 0.01, Buckets: []PromBucket{{0.005, 1}, {0.01, 2}, {0.02, 2}, {math.Inf(1), 2}}}
	after := PromHistogram{Count: 5, Sum: 0.08, Buckets: []PromBucket{{0.005, 1}, {0.01, 3}, {0.02, 4}, {math.Inf(1), 5}}}
	d := after.Sub(before)
	if d.Count != 3 || math.Abs(d.Sum-0.07) > 1e-12 {
		t.Fatalf("delta %+v", d)
	}
	if got := d.MaxBound(); !math.IsInf(got, 1) {
		t.Errorf("an observation past the last finite bound: max bound %v, want +Inf", got)
	}
	if math.Abs(d.Mean()-0.07/3) > 1e-12 {
		t.Errorf("mean %v", d.Mean())
	}
	d = before.Sub(before)
	if !math.IsNaN(d.Mean()) || !math.IsNaN(d.MaxBound()) {
		t.Errorf("no observation: mean %v max %v, want NaN", d.Mean(), d.MaxBound())
	}
	// The first scrape of a histogram starts from nothing.
	if d := before.Sub(PromHistogram{}); d.Count != 2 || d.MaxBound() != 0.01 {
		t.Errorf("from nothing: %+v max %v", d, d.MaxBound())
	}
}

// TestHistogramRealExposition reads a histogram with signald's buckets as
// client_golang writes it.
func TestHistogramRealExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "signald_gap_catchup_seconds", Help: "h", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signald_catchups_total", Help: "h"}, []string{"result"})
	reg.MustRegister(h, c)
	for _, v := range []float64{0.003, 0.03, 0.3} {
		h.Observe(v)
	}
	c.WithLabelValues("caught_up").Add(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	m, err := ScrapeMetrics(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Histogram("signald_gap_catchup_seconds")
	if !ok || got.Count != 3 || len(got.Buckets) != 15 || math.Abs(got.Sum-0.333) > 1e-9 {
		t.Fatalf("histogram %+v (found %v)", got, ok)
	}
	if b := got.MaxBound(); b != 0.32 {
		t.Errorf("max bound %v, want 0.32", b)
	}
	if v := m.Labelled("signald_catchups_total", "result")["caught_up"]; v != 7 {
		t.Errorf("caught_up = %v", v)
	}
}

func TestParseSeries(t *testing.T) {
	for _, tc := range []struct {
		in     string
		name   string
		labels map[string]string
		ok     bool
	}{
		{"plain", "plain", nil, true},
		{`m{}`, "m", map[string]string{}, true},
		{`m{le="+Inf"}`, "m", map[string]string{"le": "+Inf"}, true},
		{`m{a="1",b="x\"}\n"}`, "m", map[string]string{"a": "1", "b": "x\"}\n"}, true},
		{`m{a="1",}`, "m", map[string]string{"a": "1"}, true},
		{`m{a=1}`, "", nil, false},
		{`m{a="1}`, "", nil, false},
	} {
		name, labels, ok := parseSeries(tc.in)
		if ok != tc.ok || name != tc.name || len(labels) != len(tc.labels) {
			t.Errorf("parseSeries(%q) = %q %v %v", tc.in, name, labels, ok)
			continue
		}
		for k, v := range tc.labels {
			if labels[k] != v {
				t.Errorf("parseSeries(%q): %s = %q, want %q", tc.in, k, labels[k], v)
			}
		}
	}
}
