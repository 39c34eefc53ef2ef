package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Condition types Lockstep's updater adds next to upstream's (RecommendationProvided,
// NoPodsMatched, ConfigUnsupported, which the recommender writes).
const (
	// ResourcesLeftToHPA is True when an HPA scales the same target on the utilization of a
	// resource, which the updater then leaves alone.
	ResourcesLeftToHPA vpav1.VerticalPodAutoscalerConditionType = "ResourcesLeftToHPA"
	// ResizeInfeasible is True while some pod's in-place resize is infeasible on its node.
	ResizeInfeasible vpav1.VerticalPodAutoscalerConditionType = "ResizeInfeasible"
)

// cond is one condition to set.
type cond struct {
	t       vpav1.VerticalPodAutoscalerConditionType
	status  bool
	reason  string
	message string
}

// withConditions returns conds applied to existing: the lastTransitionTime moves only when the
// status changes; conditions of other types are kept.
func withConditions(existing []vpav1.VerticalPodAutoscalerCondition, gen int64, now time.Time, conds ...cond) []vpav1.VerticalPodAutoscalerCondition {
	out := make([]vpav1.VerticalPodAutoscalerCondition, 0, len(existing)+len(conds))
	out = append(out, existing...)
	for _, c := range conds {
		status := corev1.ConditionFalse
		if c.status {
			status = corev1.ConditionTrue
		}
		next := vpav1.VerticalPodAutoscalerCondition{Type: c.t, Status: status, Reason: c.reason, Message: c.message, ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(now)}
		found := false
		for i := range out {
			if out[i].Type != c.t {
				continue
			}
			found = true
			if out[i].Status == status {
				next.LastTransitionTime = out[i].LastTransitionTime
			}
			out[i] = next
		}
		if !found {
			out = append(out, next)
		}
	}
	return out
}

// patchStatus writes the VPA's status with one merge patch guarded by its resourceVersion,
// if it changed. A conflict is returned: the caller tries again with a fresh copy.
func patchStatus(ctx context.Context, c client.Client, before, after *vpav1.VerticalPodAutoscaler) (bool, error) {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return false, nil
	}
	if err := c.Status().Patch(ctx, after, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("patching status of VPA %s/%s: %w", after.Namespace, after.Name, err)
	}
	return true, nil
}
