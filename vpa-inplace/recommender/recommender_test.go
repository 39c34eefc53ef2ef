package recommender

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

var t0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

const mib = 1 << 20

func TestBucketsFindAndStart(t *testing.T) {
	b, err := NewBuckets(1000, 0.01, 1.05)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{-1, 0, 0.005, 0.01, 0.0205, 0.5, 1, 3.3, 999, 1000, 5000} {
		i := b.Find(v)
		if i < 0 || i >= b.Len() {
			t.Fatalf("Find(%g) = %d outside 0..%d", v, i, b.Len()-1)
		}
		if v >= 0 && v < 1000 && (b.Start(i) > v || (i+1 < b.Len() && b.Start(i+1) <= v)) {
			t.Errorf("Find(%g) = %d covering [%g, %g)", v, i, b.Start(i), b.Start(i+1))
		}
	}
	if b.Start(b.Len()-1) < 1000*0.95 {
		t.Errorf("last bucket starts at %g, below the range max", b.Start(b.Len()-1))
	}
	for _, bad := range [][3]float64{{0, 0.01, 1.05}, {10, 0, 1.05}, {10, 1, 1}, {math.Inf(1), 1, 2}} {
		if _, err := NewBuckets(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("NewBuckets%v accepted", bad)
		}
	}
}

func TestHistogramPercentileNeverBelowTruth(t *testing.T) {
	h := NewHistogram(cpuBuckets, time.Hour)
	for i := 1; i <= 100; i++ {
		h.AddSample(float64(i)/100, 1, t0)
	}
	for _, p := range []float64{0.5, 0.9, 0.95} {
		got := h.Percentile(p)
		if got < p || got > p*1.06+0.01 {
			t.Errorf("p%v = %g, want within one 5%% bucket above %g", p*100, got, p)
		}
	}
	if NewHistogram(cpuBuckets, time.Hour).Percentile(0.9) != 0 {
		t.Error("empty histogram has a percentile")
	}
}

func TestHistogramDecayHalvesOldWeight(t *testing.T) {
	h := NewHistogram(cpuBuckets, time.Hour)
	h.AddSample(1, 1, t0)                      // weight 1 after one more hour
	h.AddSample(2, 1, t0.Add(time.Hour))       // weight 2 relative to the first
	h.AddSample(2, 1e-12, t0.Add(2*time.Hour)) // keeps the newest time
	// Cumulative weight of the low sample is 1/3 of the total: p30 is low, p40 high.
	if got := h.Percentile(0.3); got > 1.1 {
		t.Errorf("p30 = %g, want about 1", got)
	}
	if got := h.Percentile(0.4); got < 2 {
		t.Errorf("p40 = %g, want about 2", got)
	}
}

func TestHistogramReferenceShiftKeepsProportions(t *testing.T) {
	h := NewHistogram(cpuBuckets, time.Minute)
	h.AddSample(1, 1, t0)
	// 150 half-lives later the factor would overflow past 2^100; the reference moves.
	late := t0.Add(150 * time.Minute)
	h.AddSample(3, 1, late)
	h.AddSample(3, 1, late.Add(time.Minute))
	if math.IsInf(h.total, 0) || math.IsNaN(h.total) {
		t.Fatalf("total weight %g", h.total)
	}
	if got := h.Percentile(0.01); got < 3 {
		t.Errorf("p1 = %g: the ancient sample still counts", got)
	}
}

func TestSubtractSample(t *testing.T) {
	h := NewHistogram(memoryBuckets, time.Hour)
	h.AddSample(100*mib, 1, t0)
	h.SubtractSample(100*mib, 1, t0)
	if !h.IsEmpty() {
		t.Fatalf("histogram not empty after subtracting its only sample: total %g", h.total)
	}
	h.AddSample(200*mib, 1, t0)
	if got := h.Percentile(1); got < 200*mib {
		t.Errorf("p100 = %g after re-adding, want >= 200Mi", got)
	}
}

