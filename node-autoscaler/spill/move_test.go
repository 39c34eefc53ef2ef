package spill

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

func spilledPod(spilledAt time.Time, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", Namespace: "shop", UID: "uid-1", ResourceVersion: "7",
			Labels:          map[string]string{"app": "web", podTemplateHashLabel: "abc", SpilledLabel: "true"},
			Annotations:     map[string]string{SpilledAtAnnotation: spilledAt.Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "rs-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec:   corev1.PodSpec{NodeName: "virtual-kubelet"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func readyNode(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

func replicaSet(replicas, ready int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", UID: "rs-uid", Generation: 2},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To(replicas)},
		Status:     appsv1.ReplicaSetStatus{ObservedGeneration: 2, ReadyReplicas: ready},
	}
}

func TestDecideMove(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldDuration, cfg.MoveBackAfter = 10*time.Minute, 30*time.Second
	now := t0
	spilledAt := now.Add(-time.Minute)
	virtual := readyNode("virtual-kubelet", map[string]string{"type": "virtual-kubelet"})
	real := readyNode("node-1", nil)
	hold := func(node string) *corev1.Pod {
		h := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hold-web-1", CreationTimestamp: metav1.NewTime(spilledAt), Annotations: map[string]string{
			HoldUntilAnnotation: spilledAt.Add(cfg.HoldDuration).Format(time.RFC3339),
		}}, Spec: corev1.PodSpec{NodeName: node}}
		if node != "" {
			h.Status.Phase = corev1.PodRunning
		}
		return h
	}
	ready := MoveInput{Now: now, Pod: spilledPod(spilledAt), Node: virtual, Hold: hold("node-1"), HoldNode: real, ReplicaSet: replicaSet(6, 6), Deployment: true}
	with := func(mod func(*MoveInput)) MoveInput {
		in := ready
		mod(&in)
		return in
	}
	moving := func(rs *appsv1.ReplicaSet, readyOwned int) MoveInput {
		return with(func(in *MoveInput) {
			in.Pod = spilledPod(spilledAt, func(p *corev1.Pod) { p.Annotations[MovingBackAnnotation] = now.Format(time.RFC3339) })
			in.ReplicaSet, in.ReadyOwned = rs, readyOwned
			in.Hold, in.HoldNode = nil, nil
		})
	}
	noMove := cfg
	noMove.MoveBack = false
	for _, tc := range []struct {
		name   string
		in     MoveInput
		cfg    Config
		action MoveAction
		reason string
	}{
		{"room ready: release", ready, cfg, MoveRelease, MoveReasonRoomReady},
		{"terminating", with(func(in *MoveInput) {
			in.Pod = spilledPod(spilledAt, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} })
		}), cfg, MoveNone, MoveReasonTerminating},
		{"still pending", with(func(in *MoveInput) {
			in.Pod = spilledPod(spilledAt, func(p *corev1.Pod) { p.Spec.NodeName = "" })
			in.Node = nil
		}), cfg, MoveNone, MoveReasonPending},
		{"landed on a real node: drop the hold", with(func(in *MoveInput) { in.Node = real }), cfg, MoveDeleteHold, MoveReasonOnRealNode},
		{"landed on a real node, no hold", with(func(in *MoveInput) { in.Node, in.Hold = real, nil }), cfg, MoveNone, MoveReasonOnRealNode},
		{"hold missing: create", with(func(in *MoveInput) { in.Hold, in.HoldNode = nil, nil }), cfg, MoveCreateHold, MoveReasonNoHold},
		{"hold expired: delete it", with(func(in *MoveInput) { in.Now = spilledAt.Add(cfg.HoldDuration) }), cfg, MoveDeleteHold, MoveReasonHoldExpired},
		{"hold expired and gone: stay", with(func(in *MoveInput) { in.Now, in.Hold = spilledAt.Add(cfg.HoldDuration+time.Second), nil }), cfg, MoveNone, MoveReasonHoldExpired},
		{"hold pending", with(func(in *MoveInput) { in.Hold, in.HoldNode = hold(""), nil }), cfg, MoveNone, MoveReasonHoldPending},
		{"hold not running past its start timeout: report it", with(func(in *MoveInput) {
			in.Hold, in.HoldNode, in.Now = hold(""), nil, spilledAt.Add(cfg.HoldStartTimeout)
		}), cfg, MoveReportHold, MoveReasonHoldStuck},
		{"hold not running, reported already: wait", with(func(in *MoveInput) {
			in.Hold, in.HoldNode, in.Now = hold(""), nil, spilledAt.Add(cfg.HoldStartTimeout)
			in.Hold.Annotations[HoldNotRunningAnnotation] = in.Now.Format(time.RFC3339)
		}), cfg, MoveNone, MoveReasonHoldPending},
		{"hold's node not ready", with(func(in *MoveInput) {
			n := real.DeepCopy()
			n.Status.Conditions[0].Status = corev1.ConditionFalse
			in.HoldNode = n
		}), cfg, MoveNone, MoveReasonHoldPending},
		{"settling", with(func(in *MoveInput) {
			in.Pod = spilledPod(now.Add(-10 * time.Second))
		}), cfg, MoveNone, MoveReasonSettling},
		{"move-back off", ready, noMove, MoveNone, MoveReasonDisabled},
		{"bare ReplicaSet: unsupported", with(func(in *MoveInput) { in.Deployment = false }), cfg, MoveNone, MoveReasonUnsupported},
		{"StatefulSet pod: unsupported", with(func(in *MoveInput) { in.ReplicaSet = nil }), cfg, MoveNone, MoveReasonUnsupported},
		{"global bound", with(func(in *MoveInput) { in.InFlight = cfg.MaxMovesInFlight }), cfg, MoveNone, MoveReasonBounded},
		{"workload bound", with(func(in *MoveInput) { in.InFlight, in.InFlightWorkload = 1, cfg.MaxMovesPerWorkload }), cfg, MoveNone, MoveReasonBounded},
		{"released, placeholder still there: hand its room over", with(func(in *MoveInput) {
			in.Pod = spilledPod(spilledAt, func(p *corev1.Pod) { p.Annotations[MovingBackAnnotation] = now.Format(time.RFC3339) })
			in.ReadyOwned = 6
		}), cfg, MoveDeleteHold, MoveReasonHandedOver},
		{"released, replacement not ready: wait", moving(replicaSet(6, 5), 5), cfg, MoveNone, MoveReasonReplacing},
		// The ReplicaSet's status still counts the released pod (it lags the release): the
		// decision goes by the pods it owns, so the pod waits.
		{"released, ReplicaSet status stale: wait", moving(replicaSet(6, 6), 5), cfg, MoveNone, MoveReasonReplacing},
		{"released, ReplicaSet whole: evict", moving(replicaSet(6, 6), 6), cfg, MoveEvict, MoveReasonReplaced},
		{"released, scaled in meanwhile: evict", moving(replicaSet(3, 3), 3), cfg, MoveEvict, MoveReasonReplaced},
		{"released, ReplicaSet gone: evict", moving(nil, 0), cfg, MoveEvict, MoveReasonOwnerGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DecideMove(tc.in, tc.cfg)
			if got.Action != tc.action || got.Reason != tc.reason {
				t.Fatalf("DecideMove = %v/%s, want %v/%s", got.Action, got.Reason, tc.action, tc.reason)
			}
			if got.Action == MoveNone && got.Reason != MoveReasonTerminating && got.Reason != MoveReasonOnRealNode && got.Reason != MoveReasonHoldExpired && got.RequeueAfter <= 0 {
				t.Errorf("waiting without a requeue: %+v", got)
			}
		})
	}
}

