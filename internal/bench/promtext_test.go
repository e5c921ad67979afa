package bench

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const sampleExposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5165824e+07

signald_connections 1500
signald_requests_total{code="0",op="invite"} 100
signald_requests_total{code="8010",op="accept"} 3
signald_requests_total{code="0",op="accept"} 97 1764100000000
weird_labels{path="/a b}",q="say \"hi\" }"} 2
signald_request_duration_seconds_bucket{op="invite",le="+Inf"} 100
up NaN
down -Inf
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(sampleExposition))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"process_cpu_seconds_total":     12.34,
		"process_resident_memory_bytes": 25165824,
		"signald_connections":           1500,
		"signald_requests_total":        200,
		"weird_labels":                  2,
		"down":                          math.Inf(-1),
	} {
		if got, ok := m.Value(name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if v := m.Series[`signald_requests_total{code="8010",op="accept"}`]; v != 3 {
		t.Errorf("labelled series = %v, want 3", v)
	}
	if v := m.Series[`weird_labels{path="/a b}",q="say \"hi\" }"}`]; v != 2 {
		t.Errorf("series with braces in labels = %v; series: %v", v, m.Series)
	}
	if v, _ := m.Value("up"); !math.IsNaN(v) {
		t.Errorf("NaN parsed as %v", v)
	}
	if _, ok := m.Value("absent_metric"); ok {
		t.Error("absent metric reported present")
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, bad := range []string{
		"novalue\n", "x{a=\"1\" 2\n", "x 1 2 3\n", "x abc\n", "{a=\"b\"} 1\n",
	} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMetrics(%q) succeeded", bad)
		}
	}
}

// TestParseMetricsRealExposition parses what client_golang itself writes,
// the format signald serves, through a loopback HTTP server.
func TestParseMetricsRealExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "signald_connections", Help: "h"})
	g.Set(42)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signald_requests_total", Help: "h"}, []string{"op", "code"})
	c.WithLabelValues("invite", "0").Add(5)
	c.WithLabelValues("accept", "8010").Add(2)
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lat_seconds", Help: "h"})
	hist.Observe(0.01)
	reg.MustRegister(g, c, hist)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	m, err := ScrapeMetrics(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Value("signald_connections"); v != 42 {
		t.Errorf("signald_connections = %v", v)
	}
	if v, _ := m.Value("signald_requests_total"); v != 7 {
		t.Errorf("signald_requests_total = %v", v)
	}
	if v, _ := m.Value("lat_seconds_count"); v != 1 {
		t.Errorf("lat_seconds_count = %v", v)
	}
	for _, name := range []string{"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines"} {
		if v, ok := m.Value(name); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}

	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if _, err := ScrapeMetrics(context.Background(), notFound.Client(), notFound.URL); err == nil {
		t.Error("a 404 scraped without error")
	}
}
