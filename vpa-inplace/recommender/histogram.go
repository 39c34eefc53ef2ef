package recommender

import (
	"errors"
	"fmt"
	"math"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// Buckets are exponentially growing histogram buckets: bucket i covers
// [Start(i), Start(i+1)), its width First·Ratio^i. The last bucket also holds everything above Max.
type Buckets struct {
	first, ratio float64
	n            int
}

// NewBuckets returns buckets whose first has width first and each next one ratio times wider,
// enough of them to reach max.
func NewBuckets(max, first, ratio float64) (Buckets, error) {
	if !(first > 0) || !(ratio > 1) || !(max > first) || math.IsInf(max, 0) {
		return Buckets{}, fmt.Errorf("invalid histogram buckets: max %g, first %g, ratio %g (want max > first > 0, ratio > 1)", max, first, ratio)
	}
	n := int(math.Ceil(math.Log(max*(ratio-1)/first+1)/math.Log(ratio))) + 1
	return Buckets{first: first, ratio: ratio, n: n}, nil
}

// Len is the number of buckets.
func (b Buckets) Len() int { return b.n }

// Start is the lower edge of bucket i.
func (b Buckets) Start(i int) float64 {
	if i <= 0 {
		return 0
	}
	return b.first * (math.Pow(b.ratio, float64(i)) - 1) / (b.ratio - 1)
}

// Find returns the bucket that holds v (values below zero go to bucket 0, above the range to the last).
func (b Buckets) Find(v float64) int {
	if !(v >= b.first) { // also NaN
		return 0
	}
	i := int(math.Floor(math.Log(v*(b.ratio-1)/b.first+1) / math.Log(b.ratio)))
	// Guard the floating-point edge so that Start(i) <= v < Start(i+1).
	for i > 0 && b.Start(i) > v {
		i--
	}
	for i+1 < b.n && b.Start(i+1) <= v {
		i++
	}
	if i >= b.n {
		i = b.n - 1
	}
	return i
}

// maxDecayExponent bounds the decay factor 2^exponent a sample's weight is multiplied by
// before the histogram moves its reference time (and scales every weight down).
const maxDecayExponent = 100

// epsilon is the total weight below which a histogram counts as empty.
const epsilon = 1e-10

// Histogram is a decaying histogram: a sample's weight halves every HalfLife, counted back
// from the newest samples. Rather than decaying old weights, new ones are multiplied by
// 2^((t-reference)/halfLife); the reference moves forward when that factor grows too large.
// Its zero value is not usable; build one with NewHistogram.
type Histogram struct {
	buckets   Buckets
	halfLife  time.Duration
	weights   []float64
	total     float64
	reference time.Time
	min, max  int // range of non-empty buckets when total > epsilon
}

// NewHistogram returns an empty histogram over buckets with the given half-life.
func NewHistogram(b Buckets, halfLife time.Duration) *Histogram {
	return &Histogram{buckets: b, halfLife: halfLife, weights: make([]float64, b.Len()), min: b.Len(), max: -1}
}

// IsEmpty reports whether the histogram holds no weight.
func (h *Histogram) IsEmpty() bool { return h.total < epsilon }

func (h *Histogram) factor(t time.Time) float64 {
	if h.reference.IsZero() {
		h.reference = t
	}
	exp := float64(t.Sub(h.reference)) / float64(h.halfLife)
	if exp > maxDecayExponent {
		h.shiftReference(t)
		exp = 0
	}
	return math.Exp2(exp)
}

// shiftReference moves the reference time to t, scaling stored weights to match.
func (h *Histogram) shiftReference(t time.Time) {
	scale := math.Exp2(-float64(t.Sub(h.reference)) / float64(h.halfLife))
	h.total = 0
	for i := range h.weights {
		h.weights[i] *= scale
		if h.weights[i] < epsilon {
			h.weights[i] = 0
		}
		h.total += h.weights[i]
	}
	h.reference = t
	h.updateRange()
}

// AddSample adds value with weight at time t.
func (h *Histogram) AddSample(value, weight float64, t time.Time) {
	if !(weight > 0) || math.IsNaN(value) {
		return
	}
	w := weight * h.factor(t)
	i := h.buckets.Find(value)
	h.weights[i] += w
	h.total += w
	h.min, h.max = min(h.min, i), max(h.max, i)
}

// SubtractSample removes a sample added earlier with the same value, weight and time.
func (h *Histogram) SubtractSample(value, weight float64, t time.Time) {
	if !(weight > 0) || math.IsNaN(value) {
		return
	}
	w := weight * h.factor(t)
	i := h.buckets.Find(value)
	h.weights[i] = math.Max(0, h.weights[i]-w)
	if h.weights[i] < epsilon {
		h.weights[i] = 0
	}
	h.total = math.Max(0, h.total-w)
	h.updateRange()
}

func (h *Histogram) updateRange() {
	h.min, h.max = h.buckets.Len(), -1
	for i, w := range h.weights {
		if w >= epsilon {
			h.min, h.max = min(h.min, i), max(h.max, i)
		}
	}
	if h.max < 0 {
		h.total = 0
	}
}

// Percentile returns the upper edge of the bucket in which the cumulative weight reaches
// p (0..1) of the total: an estimate never below the true percentile. 0 when empty.
func (h *Histogram) Percentile(p float64) float64 {
	if h.IsEmpty() {
		return 0
	}
	threshold := p * h.total
	sum := 0.0
	i := h.min
	for ; i < h.max; i++ {
		sum += h.weights[i]
		if sum >= threshold {
			break
		}
	}
	if i+1 < h.buckets.Len() {
		return h.buckets.Start(i + 1)
	}
	return h.buckets.Start(i)
}

// checkpointScale is the weight of the heaviest bucket in a checkpoint; the others are
// stored relative to it, as integers.
const checkpointScale = 10000

// Checkpoint saves the histogram in the VerticalPodAutoscalerCheckpoint format: weights scaled
// so the heaviest bucket is 10000, the real total in TotalWeight.
func (h *Histogram) Checkpoint() vpav1.HistogramCheckpoint {
	cp := vpav1.HistogramCheckpoint{ReferenceTimestamp: metav1.NewTime(h.reference), BucketWeights: map[int]uint32{}}
	if h.IsEmpty() {
		return cp
	}
	heaviest := 0.0
	for i := h.min; i <= h.max; i++ {
		heaviest = math.Max(heaviest, h.weights[i])
	}
	for i := h.min; i <= h.max; i++ {
		if w := uint32(math.Round(h.weights[i] / heaviest * checkpointScale)); w > 0 {
			cp.BucketWeights[i] = w
		}
	}
	cp.TotalWeight = h.total
	return cp
}

// ErrBadCheckpoint is returned for a checkpoint that does not fit the histogram.
var ErrBadCheckpoint = errors.New("checkpoint does not fit the histogram")

// Restore replaces the histogram's contents with a checkpoint's.
func (h *Histogram) Restore(cp vpav1.HistogramCheckpoint) error {
	if cp.TotalWeight < 0 || math.IsNaN(cp.TotalWeight) || math.IsInf(cp.TotalWeight, 0) {
		return fmt.Errorf("%w: total weight %g", ErrBadCheckpoint, cp.TotalWeight)
	}
	sum := 0.0
	for i, w := range cp.BucketWeights {
		if i < 0 || i >= h.buckets.Len() {
			return fmt.Errorf("%w: bucket %d outside 0..%d", ErrBadCheckpoint, i, h.buckets.Len()-1)
		}
		sum += float64(w)
	}
	clear(h.weights)
	h.total = 0
	h.reference = cp.ReferenceTimestamp.Time
	if sum > 0 && cp.TotalWeight > 0 {
		for i, w := range cp.BucketWeights {
			h.weights[i] = float64(w) / sum * cp.TotalWeight
		}
		h.total = cp.TotalWeight
	}
	h.updateRange()
	return nil
}