func TestPatch(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
	}{
		{"pod with labels, annotations and tolerations", pendingPod(t0, func(p *corev1.Pod) {
			p.ResourceVersion = "42"
			p.Labels = map[string]string{"app": "web"}
			p.Annotations = map[string]string{"a/b~c": "x"}
			p.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)}}
		})},
		{"bare pod", pendingPod(t0, func(p *corev1.Pod) { p.ResourceVersion = "42" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := Patch(tc.pod, cfg, t0)
			if err != nil {
				t.Fatal(err)
			}
			got := applyPatch(t, tc.pod, patch)
			want := tc.pod.DeepCopy()
			want.Spec.Tolerations = append(want.Spec.Tolerations, corev1.Toleration{Key: cfg.VirtualNodeTaint.Key, Operator: corev1.TolerationOpEqual, Value: "alibabacloud", Effect: corev1.TaintEffectNoSchedule})
			if want.Labels == nil {
				want.Labels = map[string]string{}
			}
			want.Labels[SpilledLabel] = "true"
			if want.Annotations == nil {
				want.Annotations = map[string]string{}
			}
			want.Annotations[SpilledAtAnnotation] = "2026-11-30T12:00:00Z"
			want.Annotations[PodDeletionCostAnnotation] = SpilledDeletionCost
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("patched pod\n got %+v\nwant %+v", got.ObjectMeta, want.ObjectMeta)
			}
			// A pod changed since it was read is not patched.
			stale := tc.pod.DeepCopy()
			stale.ResourceVersion = "43"
			if _, err := tryPatch(stale, patch); err == nil {
				t.Error("the patch applied to a newer version of the pod")
			}
		})
	}
}

