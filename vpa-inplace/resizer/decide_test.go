package resizer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

var now = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func q(s string) resource.Quantity { return resource.MustParse(s) }

func rl(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = q(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = q(mem)
	}
	return l
}

func ptr[T any](v T) *T { return &v }

// pod is a Running, Ready (for an hour) Burstable pod: app requests 100m/128Mi, limits 200m/256Mi.
func pod(mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name:      "app",
			Resources: corev1.ResourceRequirements{Requests: rl("100m", "128Mi"), Limits: rl("200m", "256Mi")},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour)),
		}}},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func vpa(mode vpav1.UpdateMode, cpu, mem string, mut ...func(*vpav1.VerticalPodAutoscaler)) *vpav1.VerticalPodAutoscaler {
	v := &vpav1.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       vpav1.VerticalPodAutoscalerSpec{UpdatePolicy: &vpav1.PodUpdatePolicy{UpdateMode: &mode}},
		Status: vpav1.VerticalPodAutoscalerStatus{Recommendation: &vpav1.RecommendedPodResources{
			ContainerRecommendations: []vpav1.RecommendedContainerResources{{ContainerName: "app", Target: rl(cpu, mem)}},
		}},
	}
	for _, m := range mut {
		m(v)
	}
	return v
}

func pending(reason, msg string, since time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
			LastTransitionTime: metav1.NewTime(now.Add(-since)),
		})
	}
}

func guaranteed(p *corev1.Pod) {
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("200m", "256Mi"), Limits: rl("200m", "256Mi")}
}

