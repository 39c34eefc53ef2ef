package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
)

// Every pod of a kwok node, and many of a real kubelet, report usage at the same instant: each
// pod's sample reaches the histograms, and what is kept per pod goes with the pod.
func TestFeedCountsEveryPodAndForgetsGonePods(t *testing.T) {
	r := &Recommender{Model: NewModel(recommender.DefaultConfig()), Metrics: NewMetrics(prometheus.NewRegistry())}
	vpa := &vpav1.VerticalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", UID: "vpa"}}
	var pods []*corev1.Pod
	usage := map[types.NamespacedName]*metricsv1beta1.PodMetrics{}
	for i, cpu := range []string{"100m", "200m", "2"} {
		name := "checkout-" + string(rune('a'+i))
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(name)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", LastTerminationState: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", FinishedAt: metav1.NewTime(t0)}}}}
		pods = append(pods, p)
		usage[types.NamespacedName{Namespace: "shop", Name: name}] = &metricsv1beta1.PodMetrics{
			Timestamp: metav1.NewTime(t0.Add(time.Minute)),
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "app", Usage: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("100Mi")}}},
		}
	}
	r.Model.mu.Lock()
	defer r.Model.mu.Unlock()
	st := r.Model.state(vpa)
	r.feed(st, vpa, pods, usage)
	r.feed(st, vpa, pods, usage) // the same metrics window read again adds nothing
	if got := testutil.ToFloat64(r.Metrics.Samples); got != 3 {
		t.Errorf("%g samples from 3 pods reporting at one instant, want 3", got)
	}
	if got := testutil.ToFloat64(r.Metrics.OOMs); got != 3 {
		t.Errorf("%g OOM kills recorded, want 3 (one per pod, once)", got)
	}
	h := st.containers["app"]
	if h.Samples() != 3 || h.Pods() != 3 || len(st.ooms) != 3 {
		t.Fatalf("history holds %d samples from %d pods and %d OOM kills, want 3 of each", h.Samples(), h.Pods(), len(st.ooms))
	}
	// The pod at 2 cores is a third of the weight: the target follows it.
	if e, ok := h.Estimate(r.Model.cfg, 1); !ok || e.Target.CPUMillis < 2000 {
		t.Errorf("CPU target %dm, want ≥ 2000m (the busiest pod's usage)", e.Target.CPUMillis)
	}
	r.feed(st, vpa, pods[:1], usage)
	if h.Pods() != 1 || len(st.ooms) != 1 {
		t.Errorf("after two pods went: %d pods' windows and %d OOM records kept, want 1 and 1", h.Pods(), len(st.ooms))
	}
}