func TestReleasePatch(t *testing.T) {
	pod := spilledPod(t0)
	got := applyPatch(t, pod, ReleasePatch(pod, t0.Add(time.Minute), ""))
	if _, ok := got.Labels[podTemplateHashLabel]; ok {
		t.Error("pod-template-hash kept: the ReplicaSet would still own the pod")
	}
	if got.Labels["app"] != "web" || got.Labels[SpilledLabel] != "true" {
		t.Errorf("other labels changed: %v", got.Labels)
	}
	if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "rs-uid" || got.OwnerReferences[0].Controller != nil {
		t.Errorf("owner reference should stay, without controller: %+v", got.OwnerReferences)
	}
	if got.Annotations[MovingBackAnnotation] != "2026-11-30T12:01:00Z" {
		t.Errorf("release time %q", got.Annotations[MovingBackAnnotation])
	}
}

func TestPlaceholder(t *testing.T) {
	cfg := DefaultConfig()
	pod := pendingPod(t0, func(p *corev1.Pod) {
		p.UID = "uid-1"
		p.Spec.NodeSelector = map[string]string{"zone": "a"}
		p.Spec.Tolerations = []corev1.Toleration{cfg.toleration(), {Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web"}}
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi"),
		}}})
	})
	h := Placeholder(pod, cfg, t0)
	if h.Name != "hold-web-1" || h.Namespace != "shop" || h.Labels[HoldForLabel] != "uid-1" {
		t.Errorf("identity: %s/%s labels %v", h.Namespace, h.Name, h.Labels)
	}
	if len(h.OwnerReferences) != 1 || h.OwnerReferences[0].UID != "uid-1" || h.OwnerReferences[0].Kind != "Pod" {
		t.Errorf("owner: %+v", h.OwnerReferences)
	}
	req := h.Spec.Containers[0].Resources.Requests
	if req.Cpu().String() != "1500m" || req.Memory().String() != "1Gi" {
		t.Errorf("requests %v, want the pod's: cpu 1500m, memory max(1Gi init, 256Mi) = 1Gi", req)
	}
	if len(h.Spec.Tolerations) != 1 || h.Spec.Tolerations[0].Key != "dedicated" {
		t.Errorf("tolerations %+v: want the pod's without the virtual node's", h.Spec.Tolerations)
	}
	if h.Spec.NodeSelector["zone"] != "a" || h.Spec.PriorityClassName != cfg.HoldPriorityClass {
		t.Errorf("placement: selector %v priority class %q", h.Spec.NodeSelector, h.Spec.PriorityClassName)
	}
	if h.Annotations[karpv1.DoNotDisruptAnnotationKey] != "15m0s" || h.Annotations[HoldUntilAnnotation] != "2026-11-30T12:15:00Z" {
		t.Errorf("hold bounds: %v", h.Annotations)
	}
}