func TestDecide(t *testing.T) {
	inPlace, orRecreate := vpav1.UpdateModeInPlace, vpav1.UpdateModeInPlaceOrRecreate
	requestsOnly := func(v *vpav1.VerticalPodAutoscaler) {
		v.Spec.ResourcePolicy = &vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{{
			ContainerName: "*", ControlledValues: ptr(vpav1.ContainerControlledValuesRequestsOnly),
		}}}
	}
	boost := func(factor int32, secs int32) func(*vpav1.VerticalPodAutoscaler) {
		return func(v *vpav1.VerticalPodAutoscaler) {
			v.Spec.StartupBoost = &vpav1.StartupBoost{CPU: &vpav1.GenericStartupBoost{Type: vpav1.FactorStartupBoostType, Factor: &factor, DurationSeconds: &secs}}
		}
	}
	room := rl("4", "8Gi")
	started := func(restarts int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: restarts}}
		}
	}
	boostedTo300m := func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = q("300m")
		p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = q("600m")
	}
	readyFor := func(d time.Duration) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-d)) }
	}
	cases := []struct {
		name   string
		in     Input
		action Action
		reason Reason
		// want is container app's new requests/limits as "cpu/mem cpu/mem" ("" = unchanged).
		wantReq, wantLim corev1.ResourceList
		msg              string
	}{
		{name: "mode Off: recommendations only", in: Input{VPA: vpa(vpav1.UpdateModeOff, "300m", "128Mi"), Pod: pod()}, action: None, reason: ReasonRecommendOnly},
		{name: "mode Recreate (default) is not in place", in: Input{VPA: vpa(vpav1.UpdateModeRecreate, "300m", "128Mi"), Pod: pod()}, action: None, reason: ReasonRecommendOnly},
		{name: "pending pod", in: Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })}, action: None, reason: ReasonPodNotRunning},
		{name: "terminating pod", in: Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} })}, action: None, reason: ReasonPodNotRunning},
		{name: "virtual node", in: Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(), OnVirtualNode: true}, action: None, reason: ReasonVirtualNode, msg: "virtual node node-1"},
		{name: "BestEffort keeps its class", in: Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(func(p *corev1.Pod) { p.Spec.Containers[0].Resources = corev1.ResourceRequirements{} })}, action: None, reason: ReasonBestEffort},
		{name: "no recommendation yet", in: Input{VPA: vpa(inPlace, "300m", "128Mi", func(v *vpav1.VerticalPodAutoscaler) { v.Status.Recommendation = nil }), Pod: pod()}, action: None, reason: ReasonNoRecommendation},
		{
			name: "cpu up, limit keeps its 2x ratio, memory within hysteresis",
			in:   Input{VPA: vpa(inPlace, "300m", "130Mi"), Pod: pod()}, action: Resize, reason: ReasonResize,
			wantReq: rl("300m", "130Mi"), wantLim: rl("600m", "260Mi"),
		},
		{name: "within hysteresis", in: Input{VPA: vpa(inPlace, "105m", "130Mi"), Pod: pod()}, action: None, reason: ReasonWithinHysteresis},
		{
			name: "Guaranteed stays Guaranteed (ratio 1)",
			in:   Input{VPA: vpa(inPlace, "500m", "256Mi"), Pod: pod(guaranteed)}, action: Resize,
			wantReq: rl("500m", ""), wantLim: rl("500m", ""),
		},
		{
			name: "RequestsOnly: limit unchanged, request capped at it",
			in:   Input{VPA: vpa(inPlace, "900m", "128Mi", requestsOnly), Pod: pod()}, action: Resize,
			wantReq: rl("200m", ""), wantLim: rl("200m", ""),
		},
		{
			name: "RequestsOnly on a Guaranteed pod would make it Burstable",
			in:   Input{VPA: vpa(inPlace, "100m", "256Mi", requestsOnly), Pod: pod(guaranteed), LastResize: now.Add(-time.Hour)}, action: None, reason: ReasonQoSChange,
		},
		{
			name: "HPA on cpu utilization: cpu left alone, memory resized",
			in:   Input{VPA: vpa(inPlace, "900m", "512Mi"), Pod: pod(), HPAResources: map[corev1.ResourceName]bool{corev1.ResourceCPU: true}}, action: Resize,
			wantReq: rl("", "512Mi"), wantLim: rl("", "1Gi"),
		},
		{
			name: "HPA on cpu and memory utilization: nothing left",
			in:   Input{VPA: vpa(inPlace, "900m", "512Mi"), Pod: pod(), HPAResources: map[corev1.ResourceName]bool{corev1.ResourceCPU: true, corev1.ResourceMemory: true}}, action: None, reason: ReasonNothingControlled,
		},
		{
			name: "memory limit not lowered without usage data",
			in:   Input{VPA: vpa(inPlace, "100m", "64Mi"), Pod: pod()}, action: None, reason: ReasonNothingControlled,
		},
		{
			name: "memory limit not lowered below usage plus headroom",
			in:   Input{VPA: vpa(inPlace, "100m", "64Mi"), Pod: pod(), MemoryUsage: map[string]int64{"app": 120 << 20}}, action: None, reason: ReasonNothingControlled,
		},
		{
			name: "memory lowered when usage allows",
			in:   Input{VPA: vpa(inPlace, "100m", "64Mi"), Pod: pod(), MemoryUsage: map[string]int64{"app": 50 << 20}}, action: Resize,
			wantReq: rl("", "64Mi"), wantLim: rl("", "128Mi"),
		},
		{
			name: "a decrease waits for the cooldown",
			in:   Input{VPA: vpa(inPlace, "50m", "128Mi"), Pod: pod(), LastResize: now.Add(-10 * time.Second)}, action: None, reason: ReasonCooldown,
		},
		{
			name: "a decrease after the cooldown",
			in:   Input{VPA: vpa(inPlace, "50m", "128Mi"), Pod: pod(), LastResize: now.Add(-2 * time.Minute)}, action: Resize,
			wantReq: rl("50m", ""), wantLim: rl("100m", ""),
		},
		{
			name: "an increase never waits",
			in:   Input{VPA: vpa(inPlace, "400m", "128Mi"), Pod: pod(), LastResize: now.Add(-time.Second)}, action: Resize,
			wantReq: rl("400m", ""), wantLim: rl("800m", ""),
		},
		{
			name: "resizePolicy RestartContainer: cpu left unless restarts allowed",
			in: Input{VPA: vpa(inPlace, "400m", "128Mi"), Pod: pod(func(p *corev1.Pod) {
				p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.RestartContainer}}
			})}, action: None, reason: ReasonNothingControlled,
		},
		{
			name: "resize in progress",
			in: Input{VPA: vpa(inPlace, "400m", "128Mi"), Pod: pod(func(p *corev1.Pod) {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue})
			})}, action: None, reason: ReasonInProgress,
		},
		{
			name: "resize error, InPlace: recorded, no eviction",
			in: Input{VPA: vpa(inPlace, "400m", "128Mi"), AllowEviction: true, Pod: pod(func(p *corev1.Pod) {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue, Reason: corev1.PodReasonError, Message: "cgroup write failed"})
			})}, action: None, reason: ReasonResizeError, msg: "cgroup write failed",
		},
		{
			name: "resize error, InPlaceOrRecreate opted in: evict",
			in: Input{VPA: vpa(orRecreate, "400m", "128Mi"), AllowEviction: true, Pod: pod(func(p *corev1.Pod) {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue, Reason: corev1.PodReasonError})
			})}, action: Evict, reason: ReasonResizeError,
		},
		{
			name: "deferred, same target: wait for the kubelet",
			in:   Input{VPA: vpa(inPlace, "100m", "128Mi"), Pod: pod(pending(corev1.PodReasonDeferred, "node full", time.Hour))}, action: None, reason: ReasonDeferred, msg: "node full",
		},
		{
			name: "deferred, new target inside the backoff: wait",
			in:   Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(pending(corev1.PodReasonDeferred, "node full", 5*time.Second))}, action: None, reason: ReasonDeferred,
		},
		{
			name: "deferred, new target after the backoff: send it",
			in:   Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(pending(corev1.PodReasonDeferred, "node full", time.Minute))}, action: Resize,
			wantReq: rl("300m", ""), wantLim: rl("600m", ""),
		},
		{
			name: "infeasible, target still higher: recorded, not retried",
			in:   Input{VPA: vpa(inPlace, "300m", "128Mi"), Pod: pod(pending(corev1.PodReasonInfeasible, "node has 2 CPUs", time.Hour))}, action: None, reason: ReasonInfeasible, msg: "node has 2 CPUs",
		},
		{
			name: "infeasible, target dropped: retried",
			in:   Input{VPA: vpa(inPlace, "50m", "128Mi"), Pod: pod(pending(corev1.PodReasonInfeasible, "too big", time.Hour))}, action: Resize,
			wantReq: rl("50m", ""), wantLim: rl("100m", ""),
		},
		{
			name: "infeasible, InPlaceOrRecreate without opt-in: no eviction",
			in:   Input{VPA: vpa(orRecreate, "300m", "128Mi"), Pod: pod(pending(corev1.PodReasonInfeasible, "too big", time.Hour))}, action: None, reason: ReasonInfeasible,
		},
		{
			name: "infeasible, InPlaceOrRecreate opted in: evict",
			in:   Input{VPA: vpa(orRecreate, "300m", "128Mi"), AllowEviction: true, Pod: pod(pending(corev1.PodReasonInfeasible, "too big", time.Hour))}, action: Evict, reason: ReasonInfeasible,
		},
		{
			name: "startup boost before Ready: factor × target",
			in: Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), NodeRoom: room, Pod: pod(started(0), func(p *corev1.Pod) {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			})}, action: Resize, reason: ReasonStartupBoost,
			wantReq: rl("300m", ""), wantLim: rl("600m", ""),
		},
		{
			name: "startup boost holds for durationSeconds after Ready",
			in:   Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), NodeRoom: room, Pod: pod(started(0), readyFor(10*time.Second))}, action: Resize, reason: ReasonStartupBoost,
			wantReq: rl("300m", ""), wantLim: rl("600m", ""),
		},
		{
			name:   "boost reverted after Ready held for its duration, whatever the cooldown",
			in:     Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), Boost: Boost{Start: "app=0", Active: true}, NodeRoom: room, LastResize: now.Add(-35 * time.Second), Pod: pod(started(0), boostedTo300m, readyFor(31*time.Second))},
			action: Resize, reason: ReasonBoostEnded,
			wantReq: rl("100m", ""), wantLim: rl("200m", ""),
		},
		{
			name:   "an active boost stays while readiness flaps",
			in:     Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), Boost: Boost{Start: "app=0", Active: true}, NodeRoom: room, Pod: pod(started(0), boostedTo300m, readyFor(5*time.Second))},
			action: None, reason: ReasonNothingControlled,
		},
		{
			name: "no second boost for the same container start when the pod turns unready",
			in: Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), Boost: Boost{Start: "app=0"}, NodeRoom: room, Pod: pod(started(0), func(p *corev1.Pod) {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			})}, action: None, reason: ReasonNothingControlled,
		},
		{
			name: "a restarted container is boosted again",
			in: Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), Boost: Boost{Start: "app=0"}, NodeRoom: room, Pod: pod(started(1), func(p *corev1.Pod) {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			})}, action: Resize, reason: ReasonStartupBoost,
			wantReq: rl("300m", ""), wantLim: rl("600m", ""),
		},
		{
			name: "boost capped at maxAllowed",
			in: Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30), func(v *vpav1.VerticalPodAutoscaler) {
				v.Spec.ResourcePolicy = &vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{{ContainerName: "app", MaxAllowed: rl("250m", "")}}}
			}), NodeRoom: room, Pod: pod(started(0), readyFor(time.Second))}, action: Resize, reason: ReasonStartupBoost,
			wantReq: rl("250m", ""), wantLim: rl("500m", ""),
		},
		{
			name:   "boost capped at the node's room",
			in:     Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), NodeRoom: rl("200m", "1Gi"), Pod: pod(started(0), readyFor(time.Second))},
			action: Resize, reason: ReasonStartupBoost,
			wantReq: rl("200m", ""), wantLim: rl("400m", ""),
		},
		{
			name:   "no room on the node: no boost",
			in:     Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), NodeRoom: rl("100m", "1Gi"), Pod: pod(started(0), readyFor(time.Second))},
			action: None, reason: ReasonNothingControlled,
		},
		{
			name:   "room unknown: no boost",
			in:     Input{VPA: vpa(inPlace, "100m", "128Mi", boost(3, 30)), Pod: pod(started(0), readyFor(time.Second))},
			action: None, reason: ReasonNothingControlled,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Now = now
			d := Decide(in, DefaultConfig())
			if d.Action != tc.action || (tc.reason != "" && d.Reason != tc.reason) {
				t.Fatalf("decision %s/%s (%s), want %s/%s", d.Action, d.Reason, d.Message, tc.action, tc.reason)
			}
			if tc.msg != "" && !strings.Contains(d.Message, tc.msg) {
				t.Errorf("message %q does not mention %q", d.Message, tc.msg)
			}
			if tc.action != Resize {
				if len(d.Containers) != 0 {
					t.Errorf("containers %v on a %s decision", d.Containers, d.Action)
				}
				return
			}
			if len(d.Containers) != 1 || d.Containers[0].Name != "app" {
				t.Fatalf("containers %+v, want app only", d.Containers)
			}
			c := d.Containers[0]
			if !equality.Semantic.DeepEqual(c.Requests, tc.wantReq) || !equality.Semantic.DeepEqual(c.Limits, tc.wantLim) {
				t.Errorf("requests %v limits %v, want %v %v", c.Requests, c.Limits, tc.wantReq, tc.wantLim)
			}
		})
	}
}

