package calc

import (
	"math"
	"sort"
)

// Bucket is one cumulative histogram bucket: the count of observations <= UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// HistogramQuantile is PromQL's histogram_quantile(q, ...) over classic cumulative buckets
// (typically per-second bucket rates summed by le): it finds the bucket holding the q-th
// observation and interpolates linearly inside it. It returns NaN when there is no answer:
// no observations, fewer than two buckets, or no +Inf bucket. Buckets may come in any order;
// the slice is sorted in place. Counts that decrease with le (scrapes of different buckets
// taken at slightly different moments) are made monotonic first, as Prometheus does.
func HistogramQuantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].UpperBound < buckets[j].UpperBound })
	if len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].UpperBound, 1) {
		return math.NaN()
	}
	buckets = coalesce(buckets)
	monotonic(buckets)
	if len(buckets) < 2 {
		return math.NaN()
	}
	observations := buckets[len(buckets)-1].Count
	if observations == 0 || math.IsNaN(observations) {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].Count >= rank })
	switch {
	case b == len(buckets)-1:
		// The rank is in the +Inf bucket: the best answer is the highest finite bound.
		return buckets[len(buckets)-2].UpperBound
	case b == 0 && buckets[0].UpperBound <= 0:
		return buckets[0].UpperBound
	}
	lower, upper, count := 0.0, buckets[b].UpperBound, buckets[b].Count
	if b > 0 {
		lower = buckets[b-1].UpperBound
		count -= buckets[b-1].Count
		rank -= buckets[b-1].Count
	}
	return lower + (upper-lower)*(rank/count)
}

// coalesce merges buckets of equal upper bound (from series that differ only in how le was
// written, such as "1" and "1.0") by adding their counts. buckets must be sorted.
func coalesce(buckets []Bucket) []Bucket {
	out := buckets[:1]
	for _, b := range buckets[1:] {
		if b.UpperBound == out[len(out)-1].UpperBound {
			out[len(out)-1].Count += b.Count
			continue
		}
		out = append(out, b)
	}
	return out
}

// monotonic raises any count that is lower than the count of a smaller bucket.
func monotonic(buckets []Bucket) {
	maxCount := math.Inf(-1)
	for i := range buckets {
		if buckets[i].Count > maxCount {
			maxCount = buckets[i].Count
		} else if buckets[i].Count < maxCount {
			buckets[i].Count = maxCount
		}
	}
}
