package podresources

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Verdict is what a kubelet answers to a pending in-place resize.
type Verdict string

// Verdicts, with the PodResizePending reasons a kubelet reports for the last two.
const (
	// Fits: the kubelet applies the resize.
	Fits Verdict = "Fits"
	// Deferred: the node could hold it but the other pods' allocations leave no room now.
	Deferred Verdict = Verdict(corev1.PodReasonDeferred)
	// Infeasible: the pod's new requests exceed what the node can allocate at all.
	Infeasible Verdict = Verdict(corev1.PodReasonInfeasible)
)

// resizeCheckedResources are the resources a kubelet checks a resize against (it admits
// extended resources by other means and they cannot be resized).
var resizeCheckedResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// Fit decides a kubelet's answer to a resize: want is the pod's requests after the
// resize, allocatable the node's, used the requests allocated to the node's other pods. The
// message reads like the kubelet's.
func Fit(want, allocatable, used corev1.ResourceList) (Verdict, string) {
	for _, r := range resizeCheckedResources {
		w, a := amount(want, r), amount(allocatable, r)
		if w > a {
			return Infeasible, fmt.Sprintf("Node didn't have enough capacity: %s, requested: %d, capacity: %d", r, w, a)
		}
	}
	for _, r := range resizeCheckedResources {
		w, a, u := amount(want, r), amount(allocatable, r), amount(used, r)
		if w+u > a {
			return Deferred, fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d", r, w, u, a)
		}
	}
	return Fits, ""
}

// amount is one resource of a list in the kubelet's units: millicores for CPU, bytes
// otherwise; 0 when absent.
func amount(l corev1.ResourceList, r corev1.ResourceName) int64 {
	q, ok := l[r]
	if !ok {
		return 0
	}
	if r == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// Allocated is what the kubelet has allocated to a pod: each container's requests as
// last admitted (status allocatedResources, or the status resources; the spec's while the
// kubelet reports neither), summed with init containers and overhead as the scheduler does.
func Allocated(pod *corev1.Pod) corev1.ResourceList {
	admitted := pod.DeepCopy()
	for i := range admitted.Spec.Containers {
		c := &admitted.Spec.Containers[i]
		for _, s := range pod.Status.ContainerStatuses {
			if s.Name != c.Name {
				continue
			}
			switch {
			case s.AllocatedResources != nil:
				c.Resources.Requests = s.AllocatedResources
			case s.Resources != nil && s.Resources.Requests != nil:
				c.Resources.Requests = s.Resources.Requests
			}
		}
	}
	return resourcehelper.PodRequests(admitted, resourcehelper.PodResourcesOptions{})
}

// Desired is the pod's requests as its spec asks for them (after a resize).
func Desired(pod *corev1.Pod) corev1.ResourceList {
	return resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

// Pending reports whether a running pod's containers report resources other than their
// spec's: a resize the kubelet has not applied.
func Pending(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Spec.Containers {
		for _, s := range pod.Status.ContainerStatuses {
			if s.Name == c.Name && (s.Resources == nil || !equality.Semantic.DeepEqual(*s.Resources, c.Resources)) {
				return true
			}
		}
	}
	return false
}

// Add adds sign × delta to sum, resource by resource (sign is 1 or -1).
func Add(sum, delta corev1.ResourceList, sign int) {
	for r, q := range delta {
		cur := sum[r]
		cur = cur.DeepCopy()
		if sign < 0 {
			cur.Sub(q)
		} else {
			cur.Add(q)
		}
		sum[r] = cur
	}
}
