package spill

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	karpscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
)

// Launch is a node on its way: a NodeClaim not yet initialized.
type Launch struct {
	// Name is the NodeClaim's; Pool its NodePool's.
	Name, Pool string
	// Created is when the NodeClaim was created.
	Created time.Time
	// Requirements and Taints are what the node will have.
	Requirements karpscheduling.Requirements
	Taints       []corev1.Taint
}

// Pool is a NodePool that can launch nodes.
type Pool struct {
	Name string
	// Requirements (template requirements and labels) and Taints are what its nodes have.
	Requirements karpscheduling.Requirements
	Taints       []corev1.Taint
	// BootTime is how long its nodes take from NodeClaim to initialized node (observed, or the
	// configured default before the first).
	BootTime time.Duration
}

// Cluster is what a spill decision looks at besides the pod.
type Cluster struct {
	Now      time.Time
	Launches []Launch
	Pools    []Pool
	// VirtualNodes are the serverless virtual nodes (Config.VirtualNodeSelector).
	VirtualNodes []*corev1.Node
}

// Candidate is a pending pod and the facts about it that need other objects.
type Candidate struct {
	Pod *corev1.Pod
	// NamespaceBudget is its namespace's BudgetAnnotation ("" when none).
	NamespaceBudget string
	// LocalVolume names a volume that ties the pod to one machine ("" when none).
	LocalVolume string
}

// Action is what to do with a pending pod.
type Action int

const (
	// Wait leaves the pod to the scheduler and Karpenter (look again after RequeueAfter when set).
	Wait Action = iota
	// Spill adds the virtual node's toleration.
	Spill
	// CannotSpill means the pod's expected wait exceeds its budget but it cannot run on the
	// virtual node (Reason says why): an event tells the user.
	CannotSpill
)

// Reasons of decisions (event reasons and metric labels).
const (
	ReasonNotPending       = "NotPending"
	ReasonOptedOut         = "OptedOut"
	ReasonAlreadyTolerates = "AlreadyToleratesVirtualNode"
	ReasonDaemonSet        = "DaemonSetPod"
	ReasonWithinBudget     = "WithinBudget"
	ReasonOverBudget       = "OverBudget"
	ReasonNoNodePool       = "NoNodePool"
	ReasonHostPort         = "HostPort"
	ReasonLocalVolume      = "LocalVolume"
	ReasonNoVirtualNode    = "NoMatchingVirtualNode"
	ReasonTooLarge         = "TooLargeForVirtualNode"
)

// Decision is what Decide chose and why.
type Decision struct {
	Action Action
	// Reason is one of the Reason constants; Message says it for people.
	Reason, Message string
	// Budget is the pod's budget; Expected its expected total wait for a node (math.MaxInt64 when
	// no NodePool can run it); Waited how long it has been pending.
	Budget, Expected, Waited time.Duration
	// BudgetWarning is set when an annotation could not be read and a default was used.
	BudgetWarning string
	// RequeueAfter is when to look again (0: on the next event only).
	RequeueAfter time.Duration
}

// never is the expected wait when no NodePool can run the pod.
const never = time.Duration(math.MaxInt64)

// Decide says whether a pending pod goes to serverless capacity now. It is pure: the same inputs
// give the same decision.
func Decide(c Candidate, cl Cluster, cfg Config) Decision {
	pod := c.Pod
	switch {
	case pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || pod.Status.NominatedNodeName != "" || !unschedulable(pod):
		return Decision{Action: Wait, Reason: ReasonNotPending}
	case ownedBy(pod, "DaemonSet") || ownedBy(pod, "Node"):
		return Decision{Action: Wait, Reason: ReasonDaemonSet}
	case pod.Annotations[SpillAnnotation] == "false":
		return Decision{Action: Wait, Reason: ReasonOptedOut}
	case tolerates(pod.Spec.Tolerations, cfg.VirtualNodeTaint):
		return Decision{Action: Wait, Reason: ReasonAlreadyTolerates}
	}
	d := Decision{}
	d.Budget, d.BudgetWarning = budget(pod, c.NamespaceBudget, cfg.Budget)
	since := pod.CreationTimestamp.Time
	if cond := scheduledCondition(pod); cond != nil && !cond.LastTransitionTime.IsZero() {
		since = cond.LastTransitionTime.Time
	}
	d.Waited = max(cl.Now.Sub(since), 0)
	remaining, via := expectedRemaining(pod, cl)
	d.Expected = never
	if remaining != never {
		d.Expected = d.Waited + remaining
	}
	if d.Expected <= d.Budget {
		d.Action, d.Reason = Wait, ReasonWithinBudget
		d.Message = fmt.Sprintf("expected to wait %s for %s, within its budget of %s", d.Expected.Round(time.Second), via, d.Budget)
		d.RequeueAfter = max(d.Budget-d.Waited, time.Second)
		return d
	}
	expected := "no NodePool can run it"
	if d.Expected != never {
		expected = fmt.Sprintf("expected to wait %s for %s", d.Expected.Round(time.Second), via)
	}
	if reason, why := virtualFit(c, cl, cfg); reason != "" {
		d.Action, d.Reason = CannotSpill, reason
		d.Message = fmt.Sprintf("%s (budget %s), but it cannot run on serverless capacity: %s", expected, d.Budget, why)
		if d.Expected == never {
			d.Reason = ReasonNoNodePool
			d.Message = fmt.Sprintf("no NodePool can run the pod and it cannot run on serverless capacity: %s", why)
		}
		return d
	}
	d.Action, d.Reason = Spill, ReasonOverBudget
	d.Message = fmt.Sprintf("%s, over its budget of %s: spilled to serverless capacity", expected, d.Budget)
	return d
}