func TestHoldName(t *testing.T) {
	cfg := DefaultConfig()
	long := strings.Repeat("a", 253)
	if n := HoldName(long); len(n) > 253 || !strings.HasPrefix(n, "hold-") || n == HoldName(long[:252]+"b") {
		t.Errorf("HoldName of a 253-character name: %q (%d characters)", n, len(n))
	}
	if pc := HoldPriorityClass(cfg); pc.Value >= 0 || pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != corev1.PreemptNever {
		t.Errorf("priority class %+v", pc)
	}
}

func applyPatch(t *testing.T, pod *corev1.Pod, patch []byte) *corev1.Pod {
	t.Helper()
	got, err := tryPatch(pod, patch)
	if err != nil {
		t.Fatalf("applying %s: %v", patch, err)
	}
	return got
}

func tryPatch(pod *corev1.Pod, patch []byte) (*corev1.Pod, error) {
	doc, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, err
	}
	var got corev1.Pod
	return &got, json.Unmarshal(out, &got)
}

// The placeholder is the pod's twin for placement: its pod anti-affinity and zone spread (with
// matchLabelKeys resolved from the pod's labels), the same rules over the workload's other
// placeholders, and its host ports; never the pod's labels.
func TestPlaceholderIsThePodsTwin(t *testing.T) {
	cfg := DefaultConfig()
	web := map[string]string{"app": "web"}
	pod := pendingPod(t0, func(p *corev1.Pod) {
		p.UID = "uid-1"
		p.Labels = map[string]string{"app": "web", "pod-template-hash": "abc"}
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-abc", UID: "rs-1", Controller: ptr.To(true)}}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
			{LabelSelector: &metav1.LabelSelector{MatchLabels: web}, TopologyKey: corev1.LabelHostname},
			{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: corev1.LabelHostname},
		}}}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: web}, MatchLabelKeys: []string{"pod-template-hash"}}}
		p.Spec.SchedulerName = "default-scheduler"
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, HostPort: 18080}, {ContainerPort: 9090}}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, HostPort: 18080}}})
	})
	h := Placeholder(pod, cfg, t0)
	if h.Labels["app"] != "" || h.Labels[HoldGroupLabel] != "rs-1" {
		t.Errorf("labels %v: want the hold group (the ReplicaSet) and none of the pod's", h.Labels)
	}
	checkTwinRules(t, h)
	if ports := h.Spec.Containers[0].Ports; len(ports) != 1 || ports[0].HostPort != 18080 || ports[0].Name != "" {
		t.Errorf("ports %+v: want host port 18080 once", ports)
	}
	if h.Spec.SchedulerName != "default-scheduler" || h.Spec.PriorityClassName != cfg.HoldPriorityClass {
		t.Errorf("scheduler %q, priority class %q", h.Spec.SchedulerName, h.Spec.PriorityClassName)
	}
}

