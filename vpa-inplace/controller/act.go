package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// act applies one decision: one pods/resize patch, or an eviction.
func (u *Updater) act(ctx context.Context, vpa *vpav1.VerticalPodAutoscaler, pod *corev1.Pod, d resizer.Decision) error {
	switch d.Action {
	case resizer.Resize:
		body, err := resizer.Patch(d)
		if err != nil {
			return err
		}
		// The state goes on the pod first: a leader that dies after the resize leaves it for
		// the next one.
		prev := u.stateOf(pod)
		next := nextState(prev, pod, d, metav1.NewTime(u.Clock.Now()))
		if err := u.writeState(ctx, pod, next); err != nil {
			return err
		}
		u.remember(pod.UID, next)
		// pod is the cache's object: the response goes into a fresh one.
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
		if err := u.Client.SubResource("resize").Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, body)); err != nil {
			u.Metrics.Resizes.WithLabelValues("failed").Inc()
			u.Recorder.Eventf(pod, vpa, corev1.EventTypeWarning, "ResizeFailed", "Resize", "in-place resize refused: %v", err)
			return fmt.Errorf("resizing pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		u.sent(pod.UID, target.Generation)
		u.Recorder.Eventf(pod, vpa, corev1.EventTypeNormal, string(d.Reason), "Resize", "%s", d.Message)
		return nil
	case resizer.Evict:
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
		if err := u.Client.SubResource("eviction").Create(ctx, target, ev); err != nil {
			u.Metrics.Resizes.WithLabelValues("eviction_failed").Inc()
			return fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		u.Metrics.Resizes.WithLabelValues("evicted").Inc()
		u.Recorder.Eventf(pod, vpa, corev1.EventTypeNormal, "Evicted", "Evict", "%s; evicted (InPlaceOrRecreate, %s=true)", d.Message, AllowEvictionAnnotation)
		return nil
	}
	return nil
}

// writeConditions sets the updater's conditions on the VPA.
func (u *Updater) writeConditions(ctx context.Context, g *gathered, infeasible, leftToHPA []string) error {
	vpa := g.vpa
	hpa := cond{t: ResourcesLeftToHPA, status: false, reason: "NoHPAOnUtilization"}
	if len(leftToHPA) > 0 {
		hpa = cond{t: ResourcesLeftToHPA, status: true, reason: "HPAScalesOnUtilization",
			message: fmt.Sprintf("%s left alone: HorizontalPodAutoscaler %s scales this target on its utilization", strings.Join(leftToHPA, ", "), strings.Join(g.hpaNames, ", "))}
	}
	inf := cond{t: ResizeInfeasible, status: false, reason: "NoInfeasibleResize"}
	if len(infeasible) > 0 {
		sort.Strings(infeasible)
		inf = cond{t: ResizeInfeasible, status: true, reason: "Infeasible", message: "in-place resize infeasible for pods " + strings.Join(infeasible, ", ")}
	}
	// A False condition is written only to clear a True one: VPAs that never had either carry
	// neither (and an idle pass writes nothing).
	var conds []cond
	for _, c := range []cond{hpa, inf} {
		if c.status || condition(vpa, c.t) != nil {
			conds = append(conds, c)
		}
	}
	if len(conds) == 0 {
		return nil
	}
	after := vpa.DeepCopy()
	after.Status.Conditions = withConditions(vpa.Status.Conditions, vpa.Generation, u.Clock.Now(), conds...)
	written, err := patchStatus(ctx, u.Client, vpa, after)
	if written && len(leftToHPA) > 0 && !conditionTrue(vpa, ResourcesLeftToHPA) {
		u.Recorder.Eventf(vpa, nil, corev1.EventTypeNormal, "ResourcesLeftToHPA", "Resize", "%s", hpa.message)
	}
	if written && len(infeasible) > 0 && !conditionTrue(vpa, ResizeInfeasible) {
		u.Recorder.Eventf(vpa, nil, corev1.EventTypeWarning, "ResizeInfeasible", "Resize", "%s", inf.message)
	}
	return err
}

func condition(vpa *vpav1.VerticalPodAutoscaler, t vpav1.VerticalPodAutoscalerConditionType) *vpav1.VerticalPodAutoscalerCondition {
	for i := range vpa.Status.Conditions {
		if vpa.Status.Conditions[i].Type == t {
			return &vpa.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTrue(vpa *vpav1.VerticalPodAutoscaler, t vpav1.VerticalPodAutoscalerConditionType) bool {
	for _, c := range vpa.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
