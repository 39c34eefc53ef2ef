package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// Usage that really flows through kwok and metrics-server into metrics.k8s.io drives a
// recommendation, and the Deployment's pods are resized in place: same UIDs, no restart,
// status reporting the new resources; the history is checkpointed.
func TestResizeInPlaceFromMetrics(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "shop", 2, "400m", "200Mi", nil), vpaFor(ns, "shop", vpav1.UpdateModeInPlace))

	var before []corev1.Pod
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "shop")
		if err != nil || len(pods) != 2 {
			return fmt.Errorf("running pods %d, err %w", len(pods), err)
		}
		before = pods
		return nil
	})
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "shop")
		if err != nil {
			return err
		}
		for i := range pods {
			if err := resizedTo400m(&pods[i]); err != nil {
				return err
			}
		}
		return nil
	})
	after, err := runningPods(ctx, c, ns, "shop")
	if err != nil {
		t.Fatal(err)
	}
	uids := map[types.UID]bool{}
	for _, p := range before {
		uids[p.UID] = true
	}
	for _, p := range after {
		if !uids[p.UID] {
			t.Errorf("pod %s is new: the resize replaced a pod", p.Name)
		}
		if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
			t.Errorf("pod %s restarted %d times", p.Name, rc)
		}
	}
	var vpa vpav1.VerticalPodAutoscaler
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &vpa); err != nil {
		t.Fatal(err)
	}
	if cond := condition(&vpa, vpav1.RecommendationProvided); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Errorf("RecommendationProvided %+v", cond)
	}
	if vpa.Status.Recommendation == nil || len(vpa.Status.Recommendation.ContainerRecommendations) != 1 {
		t.Fatalf("recommendation %+v", vpa.Status.Recommendation)
	}
	if counter(t, "lockstep_vpa_inplace_resizes_total", map[string]string{"outcome": "applied"}) < 2 {
		t.Errorf("resizes_total{applied} below 2")
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var cp vpav1.VerticalPodAutoscalerCheckpoint
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-app"}, &cp); err != nil {
			return err
		}
		if cp.Status.TotalSamplesCount == 0 || cp.Spec.VPAObjectName != "shop" {
			return fmt.Errorf("checkpoint %+v", cp.Status)
		}
		return nil
	})
}

// resizedTo400m checks a pod of the 400m/200Mi workload: the CPU request at the usage plus the
// margin, applied (status = spec), the limit at twice the request, memory at least the pod minimum.
func resizedTo400m(p *corev1.Pod) error {
	// 400m used × 1.15 margin, rounded up to a 5 % bucket: 460m–500m.
	if got := cpuRequest(p); got < 460 || got > 500 {
		return fmt.Errorf("pod %s cpu request %dm, want 460–500m", p.Name, got)
	}
	if statusCPURequest(p) != cpuRequest(p) {
		return fmt.Errorf("pod %s status cpu %dm, spec %dm", p.Name, statusCPURequest(p), cpuRequest(p))
	}
	lim := p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]
	if lim.MilliValue() != 2*cpuRequest(p) {
		return fmt.Errorf("pod %s cpu limit %s, want twice the request", p.Name, lim.String())
	}
	mem := p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]
	if mem.Cmp(resource.MustParse("250Mi")) < 0 {
		return fmt.Errorf("pod %s memory request %s, want ≥ 250Mi (usage 200Mi + margin, pod minimum)", p.Name, mem.String())
	}
	return nil
}