// unschedulable is the scheduler's verdict that no node fits the pod now.
func unschedulable(pod *corev1.Pod) bool {
	cond := scheduledCondition(pod)
	return cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable
}

func scheduledCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodScheduled {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func ownedBy(pod *corev1.Pod, kind string) bool {
	for _, o := range pod.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

// tolerates reports whether tolerations already tolerate taint.
func tolerates(tolerations []corev1.Toleration, taint corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(logr.Discard(), &taint, false) {
			return true
		}
	}
	return false
}

// budget is the pod's annotation, else its namespace's, else the default; an unreadable
// annotation falls back to the next and is reported.
func budget(pod *corev1.Pod, namespaceValue string, def time.Duration) (time.Duration, string) {
	var warnings string
	for _, src := range []struct{ where, value string }{
		{"pod", pod.Annotations[BudgetAnnotation]},
		{"namespace", namespaceValue},
	} {
		if src.value == "" {
			continue
		}
		d, err := time.ParseDuration(src.value)
		if err == nil && d >= 0 {
			return d, warnings
		}
		if warnings == "" {
			warnings = fmt.Sprintf("%s annotation %s=%q is not a non-negative duration (like 10s); ignored", src.where, BudgetAnnotation, src.value)
		}
	}
	return def, warnings
}

// expectedRemaining is how much longer the pod is expected to wait for a node: the soonest launch
// in flight that could run it, else the quickest-booting NodePool that could; never when none.
func expectedRemaining(pod *corev1.Pod, cl Cluster) (time.Duration, string) {
	reqs := karpscheduling.NewStrictPodRequirements(pod)
	best, via := never, ""
	boot := map[string]time.Duration{}
	for _, p := range cl.Pools {
		boot[p.Name] = p.BootTime
	}
	for _, l := range cl.Launches {
		bt, ok := boot[l.Pool]
		if !ok || !fits(reqs, pod, l.Requirements, l.Taints) {
			continue
		}
		if left := max(l.Created.Add(bt).Sub(cl.Now), 0); left < best {
			best, via = left, "NodeClaim "+l.Name
		}
	}
	if best != never {
		return best, via
	}
	for _, p := range cl.Pools {
		if fits(reqs, pod, p.Requirements, p.Taints) && p.BootTime < best {
			best, via = p.BootTime, "a new node from NodePool "+p.Name
		}
	}
	return best, via
}

func fits(podReqs karpscheduling.Requirements, pod *corev1.Pod, node karpscheduling.Requirements, taints []corev1.Taint) bool {
	if karpscheduling.Taints(taints).ToleratesPod(pod) != nil {
		return false
	}
	return node.Compatible(podReqs, karpscheduling.AllowUndefinedWellKnownLabels) == nil
}

// virtualFit says why the pod cannot run on any virtual node ("" when one can take it once it
// tolerates the virtual node's taint).
func virtualFit(c Candidate, cl Cluster, cfg Config) (reason, why string) {
	pod := c.Pod
	for _, ctr := range pod.Spec.Containers {
		for _, p := range ctr.Ports {
			if p.HostPort != 0 {
				return ReasonHostPort, fmt.Sprintf("container %s uses host port %d", ctr.Name, p.HostPort)
			}
		}
	}
	if c.LocalVolume != "" {
		return ReasonLocalVolume, "volume " + c.LocalVolume + " is tied to one machine"
	}
	if len(cl.VirtualNodes) == 0 {
		return ReasonNoVirtualNode, fmt.Sprintf("no node matches the virtual node selector %q", cfg.VirtualNodeSelector)
	}
	tolerations := append(append([]corev1.Toleration{}, pod.Spec.Tolerations...), cfg.toleration())
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	matched := false
	for _, n := range cl.VirtualNodes {
		if ok, _ := affinity.Match(n); !ok || !toleratesAll(tolerations, n.Spec.Taints) {
			continue
		}
		matched = true
		if exceeds(requests, n.Status.Allocatable) == "" {
			return "", ""
		}
	}
	if !matched {
		return ReasonNoVirtualNode, "no virtual node matches the pod's node selector, affinity and tolerations"
	}
	return ReasonTooLarge, "the pod requests more than any virtual node can allocate (" + exceeds(requests, cl.VirtualNodes[0].Status.Allocatable) + ")"
}

func toleratesAll(tolerations []corev1.Toleration, taints []corev1.Taint) bool {
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerates(tolerations, t) {
			return false
		}
	}
	return true
}

// exceeds names the first resource requested beyond allocatable ("" when none).
func exceeds(requests, allocatable corev1.ResourceList) string {
	names := make([]string, 0, len(requests))
	for name := range requests {
		names = append(names, string(name))
	}
	sort.Strings(names)
	for _, n := range names {
		name := corev1.ResourceName(n)
		q := requests[name]
		if q.IsZero() {
			continue
		}
		a, ok := allocatable[name]
		if !ok || q.Cmp(a) > 0 {
			if !ok {
				a = resource.Quantity{}
			}
			return fmt.Sprintf("%s %s > %s", name, q.String(), a.String())
		}
	}
	return ""
}