// feed adds n samples one minute apart from start, usage given per minute index.
func feed(c *Container, cfg Config, start time.Time, n int, usage func(i int) (cpu, mem float64)) time.Time {
	var at time.Time
	for i := range n {
		at = start.Add(time.Duration(i) * time.Minute)
		cpu, mem := usage(i)
		c.Add("pod", Sample{Time: at, CPUCores: cpu, MemoryBytes: mem, CPURequestCores: 0.5}, cfg)
	}
	return at
}

func TestEstimate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MemoryAggregationInterval = time.Minute
	cases := []struct {
		name                     string
		samples                  int
		usage                    func(i int) (float64, float64)
		oom                      float64 // memory at an OOM kill after the samples, bytes
		wantCPU, wantMem         [2]float64
		wantLowerCPUBelowTargetX float64
	}{
		{
			name: "steady usage → usage plus the 15% margin", samples: 600,
			usage:   func(int) (float64, float64) { return 0.2, 300 * mib },
			wantCPU: [2]float64{0.23, 0.25}, wantMem: [2]float64{345 * mib, 367 * mib},
		},
		{
			name: "a short spike does not move the 90th percentile", samples: 600,
			usage: func(i int) (float64, float64) {
				if i%100 == 0 {
					return 4, 2000 * mib
				}
				return 0.2, 300 * mib
			},
			wantCPU: [2]float64{0.23, 0.25}, wantMem: [2]float64{345 * mib, 367 * mib},
		},
		{
			name: "a sustained rise moves it", samples: 600,
			usage: func(i int) (float64, float64) {
				if i%4 == 0 {
					return 0.2, 300 * mib
				}
				return 1, 600 * mib
			},
			wantCPU: [2]float64{1.15, 1.22}, wantMem: [2]float64{690 * mib, 730 * mib},
		},
		{
			name: "tiny usage → the pod minimums", samples: 60,
			usage:   func(int) (float64, float64) { return 0.001, 1 * mib },
			wantCPU: [2]float64{0.025, 0.025}, wantMem: [2]float64{250 * mib, 250 * mib},
		},
		{
			name: "an OOM kill bumps memory above the limit it died at", samples: 60,
			usage:   func(int) (float64, float64) { return 0.2, 300 * mib },
			oom:     400 * mib,
			wantCPU: [2]float64{0.23, 0.25}, wantMem: [2]float64{500 * mib * 1.15, 500 * mib * 1.15 * 1.06},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewContainer(cfg, 0)
			last := feed(c, cfg, t0, tc.samples, tc.usage)
			if tc.oom > 0 {
				// Ten OOM samples in a row: the newest windows dominate the percentile.
				for i := 1; i <= tc.samples; i++ {
					c.RecordOOM("pod", last.Add(time.Duration(i)*time.Minute), tc.oom, cfg, 0, -1)
				}
			}
			e, ok := c.Estimate(cfg, 1)
			if !ok {
				t.Fatal("no estimate")
			}
			cpu, mem := float64(e.Target.CPUMillis)/1000, float64(e.Target.MemoryBytes)
			if cpu < tc.wantCPU[0] || cpu > tc.wantCPU[1] {
				t.Errorf("target cpu %g, want in %v", cpu, tc.wantCPU)
			}
			if mem < tc.wantMem[0] || mem > tc.wantMem[1]+mib {
				t.Errorf("target memory %gMi, want in [%g, %g]Mi", mem/mib, tc.wantMem[0]/mib, tc.wantMem[1]/mib)
			}
			if e.Lower.CPUMillis > e.Target.CPUMillis || e.Upper.CPUMillis < e.Target.CPUMillis ||
				e.Lower.MemoryBytes > e.Target.MemoryBytes || e.Upper.MemoryBytes < e.Target.MemoryBytes {
				t.Errorf("bounds out of order: %+v", e)
			}
			if e.Target.MemoryBytes%mib != 0 {
				t.Errorf("memory %d not in whole MiB", e.Target.MemoryBytes)
			}
		})
	}
}

