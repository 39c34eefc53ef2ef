package calc

import (
	"math"
	"testing"
)

func TestRate(t *testing.T) {
	tests := map[string]struct {
		samples    []Sample
		start, end int64
		want       float64
		ok         bool
	}{
		"no samples":  {start: 0, end: 60_000},
		"one sample":  {samples: []Sample{{30_000, 5}}, start: 0, end: 60_000},
		"left open":   {samples: []Sample{{0, 0}, {60_000, 60}}, start: 0, end: 60_000},
		"steady rate": {samples: []Sample{{15_000, 15}, {30_000, 30}, {45_000, 45}, {60_000, 60}}, start: 0, end: 60_000, want: 1, ok: true},
		// 100→110→2 is an increase of 12 over the 10 s between the samples, extrapolated by
		// 2.5 s (half the 5 s interval) at each end: 12 * 15/10 / 60 s.
		"counter reset": {samples: []Sample{{20_000, 100}, {25_000, 110}, {30_000, 2}}, start: 0, end: 60_000, want: 12 * 15.0 / 10 / 60, ok: true},
		// The first sample is 10 s after the range start (inside the 11 s threshold), but at
		// +10 per 10 s the counter was zero only 1 s earlier: extrapolate 1 s, not 10 s.
		"extrapolate to zero": {samples: []Sample{{10_000, 1}, {20_000, 11}}, start: 0, end: 20_000, want: 10 * (10 + 1) / 10.0 / 20, ok: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := Rate(tc.samples, tc.start, tc.end)
			if ok != tc.ok || (ok && math.Abs(got-tc.want) > 1e-12) {
				t.Fatalf("Rate = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := map[string]struct {
		q       float64
		buckets []Bucket
		want    float64
	}{
		"no +Inf bucket":   {q: 0.5, buckets: []Bucket{{0.1, 1}, {1, 2}}, want: math.NaN()},
		"no observations":  {q: 0.5, buckets: []Bucket{{0.1, 0}, {inf, 0}}, want: math.NaN()},
		"only +Inf":        {q: 0.5, buckets: []Bucket{{inf, 4}}, want: math.NaN()},
		"interpolated":     {q: 0.5, buckets: []Bucket{{0.1, 0}, {0.2, 10}, {inf, 10}}, want: 0.15},
		"first bucket":     {q: 0.5, buckets: []Bucket{{0.2, 10}, {inf, 10}}, want: 0.1},
		"rank in +Inf":     {q: 0.99, buckets: []Bucket{{0.1, 5}, {0.2, 6}, {inf, 10}}, want: 0.2},
		"unsorted input":   {q: 0.5, buckets: []Bucket{{inf, 10}, {0.2, 10}, {0.1, 0}}, want: 0.15},
		"non-monotonic":    {q: 0.5, buckets: []Bucket{{0.1, 6}, {0.2, 5}, {inf, 10}}, want: 0.1 * 5 / 6},
		"q above one":      {q: 1.5, buckets: []Bucket{{0.1, 1}, {inf, 1}}, want: inf},
		"q below zero":     {q: -1, buckets: []Bucket{{0.1, 1}, {inf, 1}}, want: math.Inf(-1)},
		"equal bounds add": {q: 0.5, buckets: []Bucket{{0.1, 0}, {0.2, 4}, {0.2, 6}, {inf, 10}}, want: 0.15},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := HistogramQuantile(tc.q, tc.buckets); !close(got, tc.want) {
				t.Fatalf("HistogramQuantile = %v, want %v", got, tc.want)
			}
		})
	}
}
