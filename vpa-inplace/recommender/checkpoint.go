package recommender

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// CheckpointVersion marks checkpoints written by this recommender. Its buckets differ from
// upstream VPA's ("v3"), so each side reads only its own.
const CheckpointVersion = "lockstep/v1"

// Checkpoint saves the history in the VerticalPodAutoscalerCheckpoint status format.
func (c *Container) Checkpoint(now metav1.Time) vpav1.VerticalPodAutoscalerCheckpointStatus {
	return vpav1.VerticalPodAutoscalerCheckpointStatus{
		LastUpdateTime:    now,
		Version:           CheckpointVersion,
		CPUHistogram:      c.cpu.Checkpoint(),
		MemoryHistogram:   c.memory.Checkpoint(),
		FirstSampleStart:  metav1.NewTime(c.first),
		LastSampleStart:   metav1.NewTime(c.last),
		TotalSamplesCount: c.samples,
	}
}

// Restore replaces the history with a checkpoint's. A checkpoint of another version or
// one that does not fit the histograms is an error and leaves the history unchanged.
func (c *Container) Restore(cp vpav1.VerticalPodAutoscalerCheckpointStatus, cfg Config) error {
	if cp.Version != CheckpointVersion {
		return fmt.Errorf("%w: version %q, want %q", ErrBadCheckpoint, cp.Version, CheckpointVersion)
	}
	if cp.TotalSamplesCount < 0 {
		return fmt.Errorf("%w: %d samples", ErrBadCheckpoint, cp.TotalSamplesCount)
	}
	cpu := NewHistogram(cpuBuckets, cfg.HalfLife)
	if err := cpu.Restore(cp.CPUHistogram); err != nil {
		return fmt.Errorf("cpu histogram: %w", err)
	}
	memory := NewHistogram(memoryBuckets, cfg.HalfLife)
	if err := memory.Restore(cp.MemoryHistogram); err != nil {
		return fmt.Errorf("memory histogram: %w", err)
	}
	c.cpu, c.memory = cpu, memory
	c.first, c.last, c.samples = cp.FirstSampleStart.Time, cp.LastSampleStart.Time, cp.TotalSamplesCount
	// Each pod's window peak is inside the restored histograms but no longer known on its
	// own: pods start afresh, and samples up to the checkpoint's newest are taken as counted.
	c.pods, c.restored = map[string]*podWindow{}, c.last
	return nil
}
