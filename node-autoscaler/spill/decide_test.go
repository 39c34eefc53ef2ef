package spill

import (
	"strings"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// pendingPod is unschedulable since `since`, requesting 1 CPU.
func pendingPod(since time.Time, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", CreationTimestamp: metav1.NewTime(since.Add(-time.Second))},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, LastTransitionTime: metav1.NewTime(since),
		}}},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func virtualNode(mods ...func(*corev1.Node)) *corev1.Node {
	cfg := DefaultConfig()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "virtual-kubelet", Labels: map[string]string{"type": "virtual-kubelet"}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{cfg.VirtualNodeTaint}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100"), corev1.ResourceMemory: resource.MustParse("1Ti"), corev1.ResourcePods: resource.MustParse("1000"),
		}},
	}
	for _, m := range mods {
		m(n)
	}
	return n
}

func pool(name string, boot time.Duration) Pool {
	reqs := karpscheduling.NewRequirements(karpscheduling.NewRequirement(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, name))
	return Pool{Name: name, Requirements: reqs, BootTime: boot}
}

func launch(name, poolName string, created time.Time) Launch {
	return Launch{Name: name, Pool: poolName, Created: created,
		Requirements: karpscheduling.NewRequirements(karpscheduling.NewRequirement(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, poolName))}
}

func TestDecide(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Budget = 5 * time.Second
	now := t0
	base := Cluster{Now: now, Pools: []Pool{pool("default", 60*time.Second)}, VirtualNodes: []*corev1.Node{virtualNode()}}
	withLaunch := func(created time.Time) Cluster {
		c := base
		c.Launches = []Launch{launch("default-abc", "default", created)}
		return c
	}
	for _, tc := range []struct {
		name       string
		cand       Candidate
		cluster    Cluster
		action     Action
		reason     string
		requeue    time.Duration
		msg        string
		budgetWarn bool
	}{
		{name: "scheduled pod", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) { p.Spec.NodeName = "n1" })}, cluster: base, action: Wait, reason: ReasonNotPending},
		{name: "not yet seen by the scheduler", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) { p.Status.Conditions = nil })}, cluster: base, action: Wait, reason: ReasonNotPending},
		{name: "preempting (nominated)", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) { p.Status.NominatedNodeName = "n1" })}, cluster: base, action: Wait, reason: ReasonNotPending},
		{name: "terminating", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} })}, cluster: base, action: Wait, reason: ReasonNotPending},
		{name: "daemonset pod", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "ds"}}
		})}, cluster: base, action: Wait, reason: ReasonDaemonSet},
		{name: "opted out", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Annotations = map[string]string{SpillAnnotation: "false"}
		})}, cluster: base, action: Wait, reason: ReasonOptedOut},
		{name: "already tolerates the virtual node", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: cfg.VirtualNodeTaint.Key, Operator: corev1.TolerationOpExists}}
		})}, cluster: base, action: Wait, reason: ReasonAlreadyTolerates},
		{name: "new launch takes 60 s, budget 5 s: spill at once", cand: Candidate{Pod: pendingPod(now)}, cluster: base, action: Spill, reason: ReasonOverBudget, msg: "a new node from NodePool default"},
		{name: "launch in flight ready in 3 s, waited 1 s: wait", cand: Candidate{Pod: pendingPod(now.Add(-time.Second))}, cluster: withLaunch(now.Add(-57 * time.Second)), action: Wait, reason: ReasonWithinBudget, requeue: 4 * time.Second},
		{name: "launch in flight ready in 3 s, waited 3 s: spill", cand: Candidate{Pod: pendingPod(now.Add(-3 * time.Second))}, cluster: withLaunch(now.Add(-57 * time.Second)), action: Spill, reason: ReasonOverBudget, msg: "NodeClaim default-abc"},
		{name: "launch overdue counts as due now", cand: Candidate{Pod: pendingPod(now.Add(-time.Second))}, cluster: withLaunch(now.Add(-5 * time.Minute)), action: Wait, reason: ReasonWithinBudget},
		{name: "pod budget annotation wins", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Annotations = map[string]string{BudgetAnnotation: "2m"}
		}), NamespaceBudget: "1s"}, cluster: base, action: Wait, reason: ReasonWithinBudget, requeue: 2 * time.Minute},
		{name: "namespace budget", cand: Candidate{Pod: pendingPod(now), NamespaceBudget: "90s"}, cluster: base, action: Wait, reason: ReasonWithinBudget},
		{name: "bad pod budget falls back to the namespace's, with a warning", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Annotations = map[string]string{BudgetAnnotation: "soon"}
		}), NamespaceBudget: "90s"}, cluster: base, action: Wait, reason: ReasonWithinBudget, budgetWarn: true},
		{name: "negative budget is refused", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Annotations = map[string]string{BudgetAnnotation: "-5s"}
		})}, cluster: base, action: Spill, reason: ReasonOverBudget, budgetWarn: true},
		{name: "no pool can run it but the virtual node can: spill", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"type": "virtual-kubelet"}
		})}, cluster: base, action: Spill, reason: ReasonOverBudget, msg: "no NodePool can run it"},
		{name: "pool taint not tolerated", cand: Candidate{Pod: pendingPod(now)}, cluster: Cluster{Now: now, VirtualNodes: base.VirtualNodes, Pools: []Pool{{
			Name: "tainted", BootTime: time.Second, Taints: []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}},
			Requirements: karpscheduling.NewRequirements(),
		}}}, action: Spill, reason: ReasonOverBudget, msg: "no NodePool can run it"},
		{name: "host port", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		})}, cluster: base, action: CannotSpill, reason: ReasonHostPort, msg: "host port 8080"},
		{name: "local volume", cand: Candidate{Pod: pendingPod(now), LocalVolume: "data (local volume pv-1)"}, cluster: base, action: CannotSpill, reason: ReasonLocalVolume},
		{name: "no virtual node", cand: Candidate{Pod: pendingPod(now)}, cluster: Cluster{Now: now, Pools: base.Pools}, action: CannotSpill, reason: ReasonNoVirtualNode},
		{name: "virtual node excluded by node selector", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"type": "ecs"}
		})}, cluster: Cluster{Now: now, Pools: []Pool{{Name: "ecs", BootTime: time.Minute, Requirements: karpscheduling.NewLabelRequirements(map[string]string{"type": "ecs"})}}, VirtualNodes: base.VirtualNodes}, action: CannotSpill, reason: ReasonNoVirtualNode},
		{name: "virtual node's other taint not tolerated", cand: Candidate{Pod: pendingPod(now)}, cluster: Cluster{Now: now, Pools: base.Pools, VirtualNodes: []*corev1.Node{virtualNode(func(n *corev1.Node) {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "eci", Effect: corev1.TaintEffectNoExecute})
		})}}, action: CannotSpill, reason: ReasonNoVirtualNode},
		{name: "too large for the virtual node", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("200")
		})}, cluster: base, action: CannotSpill, reason: ReasonTooLarge, msg: "cpu 200 > 100"},
		{name: "fits no pool and no virtual node", cand: Candidate{Pod: pendingPod(now, func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"gpu": "a100"}
		})}, cluster: base, action: CannotSpill, reason: ReasonNoNodePool, msg: "no NodePool can run the pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.cand, tc.cluster, cfg)
			if got.Action != tc.action || got.Reason != tc.reason {
				t.Fatalf("Decide = %v/%s (%s), want %v/%s", got.Action, got.Reason, got.Message, tc.action, tc.reason)
			}
			if tc.requeue != 0 && got.RequeueAfter != tc.requeue {
				t.Errorf("RequeueAfter = %s, want %s", got.RequeueAfter, tc.requeue)
			}
			if tc.msg != "" && !strings.Contains(got.Message, tc.msg) {
				t.Errorf("message %q lacks %q", got.Message, tc.msg)
			}
			if (got.BudgetWarning != "") != tc.budgetWarn {
				t.Errorf("budget warning %q, want one: %v", got.BudgetWarning, tc.budgetWarn)
			}
		})
	}
}

