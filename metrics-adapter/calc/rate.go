// Package calc computes rates and histogram quantiles from raw samples with the semantics of
// PromQL's rate(), increase() and histogram_quantile(), so that a number served by the adapter
// is the number a user would see for the same query in Prometheus.
package calc

import (
	"math"
)

// Sample is one scraped value of a series at a Unix time in milliseconds.
type Sample struct {
	T int64
	V float64
}

// InRange returns the samples of a time-ordered slice that a PromQL range selector
// [end-rng, end] sees: those with start < T <= end (the left end is open, as in Prometheus 3).
func InRange(samples []Sample, start, end int64) []Sample {
	lo, hi := 0, len(samples)
	for lo < hi && samples[lo].T <= start {
		lo++
	}
	for hi > lo && samples[hi-1].T > end {
		hi--
	}
	return samples[lo:hi]
}

// Rate is PromQL's rate(counter[end-start]) evaluated at end: the per-second increase of a
// counter over the range, with counter resets accounted for and the result extrapolated to the
// range boundaries the way Prometheus does. ok is false when fewer than two samples fall in
// the range, where Prometheus returns no value.
func Rate(samples []Sample, start, end int64) (float64, bool) {
	v, ok := extrapolatedDelta(InRange(samples, start, end), start, end, true)
	if !ok {
		return 0, false
	}
	return v / (float64(end-start) / 1000), true
}

// Increase is PromQL's increase(counter[end-start]) evaluated at end.
func Increase(samples []Sample, start, end int64) (float64, bool) {
	return extrapolatedDelta(InRange(samples, start, end), start, end, true)
}

// extrapolatedDelta follows Prometheus' extrapolatedRate: the difference between the last and
// first sample (plus the value before each reset for counters), stretched towards the range
// boundaries by at most half an average sample interval unless the series starts or ends
// inside the range, and never extrapolated below zero for counters.
func extrapolatedDelta(s []Sample, start, end int64, isCounter bool) (float64, bool) {
	if len(s) < 2 {
		return 0, false
	}
	first, last := s[0], s[len(s)-1]
	delta := last.V - first.V
	if isCounter {
		prev := first.V
		for _, p := range s[1:] {
			if p.V < prev {
				delta += prev
			}
			prev = p.V
		}
	}
	toStart := float64(first.T-start) / 1000
	toEnd := float64(end-last.T) / 1000
	sampled := float64(last.T-first.T) / 1000
	avg := sampled / float64(len(s)-1)
	threshold := avg * 1.1
	if toStart >= threshold {
		toStart = avg / 2
	}
	if isCounter && delta > 0 && first.V >= 0 {
		// A counter cannot have been below zero: do not extrapolate past the point where it
		// would have been zero.
		if toZero := sampled * (first.V / delta); toZero < toStart {
			toStart = toZero
		}
	}
	if toEnd >= threshold {
		toEnd = avg / 2
	}
	factor := (sampled + toStart + toEnd) / sampled
	if math.IsInf(factor, 0) || math.IsNaN(factor) {
		return 0, false
	}
	return delta * factor, true
}