func TestEstimateEmptyAndBoundsNarrowWithHistory(t *testing.T) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	if _, ok := c.Estimate(cfg, 1); ok {
		t.Fatal("estimate without samples")
	}
	steady := func(int) (float64, float64) { return 0.5, 500 * mib }
	feed(c, cfg, t0, 30, steady)
	young, _ := c.Estimate(cfg, 1)
	feed(c, cfg, t0.Add(time.Hour), 3*1440, steady)
	old, _ := c.Estimate(cfg, 1)
	if old.Upper.CPUMillis >= young.Upper.CPUMillis || old.Lower.CPUMillis < young.Lower.CPUMillis {
		t.Errorf("bounds did not narrow with three days of history: young %+v, old %+v", young, old)
	}
	if float64(old.Upper.CPUMillis) > 1.5*float64(old.Target.CPUMillis) {
		t.Errorf("upper bound %dm far above target %dm after three days", old.Upper.CPUMillis, old.Target.CPUMillis)
	}
}

// Decay on the recommender's time line: after a quiet period ten half-lives long the old
// high usage no longer holds the target up.
func TestEstimateFollowsDecay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HalfLife = 10 * time.Minute
	cfg.MemoryAggregationInterval = time.Minute
	c := NewContainer(cfg, 0)
	last := feed(c, cfg, t0, 120, func(int) (float64, float64) { return 2, 2000 * mib })
	high, _ := c.Estimate(cfg, 1)
	feed(c, cfg, last.Add(time.Minute), 100, func(int) (float64, float64) { return 0.2, 200 * mib })
	low, _ := c.Estimate(cfg, 1)
	if high.Target.CPUMillis < 2000 || low.Target.CPUMillis > 300 {
		t.Errorf("cpu target %dm → %dm, want ≥2000m then ≤300m", high.Target.CPUMillis, low.Target.CPUMillis)
	}
	if low.Target.MemoryBytes > 300*mib {
		t.Errorf("memory target %dMi after decay, want ≤300Mi", low.Target.MemoryBytes/mib)
	}
}

func TestAddIgnoresRepeatsAndBadValues(t *testing.T) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	if !c.Add("pod", Sample{Time: t0, CPUCores: 1, MemoryBytes: mib}, cfg) {
		t.Fatal("first sample refused")
	}
	if c.Add("pod", Sample{Time: t0, CPUCores: 9, MemoryBytes: mib}, cfg) {
		t.Error("same window added twice")
	}
	if c.Add("pod", Sample{Time: t0.Add(time.Minute), CPUCores: math.NaN(), MemoryBytes: mib}, cfg) {
		t.Error("NaN sample added")
	}
	if c.Samples() != 1 {
		t.Errorf("samples %d, want 1", c.Samples())
	}
}

