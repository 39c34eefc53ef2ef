package recommender

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// Checkpoints are read back from objects anyone with write access can edit: any content either
// restores into a usable history or is refused, never a panic or a NaN estimate.
func FuzzRestoreCheckpoint(f *testing.F) {
	cfg := DefaultConfig()
	c := NewContainer(cfg, 0)
	c.Add("pod", Sample{Time: time.Unix(1e9, 0), CPUCores: 0.5, MemoryBytes: 1e8}, cfg)
	seed, err := json.Marshal(c.Checkpoint(metav1.NewTime(time.Unix(1e9, 0))))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":"lockstep/v1","cpuHistogram":{"bucketWeights":{"-1":5},"totalWeight":1}}`))
	f.Add([]byte(`{"version":"lockstep/v1","memoryHistogram":{"bucketWeights":{"3":4294967295,"900":1},"totalWeight":1e308},"totalSamplesCount":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cp vpav1.VerticalPodAutoscalerCheckpointStatus
		if json.Unmarshal(data, &cp) != nil {
			return
		}
		h := NewContainer(cfg, 0)
		if err := h.Restore(cp, cfg); err != nil {
			return
		}
		if e, ok := h.Estimate(cfg, 1); ok && (e.Target.CPUMillis < 0 || e.Target.MemoryBytes < 0) {
			t.Fatalf("negative estimate %+v from %s", e, data)
		}
		h.Add("pod", Sample{Time: h.LastSample().Add(time.Minute), CPUCores: 1, MemoryBytes: 1e9}, cfg)
	})
}