// A pod whose kubelet answers Infeasible is not retried while the target stays above its
// request; the VPA says so in ResizeInfeasible and an event; once the kubelet applies it, the
// condition clears.
func TestInfeasibleResize(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "big", 1, "900m", "200Mi", map[string]string{"testbed.lockstep.dev/resize": "Infeasible"}),
		vpaFor(ns, "big", vpav1.UpdateModeInPlace))
	cond := waitCondition(t, c, ns, "big", "ResizeInfeasible", corev1.ConditionTrue, 2*time.Minute)
	if cond.Message == "" {
		t.Error("ResizeInfeasible has no message")
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "ResizeInfeasible" && e.InvolvedObject.Kind == "Pod" {
				return nil
			}
		}
		return fmt.Errorf("no ResizeInfeasible event on the pod among %d events", len(evs.Items))
	})
	patched := counter(t, "lockstep_vpa_inplace_decisions_total", map[string]string{"action": "Resize"})
	time.Sleep(6 * time.Second) // three recommender passes and a resync
	if again := counter(t, "lockstep_vpa_inplace_decisions_total", map[string]string{"action": "Resize"}); again != patched {
		t.Errorf("infeasible resize retried: Resize decisions %v → %v", patched, again)
	}
	if n := counter(t, "lockstep_vpa_inplace_resizes_total", map[string]string{"outcome": "infeasible"}); n < 1 {
		t.Errorf("resizes_total{infeasible} = %v", n)
	}
	// The node frees room: the kubelet stage applies the pending resize.
	pods, err := runningPods(ctx, c, ns, "big")
	if err != nil || len(pods) != 1 {
		t.Fatalf("pods %d, err %v", len(pods), err)
	}
	patch := []byte(`{"metadata":{"annotations":{"testbed.lockstep.dev/resize":null}}}`)
	if err := c.Patch(ctx, &pods[0], client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "big", "ResizeInfeasible", corev1.ConditionFalse, time.Minute)
}

// Startup boost: a new pod gets factor × target CPU, and the boost is reverted in place once it
// has been Ready for the configured duration.
func TestStartupBoost(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	dep := deployment(ns, "boost", 1, "200m", "200Mi", nil)
	create(t, c, dep, vpaFor(ns, "boost", vpav1.UpdateModeInPlace, func(v *vpav1.VerticalPodAutoscaler) {
		v.Spec.StartupBoost = &vpav1.StartupBoost{CPU: &vpav1.GenericStartupBoost{Type: vpav1.FactorStartupBoostType, Factor: ptr.To[int32](3), DurationSeconds: ptr.To[int32](15)}}
	}))
	target := waitTarget(t, c, ns, "boost")
	// The first pod became Ready before any recommendation; its window is long past by now
	// unless the recommendation came fast. Scale out: the new pod is boosted.
	if err := c.Patch(ctx, dep, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":2}}`))); err != nil {
		t.Fatal(err)
	}
	boosted := map[types.UID]bool{}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "boost")
		if err != nil {
			return err
		}
		for _, p := range pods {
			if cpuRequest(&p) >= 3*target-3 && statusCPURequest(&p) == cpuRequest(&p) {
				boosted[p.UID] = true
			}
		}
		if len(boosted) == 0 {
			return fmt.Errorf("no pod boosted to 3 × %dm", target)
		}
		return nil
	})
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "boost")
		if err != nil {
			return err
		}
		for _, p := range pods {
			if boosted[p.UID] && cpuRequest(&p) > target*11/10 {
				return fmt.Errorf("pod %s still at %dm (target %dm)", p.Name, cpuRequest(&p), target)
			}
		}
		return nil
	})
}

// An HPA on CPU utilization of the same Deployment makes the updater leave CPU alone (and say
// so); an HPA on requests_per_second does not.
func TestHPAAwareness(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	hpa := func(name string, metric autoscalingv2.MetricSpec) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				MinReplicas:    ptr.To[int32](1), MaxReplicas: 1, // the replica count is not under test
				Metrics: []autoscalingv2.MetricSpec{metric},
			},
		}
	}
	cpuUtil := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](60)}}}
	rps := autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("100"))}}}
	create(t, c,
		deployment(ns, "oncpu", 1, "400m", "400Mi", nil), vpaFor(ns, "oncpu", vpav1.UpdateModeInPlace), hpa("oncpu", cpuUtil),
		deployment(ns, "onrps", 1, "400m", "400Mi", nil), vpaFor(ns, "onrps", vpav1.UpdateModeInPlace), hpa("onrps", rps))

	cond := waitCondition(t, c, ns, "oncpu", "ResourcesLeftToHPA", corev1.ConditionTrue, 2*time.Minute)
	if want := "cpu left alone: HorizontalPodAutoscaler oncpu"; len(cond.Message) < len(want) || cond.Message[:len(want)] != want {
		t.Errorf("ResourcesLeftToHPA message %q, want it to start with %q", cond.Message, want)
	}
	resized := func(app string, wantCPU bool) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			pods, err := runningPods(ctx, c, ns, app)
			if err != nil || len(pods) != 1 {
				return fmt.Errorf("pods %d, err %w", len(pods), err)
			}
			mem := pods[0].Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]
			if mem.Cmp(resource.MustParse("400Mi")) <= 0 {
				return fmt.Errorf("%s memory request %s not raised", app, mem.String())
			}
			if cpu := cpuRequest(&pods[0]); (cpu > 100) != wantCPU {
				return fmt.Errorf("%s cpu request %dm (want changed: %v)", app, cpu, wantCPU)
			}
			return nil
		}
	}
	framework.Eventually(t, 2*time.Minute, resized("oncpu", false))
	framework.Eventually(t, 2*time.Minute, resized("onrps", true))
	framework.Consistently(t, 5*time.Second, resized("oncpu", false))
	var v vpav1.VerticalPodAutoscaler
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "onrps"}, &v); err != nil {
		t.Fatal(err)
	}
	if cond := condition(&v, "ResourcesLeftToHPA"); cond != nil && cond.Status == corev1.ConditionTrue {
		t.Errorf("onrps: ResourcesLeftToHPA %+v with an HPA on requests_per_second", cond)
	}
}

