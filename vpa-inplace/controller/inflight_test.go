package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// settle's answers: a resize is in flight only when this updater sent it and the kubelet has
// not applied it; a cached pod older than the resize is stale, and is neither counted applied
// nor decided on again.
func TestSettle(t *testing.T) {
	res := func(cpu string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
	}
	pod := func(generation, observed int64, spec, status string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p", Generation: generation},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: res(spec)}}}}
		p.Status.Phase = corev1.PodRunning
		p.Status.ObservedGeneration = observed
		if status != "" {
			r := res(status)
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Resources: &r}}
		}
		return p
	}
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p", Generation: 1}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	pending.Status.Phase = corev1.PodPending
	infeasible := pod(2, 2, "500m", "100m")
	infeasible.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: corev1.PodReasonInfeasible}}
	cases := map[string]struct {
		sent        bool // a resize to generation 2 was sent at t0
		pod         *corev1.Pod
		at          time.Duration
		busy, stale bool
		applied     float64
	}{
		"pending pod, nothing sent":              {pod: pending},
		"running pod resized by someone else":    {pod: pod(2, 1, "500m", "100m")},
		"cache older than the resize":            {sent: true, pod: pod(1, 1, "100m", "100m"), at: time.Second, busy: true, stale: true},
		"resize seen, kubelet not yet":           {sent: true, pod: pod(2, 1, "500m", "100m"), at: time.Second, busy: true},
		"applied":                                {sent: true, pod: pod(2, 2, "500m", "500m"), at: 2 * time.Second, applied: 1},
		"infeasible: not in flight":              {sent: true, pod: infeasible, at: time.Second},
		"stale past the in-flight timeout: gone": {sent: true, pod: pod(1, 1, "100m", "100m"), at: inflightTimeout + time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u := &Updater{Metrics: NewMetrics(prometheus.NewRegistry()), MaxInFlight: 10}
			if tc.sent {
				if !u.reserve("p", t0) {
					t.Fatal("reserve refused")
				}
				u.sent("p", 2)
			}
			busy, stale := u.settle(tc.pod, t0.Add(tc.at))
			if busy != tc.busy || stale != tc.stale {
				t.Errorf("settle = busy %v stale %v, want %v %v", busy, stale, tc.busy, tc.stale)
			}
			if got := testutil.ToFloat64(u.Metrics.Resizes.WithLabelValues("applied")); got != tc.applied {
				t.Errorf("%g resizes counted applied, want %g", got, tc.applied)
			}
			if _, still := u.inflight["p"]; still != tc.busy {
				t.Errorf("in flight after settle: %v, want %v", still, tc.busy)
			}
		})
	}
}
