package loadgen

import (
	"math"
	"time"
)

// Latency buckets are log-spaced from histMin to histMax with histRatio between bounds, so a
// quantile read from them is within 4% of the true value and a histogram's size is fixed.
const (
	histMin   = 100 * time.Microsecond
	histMax   = 2 * time.Minute
	histRatio = 1.04
)

var histBuckets = int(math.Ceil(math.Log(float64(histMax)/float64(histMin))/math.Log(histRatio))) + 2

// histogram counts latencies in fixed log-spaced buckets; the first holds everything under
// histMin, the last everything over histMax.
type histogram struct {
	counts []uint32
	n      uint64
}

func newHistogram() histogram { return histogram{counts: make([]uint32, histBuckets)} }

func bucketOf(d time.Duration) int {
	if d < histMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(histMin))/math.Log(histRatio)) + 1
	return min(i, histBuckets-1)
}

// upperBound is bucket i's upper edge.
func upperBound(i int) time.Duration {
	if i == 0 {
		return histMin
	}
	return time.Duration(float64(histMin) * math.Pow(histRatio, float64(i)))
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

func (h *histogram) merge(o histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

func (h *histogram) clone() histogram {
	return histogram{counts: append([]uint32(nil), h.counts...), n: h.n}
}

// quantile returns the upper edge of the bucket holding quantile q (0 < q ≤ 1); zero when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return upperBound(i)
		}
	}
	return upperBound(len(h.counts) - 1)
}