// Bad input: a VPA whose policy has minAllowed above maxAllowed and one whose target does not
// exist get ConfigUnsupported and an event; a good VPA beside them gets its recommendation.
func TestBadInputIsReported(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	create(t, c,
		deployment(ns, "good", 1, "300m", "300Mi", nil), vpaFor(ns, "good", vpav1.UpdateModeOff),
		deployment(ns, "minmax", 1, "300m", "300Mi", nil),
		vpaFor(ns, "minmax", vpav1.UpdateModeInPlace, func(v *vpav1.VerticalPodAutoscaler) {
			v.Spec.ResourcePolicy = &vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{{
				ContainerName: "*", MinAllowed: rl("2", "1Gi"), MaxAllowed: rl("1", "2Gi"),
			}}}
		}),
		vpaFor(ns, "ghost", vpav1.UpdateModeInPlace))
	c1 := waitCondition(t, c, ns, "minmax", vpav1.ConfigUnsupported, corev1.ConditionTrue, time.Minute)
	if c1.Reason != "InvalidResourcePolicy" {
		t.Errorf("minmax reason %q", c1.Reason)
	}
	c2 := waitCondition(t, c, ns, "ghost", vpav1.ConfigUnsupported, corev1.ConditionTrue, time.Minute)
	if c2.Reason != "UnsupportedTarget" {
		t.Errorf("ghost reason %q (%s)", c2.Reason, c2.Message)
	}
	waitCondition(t, c, ns, "good", vpav1.RecommendationProvided, corev1.ConditionTrue, 2*time.Minute)
	// Mode Off: recommendation only, the pod keeps its request.
	pods, err := runningPods(context.Background(), c, ns, "good")
	if err != nil || len(pods) != 1 || cpuRequest(&pods[0]) != 100 {
		t.Errorf("mode Off pod changed or missing: %v %v", pods, err)
	}
	var evs corev1.EventList
	if err := c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, e := range evs.Items {
		reasons[e.InvolvedObject.Name+"/"+e.Reason] = true
	}
	if !reasons["minmax/InvalidResourcePolicy"] || !reasons["ghost/UnsupportedTarget"] {
		t.Errorf("events %v", reasons)
	}
}

// A restarted controller reads its checkpoints back: the history survives, and the
// recommendation stays without waiting for new samples.
func TestCheckpointsSurviveRestart(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "keep", 1, "300m", "300Mi", nil), vpaFor(ns, "keep", vpav1.UpdateModeOff))
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		var cp vpav1.VerticalPodAutoscalerCheckpoint
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keep-app"}, &cp); err != nil {
			return err
		}
		if cp.Status.TotalSamplesCount < 2 {
			return fmt.Errorf("checkpoint holds %d samples", cp.Status.TotalSamplesCount)
		}
		return nil
	})
	stop(t)
	start(t)
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if n := counter(t, "lockstep_vpa_inplace_checkpoints_restored_total", nil); n < 1 {
			return fmt.Errorf("checkpoints restored: %v", n)
		}
		return nil
	})
	var v vpav1.VerticalPodAutoscaler
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keep"}, &v); err != nil {
		t.Fatal(err)
	}
	if v.Status.Recommendation == nil {
		t.Fatal("recommendation lost across the restart")
	}
}