// Pods on one node report usage at the same instant: each pod's sample counts, the CPU
// histogram holds every pod's usage, and each pod's memory peak is its own sample.
func TestAddCountsEveryPodAtTheSameInstant(t *testing.T) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	usage := map[string]float64{"a": 0.1, "b": 0.2, "c": 2} // cores; memory is usage × 1Gi
	for minute := range 3 {
		at := t0.Add(time.Duration(minute) * time.Minute)
		for _, pod := range []string{"a", "b", "c"} {
			if !c.Add(pod, Sample{Time: at, CPUCores: usage[pod], MemoryBytes: usage[pod] * 1024 * mib, CPURequestCores: 1}, cfg) {
				t.Fatalf("minute %d: pod %s's sample refused", minute, pod)
			}
		}
	}
	if c.Samples() != 9 || c.Pods() != 3 {
		t.Errorf("samples %d from %d pods, want 9 from 3", c.Samples(), c.Pods())
	}
	// A third of the CPU weight is at 2 cores: the 90th percentile is there, the 50th is not.
	if p := c.cpu.Percentile(0.9); p < 2 {
		t.Errorf("CPU p90 %g cores, want ≥ 2 (pod c's usage)", p)
	}
	if p := c.cpu.Percentile(0.5); p >= 2 {
		t.Errorf("CPU p50 %g cores, want below pod c's 2", p)
	}
	// One memory sample per pod and window: three samples of weight 1, one of them pod c's 2Gi.
	if total := c.memory.total; math.Abs(total-3) > 1e-9 {
		t.Errorf("memory histogram weight %g, want 3 (one window peak per pod)", total)
	}
	if p := c.memory.Percentile(1); p < 2048*mib {
		t.Errorf("memory peak %g, want ≥ 2Gi (pod c's)", p)
	}
	if c.Add("a", Sample{Time: t0.Add(2 * time.Minute), CPUCores: 5, MemoryBytes: mib}, cfg) {
		t.Error("pod a's repeated sample taken")
	}
	c.Forget(func(pod string) bool { return pod != "b" })
	if c.Pods() != 2 {
		t.Errorf("%d pods kept after forgetting b, want 2", c.Pods())
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	feed(c, cfg, t0, 500, func(i int) (float64, float64) { return 0.1 + float64(i%10)/10, float64(100+i%50) * mib })
	want, _ := c.Estimate(cfg, 2)
	cp := c.Checkpoint(metav1.NewTime(t0.Add(time.Hour)))
	if cp.Version != CheckpointVersion || cp.TotalSamplesCount != 500 {
		t.Fatalf("checkpoint header %q/%d", cp.Version, cp.TotalSamplesCount)
	}
	restored := NewContainer(cfg, 0)
	if err := restored.Restore(cp, cfg); err != nil {
		t.Fatal(err)
	}
	got, ok := restored.Estimate(cfg, 2)
	if !ok {
		t.Fatal("no estimate from the restored history")
	}
	// Weights round to 1/10000 of the heaviest bucket: percentiles stay in the same bucket.
	if got != want {
		t.Errorf("restored estimate %+v, want %+v", got, want)
	}
	if !restored.LastSample().Equal(c.LastSample()) || restored.Samples() != c.Samples() {
		t.Errorf("restored times/samples differ")
	}
	// A sample the original saw is not added again; a newer one is.
	if restored.Add("pod", Sample{Time: c.LastSample(), CPUCores: 5, MemoryBytes: mib}, cfg) {
		t.Error("restored history took an old sample")
	}
	if restored.Add("other", Sample{Time: c.LastSample(), CPUCores: 5, MemoryBytes: mib}, cfg) {
		t.Error("restored history took a sample from before the checkpoint for a pod it has not seen")
	}
	if !restored.Add("other", Sample{Time: c.LastSample().Add(time.Minute), CPUCores: 5, MemoryBytes: mib}, cfg) {
		t.Error("restored history refused a newer sample")
	}
}

