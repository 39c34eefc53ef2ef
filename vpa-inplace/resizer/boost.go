package resizer

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// boostPolicy returns the CPU startup boost for a container: its policy's, else the VPA's.
func boostPolicy(vpa *vpav1.VerticalPodAutoscaler, p *vpav1.ContainerResourcePolicy) *vpav1.GenericStartupBoost {
	if p != nil && p.StartupBoost != nil && p.StartupBoost.CPU != nil {
		return p.StartupBoost.CPU
	}
	if vpa.Spec.StartupBoost != nil {
		return vpa.Spec.StartupBoost.CPU
	}
	return nil
}

// boostedCPU is the boosted CPU request: factor × target, or the fixed quantity. Unknown boost
// types give no boost (as the API documents).
func boostedCPU(b *vpav1.GenericStartupBoost, target resource.Quantity) (resource.Quantity, bool) {
	switch b.Type {
	case vpav1.FactorStartupBoostType:
		if b.Factor == nil || *b.Factor < 1 {
			return resource.Quantity{}, false
		}
		return *resource.NewMilliQuantity(target.MilliValue()*int64(*b.Factor), resource.DecimalSI), true
	case vpav1.QuantityStartupBoostType:
		if b.Quantity == nil || b.Quantity.Sign() <= 0 {
			return resource.Quantity{}, false
		}
		return b.Quantity.DeepCopy(), true
	}
	return resource.Quantity{}, false
}

func boostDuration(b *vpav1.GenericStartupBoost) time.Duration {
	if b == nil || b.DurationSeconds == nil {
		return 0
	}
	return time.Duration(*b.DurationSeconds) * time.Second
}

// boostWindow reports whether the pod is in its start-up: not yet Ready, or Ready since less
// than the longest boost duration among its policies (checked per container by endsBoost). It
// returns when the pod became Ready (zero when it is not).
func boostWindow(pod *corev1.Pod) (notReady bool, readySince time.Time) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return false, c.LastTransitionTime.Time
			}
			return true, time.Time{}
		}
	}
	return true, time.Time{}
}

// inBoost reports whether the container's boost still applies at now.
func inBoost(b *vpav1.GenericStartupBoost, notReady bool, readySince, now time.Time) bool {
	if b == nil {
		return false
	}
	if notReady {
		return true
	}
	return now.Sub(readySince) < boostDuration(b)
}
