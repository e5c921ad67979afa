package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketsAreContiguousAndCoverUint64(t *testing.T) {
	var prevHi uint64
	for i := range nBuckets {
		lo, hi := bucketRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if lo > hi {
			t.Fatalf("bucket %d: lo %d > hi %d", i, lo, hi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d] maps to %d/%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d", prevHi)
	}
}

func TestBucketWidthIsBounded(t *testing.T) {
	for _, v := range []uint64{1, 127, 128, 1000, 12345, 1e6, 3e9, 1 << 40, math.MaxUint64 / 3} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v > hi {
			t.Fatalf("%d not in its bucket [%d,%d]", v, lo, hi)
		}
		if rel := float64(hi-lo) / float64(lo+1); rel > 1.0/subCount {
			t.Fatalf("bucket of %d is %.4f wide relative to its values", v, rel)
		}
	}
}

// exactPercentile is the nearest-rank percentile of sorted samples, the
// definition the histogram approximates.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestPercentilesMatchExactWithinResolution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"lognormal", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 12)) // around 160µs, long tail
		}},
		{"bimodal", func() time.Duration {
			if rng.IntN(100) < 3 {
				return 200*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 50*time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Microsecond)))
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			h := NewHistogram()
			samples := make([]time.Duration, 100_000)
			for i := range samples {
				samples[i] = dist.gen()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, p := range []float64{1, 50, 90, 99, 99.9} {
				want, got := exactPercentile(samples, p), h.Percentile(p)
				if diff := math.Abs(float64(got - want)); diff > float64(want)/subCount+1 {
					t.Errorf("p%v = %v, exact %v", p, got, want)
				}
			}
			s := h.Summarize()
			if s.Max != samples[len(samples)-1] || s.Min != samples[0] || h.Percentile(100) != s.Max {
				t.Errorf("min/max %v/%v, exact %v/%v", s.Min, s.Max, samples[0], samples[len(samples)-1])
			}
			var sum time.Duration
			for _, v := range samples {
				sum += v
			}
			if want := sum / time.Duration(len(samples)); s.Mean != want {
				t.Errorf("mean %v, exact %v", s.Mean, want)
			}
		})
	}
}

func TestHistogramEdgeCases(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(50) != 0 || h.Summarize() != (Summary{}) {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(-time.Second) // a clock step must not wrap around
	if h.Percentile(50) != 0 || h.Summarize().Max != 0 {
		t.Fatalf("negative value recorded as %v", h.Percentile(50))
	}
	h = NewHistogram()
	h.Record(1234567 * time.Nanosecond)
	for _, p := range []float64{0.001, 50, 99, 100} {
		if got := h.Percentile(p); got != 1234567*time.Nanosecond {
			t.Fatalf("single value: p%v = %v", p, got)
		}
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				h.Record(time.Duration(g*10_000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.Summarize()
	if s.Count != 80_000 || s.Min != 0 || s.Max != 79_999*time.Microsecond {
		t.Fatalf("summary after concurrent records: %+v", s)
	}
	if p := h.Percentile(50); math.Abs(float64(p-40*time.Millisecond)) > float64(40*time.Millisecond)/subCount {
		t.Fatalf("p50 %v, want about 40ms", p)
	}
}
