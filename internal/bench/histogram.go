package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, like HdrHistogram: values below subCount
// nanoseconds get one bucket each; above that, every power of two is split
// into subCount equal buckets. A bucket is therefore never wider than
// 1/subCount (0.8 %) of the values in it, whatever the magnitude, and the
// whole uint64 range fits in a fixed array, so recording is a few atomic adds
// and never allocates or locks.
const (
	subBits  = 7
	subCount = 1 << subBits
	nBuckets = (64 - subBits + 1) * subCount // bucketOf(MaxUint64) is the last
)

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	return (e+1)<<subBits + int(v>>e) - subCount
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	e := uint(i>>subBits) - 1
	m := uint64(i&(subCount-1)) + subCount
	lo = m << e
	return lo, lo + (1 << e) - 1
}

// Histogram records durations for percentiles. It is safe for concurrent
// use: the reader goroutines of many connections record into one histogram.
// The zero value is not usable; use NewHistogram.
type Histogram struct {
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; wraps only after 584 years of latency
	min    atomic.Uint64 // valid when count > 0
	max    atomic.Uint64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{counts: make([]atomic.Uint64, nBuckets)}
	h.min.Store(math.MaxUint64)
	return h
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Percentile returns the value below or at which p percent of the recorded
// values lie (0 < p <= 100), within the bucket resolution: the middle of
// the bucket holding that rank, kept within the exact minimum and maximum.
// It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	if p >= 100 {
		return time.Duration(h.max.Load())
	}
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = min(max(v, h.min.Load()), h.max.Load())
			return time.Duration(v)
		}
	}
	// Only reachable while other goroutines are still recording.
	return time.Duration(h.max.Load())
}

// Summary is a histogram reduced to what the report shows.
type Summary struct {
	Count uint64
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// Summarize computes the summary; call it once recording has stopped.
func (h *Histogram) Summarize() Summary {
	n := h.count.Load()
	if n == 0 {
		return Summary{}
	}
	return Summary{
		Count: n,
		Min:   time.Duration(h.min.Load()),
		Mean:  time.Duration(h.sum.Load() / n),
		P50:   h.Percentile(50),
		P90:   h.Percentile(90),
		P99:   h.Percentile(99),
		Max:   time.Duration(h.max.Load()),
	}
}
