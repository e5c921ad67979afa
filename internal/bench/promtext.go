package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Metrics is one scrape of a Prometheus text exposition: every sample's
// value by its series, the metric name followed by its labels exactly as
// written (`signald_requests_total{op="invite",code="0"}`), and the sum of
// a metric's samples by bare name. Only gauges and counters are needed, so
// the parser understands the text format's lines, not its types: it is the
// few lines the bench needs rather than a dependency on
// prometheus/common/expfmt.
type Metrics struct {
	Series map[string]float64
	ByName map[string]float64
}

// Value returns a metric summed over its label sets, and whether the scrape
// had it at all.
func (m Metrics) Value(name string) (float64, bool) {
	v, ok := m.ByName[name]
	return v, ok
}

// ParseMetrics parses the Prometheus text format: comments and blank lines
// are skipped; a sample line is `name[{labels}] value [timestamp]`.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{Series: map[string]float64{}, ByName: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		series, name, rest, err := splitSeries(line)
		if err != nil {
			return m, fmt.Errorf("metrics line %d: %w", n, err)
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 || len(fields) > 2 {
			return m, fmt.Errorf("metrics line %d: want a value and an optional timestamp: %q", n, line)
		}
		v, err := parseSampleValue(fields[0])
		if err != nil {
			return m, fmt.Errorf("metrics line %d: %w", n, err)
		}
		m.Series[series] = v
		m.ByName[name] += v
	}
	return m, sc.Err()
}

// splitSeries splits a sample line into the series (name and labels), the
// bare name and what follows. Label values may contain spaces, braces and
// escaped quotes, so the closing brace is found by walking the quotes.
func splitSeries(line string) (series, name, rest string, err error) {
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return "", "", "", fmt.Errorf("no value: %q", line)
	}
	name = line[:end]
	if line[end] != '{' {
		return name, name, line[end:], nil
	}
	inQuote := false
	for i := end + 1; i < len(line); i++ {
		switch c := line[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return line[:i+1], name, line[i+1:], nil
		}
	}
	return "", "", "", fmt.Errorf("unterminated labels: %q", line)
}

func parseSampleValue(s string) (float64, error) {
	switch s {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", s, err)
	}
	return v, nil
}

// ScrapeMetrics fetches and parses url.
func ScrapeMetrics(ctx context.Context, hc *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Metrics{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Metrics{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return Metrics{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}
