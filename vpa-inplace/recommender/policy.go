package recommender

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// PolicyFor returns the container's resource policy: its own entry, else the "*" entry, else
// nil (no constraints).
func PolicyFor(p *vpav1.PodResourcePolicy, container string) *vpav1.ContainerResourcePolicy {
	if p == nil {
		return nil
	}
	var fallback *vpav1.ContainerResourcePolicy
	for i := range p.ContainerPolicies {
		cp := &p.ContainerPolicies[i]
		switch cp.ContainerName {
		case container:
			return cp
		case vpav1.DefaultContainerResourcePolicy:
			fallback = cp
		}
	}
	return fallback
}

// Off reports whether the policy switches autoscaling off for the container.
func Off(cp *vpav1.ContainerResourcePolicy) bool {
	return cp != nil && cp.Mode != nil && *cp.Mode == vpav1.ContainerScalingModeOff
}

// Controlled returns the resources the policy lets the VPA control (cpu and memory by default).
func Controlled(cp *vpav1.ContainerResourcePolicy) []corev1.ResourceName {
	if cp == nil || cp.ControlledResources == nil {
		return []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
	}
	return *cp.ControlledResources
}

// MemoryInterval returns the policy's memory aggregation interval, 0 when unset.
func MemoryInterval(cp *vpav1.ContainerResourcePolicy) time.Duration {
	if cp == nil || cp.MemoryAggregationIntervalSeconds == nil {
		return 0
	}
	return time.Duration(*cp.MemoryAggregationIntervalSeconds) * time.Second
}

// Apply turns an estimate into the container's recommendation under its policy: only the
// controlled resources, each capped to [minAllowed, maxAllowed]; UncappedTarget keeps the
// estimate's target.
func Apply(name string, e Estimate, cp *vpav1.ContainerResourcePolicy) vpav1.RecommendedContainerResources {
	rec := vpav1.RecommendedContainerResources{
		ContainerName:  name,
		Target:         corev1.ResourceList{},
		LowerBound:     corev1.ResourceList{},
		UpperBound:     corev1.ResourceList{},
		UncappedTarget: corev1.ResourceList{},
	}
	for _, r := range Controlled(cp) {
		var target, lower, upper resource.Quantity
		switch r {
		case corev1.ResourceCPU:
			target, lower, upper = e.Target.CPUQuantity(), e.Lower.CPUQuantity(), e.Upper.CPUQuantity()
		case corev1.ResourceMemory:
			target, lower, upper = e.Target.MemoryQuantity(), e.Lower.MemoryQuantity(), e.Upper.MemoryQuantity()
		default:
			continue // rejected by ValidatePolicy; never recommended
		}
		rec.UncappedTarget[r] = target
		rec.Target[r] = capTo(target, cp, r)
		rec.LowerBound[r] = capTo(lower, cp, r)
		rec.UpperBound[r] = capTo(upper, cp, r)
	}
	return rec
}

func capTo(q resource.Quantity, cp *vpav1.ContainerResourcePolicy, r corev1.ResourceName) resource.Quantity {
	if cp == nil {
		return q
	}
	if lo, ok := cp.MinAllowed[r]; ok && q.Cmp(lo) < 0 {
		q = lo.DeepCopy()
	}
	if hi, ok := cp.MaxAllowed[r]; ok && q.Cmp(hi) > 0 {
		q = hi.DeepCopy()
	}
	return q
}

// ErrInvalidPolicy wraps every problem ValidatePolicy finds.
var ErrInvalidPolicy = errors.New("invalid resource policy")

// ValidatePolicy checks what the CRD schema cannot: only cpu and memory are controlled,
// quantities are not negative, minAllowed <= maxAllowed, container names are unique.
func ValidatePolicy(p *vpav1.PodResourcePolicy) error {
	if p == nil {
		return nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, cp := range p.ContainerPolicies {
		name := cp.ContainerName
		if seen[name] {
			errs = append(errs, fmt.Errorf("container %q has two policies", name))
		}
		seen[name] = true
		if cp.ControlledResources != nil {
			for _, r := range *cp.ControlledResources {
				if r != corev1.ResourceCPU && r != corev1.ResourceMemory {
					errs = append(errs, fmt.Errorf("container %q: controlledResources: %q is not supported (cpu, memory)", name, r))
				}
			}
		}
		for _, list := range []struct {
			field string
			rl    corev1.ResourceList
		}{{"minAllowed", cp.MinAllowed}, {"maxAllowed", cp.MaxAllowed}} {
			for r, q := range list.rl {
				if r != corev1.ResourceCPU && r != corev1.ResourceMemory {
					errs = append(errs, fmt.Errorf("container %q: %s: %q is not supported (cpu, memory)", name, list.field, r))
				}
				if q.Sign() < 0 {
					errs = append(errs, fmt.Errorf("container %q: %s.%s is negative (%s)", name, list.field, r, q.String()))
				}
			}
		}
		for r, lo := range cp.MinAllowed {
			if hi, ok := cp.MaxAllowed[r]; ok && lo.Cmp(hi) > 0 {
				errs = append(errs, fmt.Errorf("container %q: minAllowed.%s (%s) is above maxAllowed.%s (%s)", name, r, lo.String(), r, hi.String()))
			}
		}
		if cp.OOMBumpUpRatio != nil && cp.OOMBumpUpRatio.AsApproximateFloat64() < 1 {
			errs = append(errs, fmt.Errorf("container %q: oomBumpUpRatio must be at least 1, got %s", name, cp.OOMBumpUpRatio.String()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	return nil
}
