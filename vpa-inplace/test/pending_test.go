package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// A scale-out leaves pods Pending (a host port: one pod per node, two nodes) under a budget of
// one disruption. Pending pods have nothing in flight, so they do not fill the bound: the new
// pod that runs gets its start-up boost, the moment the boost exists for.
func TestBoostNotHeldByPendingPods(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	dep := deployment(ns, "scaleout", 1, "100m", "200Mi", nil)
	dep.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
	create(t, c, dep, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaleout"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "scaleout"}},
		},
	}, vpaFor(ns, "scaleout", vpav1.UpdateModeInPlace, func(v *vpav1.VerticalPodAutoscaler) {
		v.Spec.StartupBoost = &vpav1.StartupBoost{CPU: &vpav1.GenericStartupBoost{Type: vpav1.FactorStartupBoostType, Factor: ptr.To[int32](3), DurationSeconds: ptr.To[int32](60)}}
	}))
	target := waitTarget(t, c, ns, "scaleout")
	first, err := runningPods(ctx, c, ns, "scaleout")
	if err != nil || len(first) != 1 {
		t.Fatalf("%d running pods before the scale-out (err %v), want 1", len(first), err)
	}
	if err := c.Patch(ctx, dep, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":4}}`))); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 90*time.Second, func(ctx context.Context) error {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": "scaleout"}); err != nil {
			return err
		}
		pending, boosted := 0, 0
		for i := range pods.Items {
			p := &pods.Items[i]
			switch {
			case p.Status.Phase == corev1.PodPending:
				pending++
			case p.UID != first[0].UID && cpuRequest(p) >= 3*target-3 && statusCPURequest(p) == cpuRequest(p):
				boosted++
			}
		}
		if pending != 2 || boosted != 1 {
			return fmt.Errorf("%d pods pending (want 2), %d new running pod boosted to 3 × %dm (want 1)", pending, boosted, target)
		}
		return nil
	})
}

// waitTarget waits for the VPA's CPU target and returns it in millicores.
func waitTarget(t *testing.T, c client.Client, ns, name string) int64 {
	t.Helper()
	var target int64
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		var v vpav1.VerticalPodAutoscaler
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v); err != nil {
			return err
		}
		if v.Status.Recommendation == nil || len(v.Status.Recommendation.ContainerRecommendations) == 0 {
			return fmt.Errorf("no recommendation yet")
		}
		q := v.Status.Recommendation.ContainerRecommendations[0].Target[corev1.ResourceCPU]
		target = q.MilliValue()
		return nil
	})
	return target
}