func TestBootTimes(t *testing.T) {
	claim := func(pool string, created time.Time, took time.Duration, initialized bool) karpv1.NodeClaim {
		nc := karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{
			Name: pool + created.Format("150405"), CreationTimestamp: metav1.NewTime(created),
			Labels: map[string]string{karpv1.NodePoolLabelKey: pool},
		}}
		st := metav1.ConditionFalse
		if initialized {
			st = metav1.ConditionTrue
		}
		nc.Status.Conditions = []status.Condition{{Type: karpv1.ConditionTypeInitialized, Status: st, LastTransitionTime: metav1.NewTime(created.Add(took))}}
		return nc
	}
	claims := []karpv1.NodeClaim{
		// Pool a: 7 boots; the 5 most recent are 40, 50, 60, 70, 300 s → median 60 s.
		claim("a", t0.Add(-10*time.Minute), 10*time.Second, true),
		claim("a", t0.Add(-9*time.Minute), 10*time.Second, true),
		claim("a", t0.Add(-8*time.Minute), 40*time.Second, true),
		claim("a", t0.Add(-7*time.Minute), 300*time.Second, true),
		claim("a", t0.Add(-6*time.Minute), 50*time.Second, true),
		claim("a", t0.Add(-5*time.Minute), 70*time.Second, true),
		claim("a", t0.Add(-4*time.Minute), 60*time.Second, true),
		// Pool b: only a launch in flight → no observation.
		claim("b", t0.Add(-time.Minute), 0, false),
	}
	got := BootTimes(claims)
	if got["a"] != 60*time.Second {
		t.Errorf("pool a boot time %s, want 60s (median of the 5 most recent)", got["a"])
	}
	if _, ok := got["b"]; ok {
		t.Errorf("pool b has a boot time %s without any initialized node", got["b"])
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"negative budget", func(c *Config) { c.Budget = -time.Second }, "budget"},
		{"no boot time", func(c *Config) { c.DefaultBootTime = 0 }, "boot time"},
		{"empty selector", func(c *Config) { c.VirtualNodeSelector = nil }, "selector"},
		{"bad taint key", func(c *Config) { c.VirtualNodeTaint.Key = "a b" }, "taint key"},
		{"bad effect", func(c *Config) { c.VirtualNodeTaint.Effect = "Sometimes" }, "effect"},
		{"positive hold priority", func(c *Config) { c.HoldPriority = 10 }, "negative"},
		{"no hold start timeout", func(c *Config) { c.HoldStartTimeout = 0 }, "hold start timeout"},
		{"zero move bound", func(c *Config) { c.MaxMovesInFlight = 0 }, "bounds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}
