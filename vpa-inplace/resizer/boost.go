package resizer

import (
	"sort"
	"strconv"
	"strings"
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

// Boost is what the updater remembers of a pod's start-up boost; it is kept on the pod, so a
// new leader reads it.
type Boost struct {
	// Start is the container start (ContainerStart) the last boost was given for; empty when
	// the pod was never boosted.
	Start string `json:"start,omitempty"`
	// Active is true while that boost is applied and not reverted.
	Active bool `json:"active,omitempty"`
}

// ContainerStart names the pod's current container starts: each container's restart count. A
// restart changes it, so a restarted container may be boosted again.
func ContainerStart(pod *corev1.Pod) string {
	parts := make([]string, 0, len(pod.Status.ContainerStatuses))
	for _, s := range pod.Status.ContainerStatuses {
		parts = append(parts, s.Name+"="+strconv.Itoa(int(s.RestartCount)))
	}
	if len(parts) == 0 {
		return "unreported"
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// readiness returns whether the pod is Ready, and since when.
func readiness(pod *corev1.Pod) (bool, time.Time) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue, c.LastTransitionTime.Time
		}
	}
	return false, time.Time{}
}

// boosting reports whether a container's CPU is boosted at now. A boost lasts until Ready has
// held for its duration; a new one is given once per container start, before Ready has held
// that long. A pod that turns unready later is not boosted again for the same start.
func boosting(b *vpav1.GenericStartupBoost, memo Boost, start string, ready bool, readySince, now time.Time) bool {
	if b == nil || (ready && now.Sub(readySince) >= boostDuration(b)) {
		return false
	}
	return memo.Active || memo.Start == "" || memo.Start != start
}

// capBoost caps a container's boosted CPU request at the policy's maxAllowed and at what the
// node has room for beside the pod's other containers; with the room unknown, at zero.
func capBoost(q resource.Quantity, policy *vpav1.ContainerResourcePolicy, room corev1.ResourceList, pod *corev1.Pod, container string) resource.Quantity {
	if policy != nil {
		if m, ok := policy.MaxAllowed[corev1.ResourceCPU]; ok && q.Cmp(m) > 0 {
			q = m.DeepCopy()
		}
	}
	free := room[corev1.ResourceCPU]
	free = free.DeepCopy()
	for _, c := range pod.Spec.Containers {
		if c.Name != container {
			free.Sub(c.Resources.Requests[corev1.ResourceCPU])
		}
	}
	if q.Cmp(free) > 0 {
		return free
	}
	return q
}
