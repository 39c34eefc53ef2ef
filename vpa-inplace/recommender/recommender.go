// Package recommender computes VerticalPodAutoscaler recommendations from usage samples. It is
// pure: decaying histograms of each container's CPU and memory usage, percentiles with a
// safety margin and confidence-scaled bounds, OOM bumps, the VPA's resource policy, and
// checkpoints in the VerticalPodAutoscalerCheckpoint format so a restart keeps the history.
package recommender

import (
	"fmt"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Config tunes the recommender. DefaultConfig holds the defaults.
type Config struct {
	// HalfLife is how fast old samples lose weight: a sample counts half after one
	// HalfLife. Upstream VPA uses 24h; web workloads that shift with the hour want less.
	HalfLife time.Duration
	// TargetPercentile, LowerPercentile and UpperPercentile (0..1) of the usage histograms
	// give the target and the bounds.
	TargetPercentile, LowerPercentile, UpperPercentile float64
	// SafetyMargin is added on top of every percentile (0.15 = 15 %).
	SafetyMargin float64
	// PodMinCPU and PodMinMemory are the smallest recommendation for a whole pod, shared
	// equally by its containers (millicores and bytes).
	PodMinCPUMillis, PodMinMemoryBytes int64
	// MemoryAggregationInterval is the window whose peak memory usage is one sample.
	MemoryAggregationInterval time.Duration
	// OOMBumpUpRatio and OOMMinBumpUpBytes raise memory after an OOM kill: a sample of
	// max(memory × ratio, memory + min bump) is recorded.
	OOMBumpUpRatio    float64
	OOMMinBumpUpBytes int64
	// MinCPUSampleWeight is the weight of a CPU sample from a container without a CPU
	// request (cores); samples are otherwise weighted by the container's request.
	MinCPUSampleWeight float64
}

// DefaultConfig returns the defaults: 24h half-life, target at the 90th percentile, bounds at
// the 50th and 95th, 15 % margin, 25m CPU and 250Mi memory per pod at least, 24h memory
// windows, OOM bump 1.2× or +100Mi.
func DefaultConfig() Config {
	return Config{
		HalfLife:                  24 * time.Hour,
		TargetPercentile:          0.9,
		LowerPercentile:           0.5,
		UpperPercentile:           0.95,
		SafetyMargin:              0.15,
		PodMinCPUMillis:           25,
		PodMinMemoryBytes:         250 << 20,
		MemoryAggregationInterval: 24 * time.Hour,
		OOMBumpUpRatio:            1.2,
		OOMMinBumpUpBytes:         100 << 20,
		MinCPUSampleWeight:        0.1,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.HalfLife <= 0:
		return fmt.Errorf("half-life must be positive, got %s", c.HalfLife)
	case !inUnit(c.TargetPercentile) || !inUnit(c.LowerPercentile) || !inUnit(c.UpperPercentile):
		return fmt.Errorf("percentiles must be in (0, 1], got target %g, lower %g, upper %g", c.TargetPercentile, c.LowerPercentile, c.UpperPercentile)
	case c.LowerPercentile > c.TargetPercentile || c.TargetPercentile > c.UpperPercentile:
		return fmt.Errorf("percentiles must be ordered lower <= target <= upper, got %g, %g, %g", c.LowerPercentile, c.TargetPercentile, c.UpperPercentile)
	case c.SafetyMargin < 0 || math.IsNaN(c.SafetyMargin):
		return fmt.Errorf("safety margin must not be negative, got %g", c.SafetyMargin)
	case c.PodMinCPUMillis < 0 || c.PodMinMemoryBytes < 0:
		return fmt.Errorf("pod minimums must not be negative")
	case c.MemoryAggregationInterval <= 0:
		return fmt.Errorf("memory aggregation interval must be positive, got %s", c.MemoryAggregationInterval)
	case c.OOMBumpUpRatio < 1 || c.OOMMinBumpUpBytes < 0:
		return fmt.Errorf("OOM bump ratio must be at least 1 and the minimum bump not negative")
	case !(c.MinCPUSampleWeight > 0):
		return fmt.Errorf("minimum CPU sample weight must be positive, got %g", c.MinCPUSampleWeight)
	}
	return nil
}

func inUnit(p float64) bool { return p > 0 && p <= 1 }

// Histogram ranges: CPU from 10 millicores to 1000 cores, memory from 10 MB to 1 TB, each
// bucket 5 % wider than the one before.
var (
	cpuBuckets    = mustBuckets(1000, 0.01, 1.05)
	memoryBuckets = mustBuckets(1e12, 1e7, 1.05)
)

func mustBuckets(max, first, ratio float64) Buckets {
	b, err := NewBuckets(max, first, ratio)
	if err != nil {
		panic(err) // constant arguments: a failure is a programming error caught by every test
	}
	return b
}

// Sample is one usage observation of a container.
type Sample struct {
	// Time is when the usage was measured (the end of the metrics window).
	Time time.Time
	// CPUCores is the average CPU usage over the window; MemoryBytes the working set.
	CPUCores    float64
	MemoryBytes float64
	// CPURequestCores is the container's CPU request at the time, which weighs the sample.
	CPURequestCores float64
}

// Container is the usage history of one container of a VPA's pods: every pod's samples go
// into the same histograms, and each pod's container keeps its own newest sample time and
// memory window (as upstream VPA keeps per container state under its aggregates), so pods
// that report at the same instant each count.
type Container struct {
	cpu, memory *Histogram
	first, last time.Time
	samples     int
	interval    time.Duration
	// pods is each pod's container's newest sample and current memory window, by the key the
	// caller gives (a pod's UID). Forget prunes it as pods go.
	pods map[string]*podWindow
	// restored is the newest sample time of a restored checkpoint: a pod not seen since the
	// restore may have been counted in it up to then.
	restored time.Time
}

// podWindow is one pod's container's newest sample and the peak memory of its current window.
type podWindow struct {
	last       time.Time
	window     time.Time
	windowPeak float64
}

// NewContainer returns an empty history. memoryInterval overrides the config's memory
// aggregation interval when positive (the VPA's memoryAggregationIntervalSeconds).
func NewContainer(cfg Config, memoryInterval time.Duration) *Container {
	if memoryInterval <= 0 {
		memoryInterval = cfg.MemoryAggregationInterval
	}
	return &Container{
		cpu:      NewHistogram(cpuBuckets, cfg.HalfLife),
		memory:   NewHistogram(memoryBuckets, cfg.HalfLife),
		interval: memoryInterval,
		pods:     map[string]*podWindow{},
	}
}

// Samples is how many samples the history holds (restored ones included).
func (c *Container) Samples() int { return c.samples }

// LastSample is the time of the newest sample of any pod; zero when there is none.
func (c *Container) LastSample() time.Time { return c.last }

// Pods is how many pods' containers the history keeps a window for.
func (c *Container) Pods() int { return len(c.pods) }

// Add records a sample of the pod's container (pod is a key of the caller's, e.g. the pod's
// UID). A sample not newer than that pod's last one is ignored (the same metrics window read
// twice), as are invalid values; Add then returns false. Other pods' samples at the same
// instant count.
func (c *Container) Add(pod string, s Sample, cfg Config) bool {
	w := c.pods[pod]
	switch {
	case w != nil && !s.Time.After(w.last):
		return false
	case w == nil && !c.restored.IsZero() && !s.Time.After(c.restored):
		return false
	case s.CPUCores < 0 || s.MemoryBytes < 0 || math.IsNaN(s.CPUCores) || math.IsNaN(s.MemoryBytes):
		return false
	}
	if w == nil {
		w = &podWindow{}
		c.pods[pod] = w
	}
	c.cpu.AddSample(s.CPUCores, math.Max(s.CPURequestCores, cfg.MinCPUSampleWeight), s.Time)
	c.addMemoryPeak(w, s.MemoryBytes, s.Time)
	w.last = s.Time
	c.note(s.Time)
	c.samples++
	return true
}

// note widens the history's time span to t.
func (c *Container) note(t time.Time) {
	if c.first.IsZero() || t.Before(c.first) {
		c.first = t
	}
	if t.After(c.last) {
		c.last = t
	}
}

// addMemoryPeak keeps one memory sample per pod and window: that pod's peak in the window.
func (c *Container) addMemoryPeak(w *podWindow, bytes float64, t time.Time) {
	window := t.Truncate(c.interval)
	if !w.window.IsZero() && window.Equal(w.window) {
		if bytes <= w.windowPeak {
			return
		}
		c.memory.SubtractSample(w.windowPeak, 1, window)
	}
	w.window, w.windowPeak = window, bytes
	c.memory.AddSample(bytes, 1, window)
}

// Forget drops the per-pod state of pods for which live returns false, so the history's
// memory follows the pods that exist. The histograms keep their samples.
func (c *Container) Forget(live func(pod string) bool) {
	for k := range c.pods {
		if !live(k) {
			delete(c.pods, k)
		}
	}
}

// RecordOOM records that the pod's container was killed for running out of memory while it
// had memoryBytes (its limit, or its usage when higher): the memory history gets a bumped
// sample in that pod's window.
func (c *Container) RecordOOM(pod string, t time.Time, memoryBytes float64, cfg Config, ratio float64, minBump int64) {
	if ratio < 1 {
		ratio = cfg.OOMBumpUpRatio
	}
	if minBump < 0 {
		minBump = cfg.OOMMinBumpUpBytes
	}
	w := c.pods[pod]
	if w == nil {
		w = &podWindow{}
		c.pods[pod] = w
	}
	bumped := math.Max(memoryBytes*ratio, memoryBytes+float64(minBump))
	c.addMemoryPeak(w, bumped, t)
	c.note(t)
}

// Resources is a recommendation for one resource pair, in millicores and bytes.
type Resources struct {
	CPUMillis   int64
	MemoryBytes int64
}

// Estimate is a container's recommendation before the VPA's policy caps it.
type Estimate struct {
	Target, Lower, Upper Resources
}

// Estimate computes the recommendation for one of containers containers of a pod. ok is
// false when the history is empty.
func (c *Container) Estimate(cfg Config, containers int) (Estimate, bool) {
	if c.samples == 0 || c.cpu.IsEmpty() || c.memory.IsEmpty() {
		return Estimate{}, false
	}
	containers = max(containers, 1)
	margin := 1 + cfg.SafetyMargin
	conf := c.confidence()
	// Little history widens the bounds: the upper one grows with 1/confidence, the lower one
	// shrinks towards zero; with a day of history they are within a few percent of the percentiles.
	upperScale := 1 + 1/conf
	lowerScale := math.Pow(1+0.001/conf, -2)
	minCPU := float64(cfg.PodMinCPUMillis) / 1000 / float64(containers)
	minMem := float64(cfg.PodMinMemoryBytes) / float64(containers)
	pick := func(p, scale float64) Resources {
		cpu := math.Max(c.cpu.Percentile(p)*margin*scale, minCPU)
		mem := math.Max(c.memory.Percentile(p)*margin*scale, minMem)
		return Resources{CPUMillis: ceilMillis(cpu), MemoryBytes: ceilMiB(mem)}
	}
	e := Estimate{
		Target: pick(cfg.TargetPercentile, 1),
		Lower:  pick(cfg.LowerPercentile, lowerScale),
		Upper:  pick(cfg.UpperPercentile, upperScale),
	}
	// Rounding and the minimums can invert the order on tiny values; keep lower <= target <= upper.
	e.Lower = Resources{min(e.Lower.CPUMillis, e.Target.CPUMillis), min(e.Lower.MemoryBytes, e.Target.MemoryBytes)}
	e.Upper = Resources{max(e.Upper.CPUMillis, e.Target.CPUMillis), max(e.Upper.MemoryBytes, e.Target.MemoryBytes)}
	return e, true
}

// confidence is the history's length in days, counted both in wall time and in samples (one
// per minute is a full day at 1,440), whichever is less; never zero.
func (c *Container) confidence() float64 {
	lifespan := c.last.Sub(c.first).Hours() / 24
	bySamples := float64(c.samples) / (24 * 60)
	return math.Max(math.Min(lifespan, bySamples), 1e-3)
}

// ceilMillis rounds cores up to whole millicores.
func ceilMillis(cores float64) int64 { return int64(math.Ceil(cores*1000 - 1e-9)) }

// ceilMiB rounds bytes up to whole mebibytes, so recommendations read as 123Mi.
func ceilMiB(bytes float64) int64 {
	const mib = 1 << 20
	return int64(math.Ceil(bytes/mib-1e-9)) * mib
}

// CPUQuantity and MemoryQuantity format a recommendation the way users write requests.
func (r Resources) CPUQuantity() resource.Quantity {
	return *resource.NewMilliQuantity(r.CPUMillis, resource.DecimalSI)
}

// MemoryQuantity returns the memory as a binary-SI quantity (e.g. 256Mi).
func (r Resources) MemoryQuantity() resource.Quantity {
	return *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
}
