package controller

import (
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func TestHandles(t *testing.T) {
	named := func(names ...string) *vpav1.VerticalPodAutoscaler {
		v := &vpav1.VerticalPodAutoscaler{}
		for _, n := range names {
			v.Spec.Recommenders = append(v.Spec.Recommenders, &vpav1.VerticalPodAutoscalerRecommenderSelector{Name: n})
		}
		return v
	}
	cases := []struct {
		vpa     *vpav1.VerticalPodAutoscaler
		unnamed bool
		want    bool
	}{
		{named("lockstep"), false, true},
		{named("default"), true, false},
		{named(), false, false},
		{named(), true, true},
	}
	for i, tc := range cases {
		if got := Handles(tc.vpa, "lockstep", tc.unnamed); got != tc.want {
			t.Errorf("case %d: Handles = %v, want %v", i, got, tc.want)
		}
	}
}

func TestWithConditionsKeepsTransitionTimeAndOthers(t *testing.T) {
	old := []vpav1.VerticalPodAutoscalerCondition{
		{Type: vpav1.RecommendationProvided, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)},
		{Type: ResourcesLeftToHPA, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(t0)},
	}
	later := t0.Add(time.Hour)
	got := withConditions(old, 3, later, cond{t: ResourcesLeftToHPA, status: true, reason: "R"}, cond{t: ResizeInfeasible, status: false})
	if len(got) != 3 {
		t.Fatalf("conditions %v", got)
	}
	if !got[0].LastTransitionTime.Time.Equal(t0) || got[0].Status != corev1.ConditionTrue {
		t.Errorf("untouched condition changed: %+v", got[0])
	}
	if !got[1].LastTransitionTime.Time.Equal(later) || got[1].ObservedGeneration != 3 || got[1].Reason != "R" {
		t.Errorf("flipped condition: %+v", got[1])
	}
	again := withConditions(got, 4, later.Add(time.Hour), cond{t: ResourcesLeftToHPA, status: true, reason: "R"})
	if !again[1].LastTransitionTime.Time.Equal(later) {
		t.Errorf("transition time moved without a status change: %v", again[1].LastTransitionTime)
	}
}

func TestUtilizationResources(t *testing.T) {
	h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{Metrics: []autoscalingv2.MetricSpec{
		{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](60)}}},
		// An average value does not depend on requests: memory stays with the updater.
		{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("1Gi"))}}},
		{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"}}},
	}}}
	got := UtilizationResources(h)
	if len(got) != 1 || !got[corev1.ResourceCPU] {
		t.Errorf("utilization resources %v, want cpu only", got)
	}
}

func TestSameTarget(t *testing.T) {
	vpa := &vpav1.VerticalPodAutoscaler{Spec: vpav1.VerticalPodAutoscalerSpec{TargetRef: &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}}
	hpa := func(apiVersion, kind, name string) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: apiVersion, Kind: kind, Name: name}}}
	}
	if !sameTarget(vpa, hpa("apps/v1beta2", "Deployment", "web")) {
		t.Error("another version of the same group not matched")
	}
	for _, h := range []*autoscalingv2.HorizontalPodAutoscaler{hpa("apps/v1", "Deployment", "api"), hpa("apps/v1", "StatefulSet", "web"), hpa("example.com/v1", "Deployment", "web")} {
		if sameTarget(vpa, h) {
			t.Errorf("matched %+v", h.Spec.ScaleTargetRef)
		}
	}
}

func TestPDBBudget(t *testing.T) {
	pods := []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}}
	pdb := func(app string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			Spec:   policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
		}
	}
	if n, ok := pdbBudget(pdb("web", 2), pods); !ok || n != 2 {
		t.Errorf("budget %d %v, want 2", n, ok)
	}
	if _, ok := pdbBudget(pdb("api", 2), pods); ok {
		t.Error("a PDB of other pods applied")
	}
}

func TestVirtualNodes(t *testing.T) {
	v := VirtualNodes{Selector: labels.SelectorFromSet(labels.Set{"type": "virtual-kubelet"}), TaintKey: "virtual-kubelet.io/provider"}
	byLabel := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"type": "virtual-kubelet"}}}
	byTaint := &corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "virtual-kubelet.io/provider", Value: "alibabacloud", Effect: corev1.TaintEffectNoSchedule}}}}
	plain := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"type": "kwok"}}}
	if !v.matches(byLabel) || !v.matches(byTaint) || v.matches(plain) {
		t.Error("virtual node detection wrong")
	}
	if (VirtualNodes{Selector: labels.Nothing()}).matches(byLabel) {
		t.Error("an empty configuration matched")
	}
}

func TestStatusMatchesSpec(t *testing.T) {
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: res}}},
		Status:     corev1.PodStatus{ObservedGeneration: 2, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Resources: res.DeepCopy()}}},
	}
	if !statusMatchesSpec(pod) {
		t.Error("applied resize not recognised")
	}
	pod.Status.ObservedGeneration = 1
	if statusMatchesSpec(pod) {
		t.Error("an old generation's status counted as applied")
	}
	pod.Status.ObservedGeneration = 2
	pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("200m")
	if statusMatchesSpec(pod) {
		t.Error("different resources counted as applied")
	}
}

// Status writes compare semantically (patchStatus): the same quantity in another notation is no
// change, a different one is.
func TestRecommendationChanged(t *testing.T) {
	rec := func(cpu string) *vpav1.RecommendedPodResources {
		return &vpav1.RecommendedPodResources{ContainerRecommendations: []vpav1.RecommendedContainerResources{{
			ContainerName: "app", Target: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}
	}
	changed := func(a, b *vpav1.RecommendedPodResources) bool {
		return !equality.Semantic.DeepEqual(vpav1.VerticalPodAutoscalerStatus{Recommendation: a}, vpav1.VerticalPodAutoscalerStatus{Recommendation: b})
	}
	if changed(rec("1"), rec("1000m")) {
		t.Error("equal quantities in other notation counted as a change")
	}
	if !changed(rec("1"), rec("2")) || !changed(nil, rec("1")) {
		t.Error("change not seen")
	}
}
