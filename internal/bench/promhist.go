package bench

import (
	"math"
	"slices"
	"strings"
)

// Labelled and Histogram read labelled series and histograms out of a
// scrape (promtext.go keeps every series under its name and labels exactly
// as written); they are the little of the text format's types the gap
// scenario needs.

// Labelled returns the samples of metric name by the value of one label,
// e.g. Labelled("signald_catchups_total", "result") = {"caught_up": 3, …}.
// Series without that label are left out; series that differ in other
// labels are summed.
func (m Metrics) Labelled(name, label string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range m.Series {
		n, labels, ok := parseSeries(series)
		if !ok || n != name {
			continue
		}
		if lv, ok := labels[label]; ok {
			out[lv] += v
		}
	}
	return out
}

// parseSeries splits `name{a="x",b="y\"z"}` into its name and labels.
func parseSeries(series string) (name string, labels map[string]string, ok bool) {
	name, rest, found := strings.Cut(series, "{")
	if !found {
		return series, nil, true
	}
	labels = map[string]string{}
	for {
		rest = strings.TrimLeft(rest, ", ")
		if rest == "}" {
			return name, labels, true
		}
		key, after, found := strings.Cut(rest, "=")
		if !found || len(after) == 0 || after[0] != '"' {
			return "", nil, false
		}
		var val strings.Builder
		i := 1
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
				switch after[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(after[i])
				}
				continue
			}
			val.WriteByte(after[i])
		}
		if i >= len(after) {
			return "", nil, false
		}
		labels[strings.TrimSpace(key)] = val.String()
		rest = after[i+1:]
	}
}

// PromBucket is one cumulative bucket: how many observations were ≤ LE.
type PromBucket struct {
	LE    float64 `json:"le"`
	Count float64 `json:"count"`
}

// PromHistogram is one Prometheus histogram without labels of its own (or
// summed over them): cumulative buckets by increasing bound, the last
// +Inf, and the sum and count of observations.
type PromHistogram struct {
	Buckets []PromBucket `json:"buckets"`
	Sum     float64      `json:"sum"`
	Count   float64      `json:"count"`
}

// Histogram returns histogram name (its _bucket, _sum and _count series),
// and whether the scrape had it.
func (m Metrics) Histogram(name string) (PromHistogram, bool) {
	var h PromHistogram
	count, ok1 := m.Value(name + "_count")
	sum, ok2 := m.Value(name + "_sum")
	if !ok1 || !ok2 {
		return h, false
	}
	h.Count, h.Sum = count, sum
	for le, c := range m.Labelled(name+"_bucket", "le") {
		bound, err := parseSampleValue(le)
		if err != nil {
			return PromHistogram{}, false
		}
		h.Buckets = append(h.Buckets, PromBucket{bound, c})
	}
	slices.SortFunc(h.Buckets, func(a, b PromBucket) int {
		switch {
		case a.LE < b.LE:
			return -1
		case a.LE > b.LE:
			return 1
		}
		return 0
	})
	return h, true
}

// Sub returns what was observed from before to h (same buckets).
func (h PromHistogram) Sub(before PromHistogram) PromHistogram {
	d := PromHistogram{Sum: h.Sum - before.Sum, Count: h.Count - before.Count}
	for _, b := range h.Buckets {
		prev := 0.0
		for _, o := range before.Buckets {
			if o.LE == b.LE {
				prev = o.Count
			}
		}
		d.Buckets = append(d.Buckets, PromBucket{b.LE, b.Count - prev})
	}
	return d
}

// Mean is the mean observation; NaN without any.
func (h PromHistogram) Mean() float64 {
	if h.Count <= 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}

// MaxBound is the upper bound of the bucket that holds the largest
// observation: the largest is at most that (+Inf past the last finite
// bound); NaN without any observation.
func (h PromHistogram) MaxBound() float64 {
	if h.Count <= 0 || len(h.Buckets) == 0 {
		return math.NaN()
	}
	// The first bucket whose cumulative count holds every observation.
	for _, b := range h.Buckets {
		if b.Count >= h.Count {
			return b.LE
		}
	}
	return math.Inf(1)
}