func TestDecideLeftToHPAIsReported(t *testing.T) {
	d := Decide(Input{Now: now, VPA: vpa(vpav1.UpdateModeInPlace, "900m", "512Mi"), Pod: pod(), HPAResources: map[corev1.ResourceName]bool{corev1.ResourceCPU: true}}, DefaultConfig())
	if len(d.LeftToHPA) != 1 || d.LeftToHPA[0] != corev1.ResourceCPU {
		t.Errorf("LeftToHPA %v, want [cpu]", d.LeftToHPA)
	}
}

func TestDecideTwoContainersOnePatch(t *testing.T) {
	p := pod(func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar",
			Resources: corev1.ResourceRequirements{Requests: rl("50m", "64Mi"), Limits: rl("100m", "128Mi")}})
	})
	v := vpa(vpav1.UpdateModeInPlace, "300m", "128Mi", func(v *vpav1.VerticalPodAutoscaler) {
		v.Status.Recommendation.ContainerRecommendations = append(v.Status.Recommendation.ContainerRecommendations,
			vpav1.RecommendedContainerResources{ContainerName: "sidecar", Target: rl("150m", "64Mi")})
	})
	d := Decide(Input{Now: now, VPA: v, Pod: p}, DefaultConfig())
	if d.Action != Resize || len(d.Containers) != 2 {
		t.Fatalf("decision %s with %d containers, want one resize of both", d.Action, len(d.Containers))
	}
	body, err := Patch(d)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Spec struct {
			Containers []struct {
				Name      string
				Resources struct{ Requests, Limits map[string]string }
			}
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Containers) != 2 || got.Spec.Containers[1].Name != "sidecar" || got.Spec.Containers[1].Resources.Limits["cpu"] != "300m" {
		t.Errorf("patch %s", body)
	}
}

func TestQoS(t *testing.T) {
	cases := map[corev1.PodQOSClass]corev1.ResourceRequirements{
		corev1.PodQOSBestEffort: {},
		corev1.PodQOSBurstable:  {Requests: rl("100m", "")},
		corev1.PodQOSGuaranteed: {Limits: rl("1", "1Gi")},
	}
	for want, res := range cases {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: res}}}}
		if got := QoS(p); got != want {
			t.Errorf("QoS(%v) = %s, want %s", res, got, want)
		}
	}
}