// A resize the kubelet defers is left to it: the updater does not resend it, counts it, and
// sees it applied once the node has room (the stage applies it when the annotation goes).
func TestDeferredResize(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "later", 1, "400m", "200Mi", map[string]string{"testbed.lockstep.dev/resize": "Deferred"}),
		vpaFor(ns, "later", vpav1.UpdateModeInPlace))
	var pod corev1.Pod
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "later")
		if err != nil || len(pods) != 1 {
			return fmt.Errorf("pods %d, err %w", len(pods), err)
		}
		pod = pods[0]
		for _, cd := range pod.Status.Conditions {
			if cd.Type == corev1.PodResizePending && cd.Reason == corev1.PodReasonDeferred && cpuRequest(&pod) > 400 {
				return nil
			}
		}
		return fmt.Errorf("no deferred resize yet (cpu request %dm)", cpuRequest(&pod))
	})
	framework.Eventually(t, 10*time.Second, func(context.Context) error {
		if n := counter(t, "lockstep_vpa_inplace_resizes_total", map[string]string{"outcome": "deferred"}); n < 1 {
			return fmt.Errorf("resizes_total{deferred} = %v", n)
		}
		return nil
	})
	sent := counter(t, "lockstep_vpa_inplace_decisions_total", map[string]string{"action": "Resize"})
	applied := counter(t, "lockstep_vpa_inplace_resize_applied_seconds", nil)
	time.Sleep(6 * time.Second)
	if again := counter(t, "lockstep_vpa_inplace_decisions_total", map[string]string{"action": "Resize"}); again != sent {
		t.Errorf("deferred resize resent: Resize decisions %v → %v", sent, again)
	}
	patch := []byte(`{"metadata":{"annotations":{"testbed.lockstep.dev/resize":null}}}`)
	if err := c.Patch(ctx, &pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKeyFromObject(&pod), &p); err != nil {
			return err
		}
		if statusCPURequest(&p) != cpuRequest(&p) {
			return fmt.Errorf("status %dm, spec %dm", statusCPURequest(&p), cpuRequest(&p))
		}
		if n := counter(t, "lockstep_vpa_inplace_resize_applied_seconds", nil); n <= applied {
			return fmt.Errorf("applied latency not observed")
		}
		return nil
	})
}

// A PodDisruptionBudget bounds how many of a workload's pods resize at once: with one
// disruption allowed and every resize deferred by the kubelet, one pod is asked; the others wait
// until it is done.
func TestDisruptionBudgetBoundsResizes(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "pdb", 4, "400m", "200Mi", map[string]string{"testbed.lockstep.dev/resize": "Deferred"}),
		&policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pdb"},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: ptr.To(intstr.FromInt32(1)),
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pdb"}},
			},
		})
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		var pdb policyv1.PodDisruptionBudget
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pdb"}, &pdb); err != nil {
			return err
		}
		if pdb.Status.ExpectedPods != 4 || pdb.Status.DisruptionsAllowed != 1 {
			return fmt.Errorf("PDB status %+v", pdb.Status)
		}
		return nil
	})
	create(t, c, vpaFor(ns, "pdb", vpav1.UpdateModeInPlace))
	asked := func(ctx context.Context) ([]corev1.Pod, int, error) {
		pods, err := runningPods(ctx, c, ns, "pdb")
		n := 0
		for i := range pods {
			if cpuRequest(&pods[i]) > 100 {
				n++
			}
		}
		return pods, n, err
	}
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		if _, n, err := asked(ctx); err != nil || n == 0 {
			return fmt.Errorf("no pod asked to resize yet (err %w)", err)
		}
		return nil
	})
	framework.Consistently(t, 8*time.Second, func(ctx context.Context) error {
		if _, n, err := asked(ctx); err != nil || n != 1 {
			return fmt.Errorf("%d pods asked to resize at once, budget 1 (err %w)", n, err)
		}
		return nil
	})
	// The kubelet frees room: every pod gets its resize, one after the other.
	pods, _, err := asked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"metadata":{"annotations":{"testbed.lockstep.dev/resize":null}}}`)
	for i := range pods {
		if err := c.Patch(ctx, &pods[i], client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, n, err := asked(ctx)
		if err != nil || n != 4 {
			return fmt.Errorf("%d of 4 pods resized (err %w)", n, err)
		}
		for i := range pods {
			if statusCPURequest(&pods[i]) != cpuRequest(&pods[i]) {
				return fmt.Errorf("pod %s not applied", pods[i].Name)
			}
		}
		return nil
	})
}