// checkTwinRules checks the placeholder's anti-affinity and spread against the pod's of
// TestPlaceholderIsThePodsTwin.
func checkTwinRules(t *testing.T, h *corev1.Pod) {
	t.Helper()
	anti := h.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(anti) != 3 || anti[0].LabelSelector.MatchLabels["app"] != "web" || anti[1].LabelSelector.MatchLabels[HoldGroupLabel] != "rs-1" ||
		anti[1].TopologyKey != corev1.LabelHostname || anti[2].LabelSelector.MatchLabels["app"] != "db" {
		t.Errorf("anti-affinity %+v: want web's term, its twin over the placeholders, and db's term alone", anti)
	}
	spread := h.Spec.TopologySpreadConstraints
	if len(spread) != 2 || len(spread[0].MatchLabelKeys) != 0 || spread[0].TopologyKey != corev1.LabelTopologyZone ||
		len(spread[0].LabelSelector.MatchExpressions) != 1 || spread[0].LabelSelector.MatchExpressions[0].Values[0] != "abc" ||
		spread[1].LabelSelector.MatchLabels[HoldGroupLabel] != "rs-1" || spread[1].MaxSkew != 1 || spread[1].WhenUnsatisfiable != corev1.ScheduleAnyway {
		t.Errorf("spread %+v: want the pod's with pod-template-hash resolved, and its soft twin over the placeholders", spread)
	}
}

func TestPlanRelease(t *testing.T) {
	web := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
	pod := func(ip string) *corev1.Pod {
		p := spilledPod(t0, func(p *corev1.Pod) {
			p.UID, p.Status.PodIP = "uid-1", ip
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			p.Labels["tier"] = "front"
			p.Spec.Containers = []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}
		})
		return p
	}
	svc := func(name string, sel map[string]string, target intstr.IntOrString) corev1.Service {
		return corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: sel,
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: target, Protocol: corev1.ProtocolTCP}}}}
	}
	policy := func(keys ...string) networkingv1.NetworkPolicy {
		sel := map[string]string{}
		for _, k := range keys {
			sel[k] = "x"
		}
		return networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: sel}}}}}}}
	}
	services := []corev1.Service{
		svc("web", map[string]string{"app": "web"}, intstr.FromString("http")),
		svc("web-direct", map[string]string{"app": "web"}, intstr.FromInt32(9090)),
		svc("db", map[string]string{"app": "db"}, intstr.FromInt32(5432)),
	}
	cases := map[string]struct {
		pod      *corev1.Pod
		policies []networkingv1.NetworkPolicy
		label    string
		slices   int
	}{
		"first key of the selector":                {pod("10.244.0.7"), nil, "app", 2},
		"a key NetworkPolicies use is kept":        {pod("10.244.0.7"), []networkingv1.NetworkPolicy{policy("app")}, "tier", 2},
		"every key used: the pod keeps its labels": {pod("10.244.0.7"), []networkingv1.NetworkPolicy{policy("app", "tier")}, "", 0},
		"a loopback address cannot be in a slice":  {pod("127.64.0.7"), nil, "", 0},
		"no address yet":                           {pod(""), nil, "", 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan := PlanRelease(tc.pod, web, services, tc.policies)
			if plan.Label != tc.label || len(plan.Slices) != tc.slices || (plan.Label == "") != (plan.Why != "") {
				t.Fatalf("plan %q with %d slices (%s), want %q with %d", plan.Label, len(plan.Slices), plan.Why, tc.label, tc.slices)
			}
			for _, s := range plan.Slices {
				e := s.Endpoints[0]
				if s.Labels[discoveryv1.LabelServiceName] == "db" || e.Addresses[0] != "10.244.0.7" || !*e.Conditions.Ready || len(s.Ports) != 1 || s.OwnerReferences[0].UID != "uid-1" {
					t.Errorf("slice %+v", s)
				}
				if want := map[string]int32{"web": 8080, "web-direct": 9090}[s.Labels[discoveryv1.LabelServiceName]]; *s.Ports[0].Port != want {
					t.Errorf("slice of %s has port %d, want %d", s.Labels[discoveryv1.LabelServiceName], *s.Ports[0].Port, want)
				}
			}
		})
	}
	released := applyPatch(t, pod("10.244.0.7"), ReleasePatch(pod("10.244.0.7"), t0, "app"))
	if _, ok := released.Labels["app"]; ok || released.Annotations[ReleasedLabelAnnotation] != "app=web" || released.Labels["tier"] != "front" {
		t.Errorf("released pod's labels %v, annotations %v", released.Labels, released.Annotations)
	}
}