func TestRestoreRejectsForeignCheckpoints(t *testing.T) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	feed(c, cfg, t0, 10, func(int) (float64, float64) { return 1, 100 * mib })
	before, _ := c.Estimate(cfg, 1)
	for name, cp := range map[string]vpav1.VerticalPodAutoscalerCheckpointStatus{
		"upstream version": {Version: "v3"},
		"bucket outside":   {Version: CheckpointVersion, CPUHistogram: vpav1.HistogramCheckpoint{BucketWeights: map[int]uint32{100000: 1}, TotalWeight: 1}},
		"negative total":   {Version: CheckpointVersion, MemoryHistogram: vpav1.HistogramCheckpoint{TotalWeight: -1}},
	} {
		if err := c.Restore(cp, cfg); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%s: err %v, want ErrBadCheckpoint", name, err)
		}
	}
	if after, _ := c.Estimate(cfg, 1); after != before {
		t.Error("a rejected checkpoint changed the history")
	}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func TestApplyPolicy(t *testing.T) {
	e := Estimate{
		Target: Resources{CPUMillis: 500, MemoryBytes: 512 * mib},
		Lower:  Resources{CPUMillis: 100, MemoryBytes: 128 * mib},
		Upper:  Resources{CPUMillis: 4000, MemoryBytes: 4096 * mib},
	}
	onlyCPU := []corev1.ResourceName{corev1.ResourceCPU}
	cases := []struct {
		name   string
		policy *vpav1.ContainerResourcePolicy
		target corev1.ResourceList
		upper  corev1.ResourceList
	}{
		{"no policy", nil, corev1.ResourceList{"cpu": q("500m"), "memory": q("512Mi")}, corev1.ResourceList{"cpu": q("4"), "memory": q("4Gi")}},
		{"capped at maxAllowed, raised to minAllowed", &vpav1.ContainerResourcePolicy{
			MinAllowed: corev1.ResourceList{"memory": q("1Gi")}, MaxAllowed: corev1.ResourceList{"cpu": q("300m"), "memory": q("2Gi")},
		}, corev1.ResourceList{"cpu": q("300m"), "memory": q("1Gi")}, corev1.ResourceList{"cpu": q("300m"), "memory": q("2Gi")}},
		{"controlled cpu only", &vpav1.ContainerResourcePolicy{ControlledResources: &onlyCPU},
			corev1.ResourceList{"cpu": q("500m")}, corev1.ResourceList{"cpu": q("4")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := Apply("app", e, tc.policy)
			if !equality.Semantic.DeepEqual(rec.Target, tc.target) || !equality.Semantic.DeepEqual(rec.UpperBound, tc.upper) {
				t.Errorf("target %v upper %v, want %v %v", rec.Target, rec.UpperBound, tc.target, tc.upper)
			}
			if u := rec.UncappedTarget[corev1.ResourceCPU]; u.Cmp(q("500m")) != 0 {
				t.Errorf("uncapped cpu %s, want 500m", u.String())
			}
		})
	}
}

func TestPolicyForAndOff(t *testing.T) {
	off := vpav1.ContainerScalingModeOff
	p := &vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{
		{ContainerName: "*", MaxAllowed: corev1.ResourceList{"cpu": q("1")}},
		{ContainerName: "sidecar", Mode: &off},
	}}
	if !Off(PolicyFor(p, "sidecar")) || Off(PolicyFor(p, "app")) {
		t.Error("mode Off not found for sidecar only")
	}
	if PolicyFor(p, "app").ContainerName != "*" || PolicyFor(nil, "app") != nil {
		t.Error("wildcard fallback wrong")
	}
}

func TestValidatePolicy(t *testing.T) {
	gpu := []corev1.ResourceName{"nvidia.com/gpu"}
	cases := []struct {
		name string
		cp   vpav1.ContainerResourcePolicy
		want string
	}{
		{"ok", vpav1.ContainerResourcePolicy{ContainerName: "app", MinAllowed: corev1.ResourceList{"cpu": q("100m")}, MaxAllowed: corev1.ResourceList{"cpu": q("1")}}, ""},
		{"min above max", vpav1.ContainerResourcePolicy{ContainerName: "app", MinAllowed: corev1.ResourceList{"cpu": q("2")}, MaxAllowed: corev1.ResourceList{"cpu": q("1")}}, "minAllowed.cpu (2) is above maxAllowed.cpu (1)"},
		{"unknown controlled resource", vpav1.ContainerResourcePolicy{ContainerName: "app", ControlledResources: &gpu}, `"nvidia.com/gpu" is not supported`},
		{"negative quantity", vpav1.ContainerResourcePolicy{ContainerName: "app", MaxAllowed: corev1.ResourceList{"memory": q("-1Gi")}}, "maxAllowed.memory is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePolicy(&vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{tc.cp}})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidPolicy)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.LowerPercentile = 0.99
	if bad.Validate() == nil {
		t.Error("lower percentile above target accepted")
	}
	bad = DefaultConfig()
	bad.HalfLife = 0
	if bad.Validate() == nil {
		t.Error("zero half-life accepted")
	}
}
