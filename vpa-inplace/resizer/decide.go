// Package resizer decides, for one pod of a VerticalPodAutoscaler, whether and how to resize it
// in place (pure: Decide), and builds the one pods/resize patch that applies the decision.
package resizer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"

	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
)

// Action is what the updater does with a pod.
type Action string

// Actions.
const (
	// None leaves the pod as it is; Reason says why.
	None Action = "None"
	// Resize patches pods/resize with Decision.Containers.
	Resize Action = "Resize"
	// Evict evicts the pod (InPlaceOrRecreate, opted in, and in place is impossible).
	Evict Action = "Evict"
)

// Reason explains a decision; it is the value of events and metric labels.
type Reason string

// Reasons.
const (
	ReasonResize            Reason = "Resize"
	ReasonStartupBoost      Reason = "StartupBoost"
	ReasonBoostEnded        Reason = "StartupBoostEnded"
	ReasonRecommendOnly     Reason = "RecommendationOnly"
	ReasonPodNotRunning     Reason = "PodNotRunning"
	ReasonVirtualNode       Reason = "VirtualNode"
	ReasonBestEffort        Reason = "BestEffortPod"
	ReasonNoRecommendation  Reason = "NoRecommendation"
	ReasonInProgress        Reason = "ResizeInProgress"
	ReasonResizeError       Reason = "ResizeError"
	ReasonDeferred          Reason = "ResizeDeferred"
	ReasonInfeasible        Reason = "ResizeInfeasible"
	ReasonQoSChange         Reason = "WouldChangeQoS"
	ReasonWithinHysteresis  Reason = "WithinHysteresis"
	ReasonCooldown          Reason = "Cooldown"
	ReasonNothingControlled Reason = "NothingControlled"
)

// Config tunes the decisions.
type Config struct {
	// Hysteresis is the relative change below which a resource is left alone (0.1 = 10 %).
	Hysteresis float64
	// DownscaleCooldown is how long after a resize of a pod a decrease waits; increases never wait.
	DownscaleCooldown time.Duration
	// DeferredBackoff is how long a Deferred resize is left to the kubelet before a changed
	// recommendation is sent.
	DeferredBackoff time.Duration
	// MemoryHeadroom is how far above current usage a memory limit must stay to be lowered
	// (0.1 = usage + 10 %). Without usage data memory limits are never lowered.
	MemoryHeadroom float64
}

// DefaultConfig returns 10 % hysteresis, a 60 s downscale cooldown, a 30 s Deferred backoff and
// 10 % memory headroom.
func DefaultConfig() Config {
	return Config{Hysteresis: 0.1, DownscaleCooldown: time.Minute, DeferredBackoff: 30 * time.Second, MemoryHeadroom: 0.1}
}

// Input is everything Decide looks at for one pod.
type Input struct {
	Now time.Time
	VPA *vpav1.VerticalPodAutoscaler
	Pod *corev1.Pod
	// OnVirtualNode is true when the pod runs on a serverless virtual node (no in-place resize).
	OnVirtualNode bool
	// HPAResources are the resources an HPA on the same target scales on by utilization:
	// changing their requests would move the HPA's signal, so they are left alone.
	HPAResources map[corev1.ResourceName]bool
	// MemoryUsage is each container's current working set in bytes; missing means unknown.
	MemoryUsage map[string]int64
	// LastResize is when this pod was last resized by the updater; zero when unknown.
	LastResize time.Time
	// AllowContainerRestart lets resources whose resizePolicy restarts the container be resized.
	AllowContainerRestart bool
	// AllowEviction lets InPlaceOrRecreate evict a pod whose resize is infeasible or failed.
	AllowEviction bool
	// Boost is what the updater remembers of the pod's start-up boost. An active boost is
	// reverted whatever the hysteresis and cooldown.
	Boost Boost
	// NodeRoom is what the pod may be allocated on its node at most: the node's allocatable less
	// what the kubelet has allocated to the node's other pods. A boost is capped to it (a boost
	// the kubelet would defer is worse than none); nil when unknown, and then no boost is given.
	NodeRoom corev1.ResourceList
}

// ContainerResize is the new requests and limits of one container (only the resources that change
// or must be restated).
type ContainerResize struct {
	Name     string
	Requests corev1.ResourceList
	Limits   corev1.ResourceList
}

// Decision is what to do with one pod, and why.
type Decision struct {
	Action     Action
	Reason     Reason
	Message    string
	Containers []ContainerResize
	// Increase is true when some resource grows (increases are not held by the cooldown).
	Increase bool
	// Boosted is true when the new CPU is the startup boost.
	Boosted bool
	// LeftToHPA lists resources not touched because an HPA scales on their utilization.
	LeftToHPA []corev1.ResourceName
}

func none(r Reason, format string, args ...any) Decision {
	return Decision{Action: None, Reason: r, Message: fmt.Sprintf(format, args...)}
}

// InPlaceMode reports whether the VPA's update mode resizes pods in place.
func InPlaceMode(vpa *vpav1.VerticalPodAutoscaler) (vpav1.UpdateMode, bool) {
	mode := vpav1.UpdateModeRecreate // the API's default
	if p := vpa.Spec.UpdatePolicy; p != nil && p.UpdateMode != nil {
		mode = *p.UpdateMode
	}
	return mode, mode == vpav1.UpdateModeInPlace || mode == vpav1.UpdateModeInPlaceOrRecreate
}

// Decide returns what to do with in.Pod.
func Decide(in Input, cfg Config) Decision {
	if d, stop := precheck(in); stop {
		return d
	}
	pod := in.Pod
	mode, _ := InPlaceMode(in.VPA)
	evictable := mode == vpav1.UpdateModeInPlaceOrRecreate && in.AllowEviction
	want, d := desired(in, cfg)
	if d.Reason != "" {
		return d
	}
	pending := condition(pod, corev1.PodResizePending)
	if pending != nil && len(want) == 0 {
		d, _ := pendingDecision(in, cfg, pending, want, evictable)
		return d
	}
	if len(want) == 0 {
		d := none(ReasonNothingControlled, "no resource of the pod is left for the updater to change")
		d.LeftToHPA = leftToHPA(in)
		return d
	}
	before := QoS(pod)
	after := pod.DeepCopy()
	applyTo(after, want)
	if q := QoS(after); q != before {
		return none(ReasonQoSChange, "resizing would change the pod's QoS class from %s to %s", before, q)
	}
	sum := summarize(want)
	if pending != nil {
		if d, stop := pendingDecision(in, cfg, pending, want, evictable); stop {
			return d
		}
	} else if !sum.significant {
		d := none(ReasonWithinHysteresis, "requests within %.0f%% of the target", cfg.Hysteresis*100)
		d.LeftToHPA = leftToHPA(in)
		return d
	}
	if !sum.increase && sum.decrease && !in.Boost.Active && !in.LastResize.IsZero() && in.Now.Sub(in.LastResize) < cfg.DownscaleCooldown {
		return none(ReasonCooldown, "last resized %s ago; decreases wait %s", in.Now.Sub(in.LastResize).Round(time.Second), cfg.DownscaleCooldown)
	}
	return resizeDecision(in, want, sum)
}

// summarize ORs the containers' flags.
func summarize(want []change) change {
	var sum change
	for _, w := range want {
		sum.significant = sum.significant || w.significant
		sum.increase = sum.increase || w.increase
		sum.decrease = sum.decrease || w.decrease
		sum.boosted = sum.boosted || w.boosted
		sum.boostEnded = sum.boostEnded || w.boostEnded
	}
	return sum
}

func resizeDecision(in Input, want []change, sum change) Decision {
	d := Decision{Action: Resize, Reason: ReasonResize, Increase: sum.increase, Boosted: sum.boosted, LeftToHPA: leftToHPA(in)}
	switch {
	case sum.boosted:
		d.Reason = ReasonStartupBoost
	case sum.boostEnded:
		d.Reason = ReasonBoostEnded
	}
	d.Containers, d.Message = resizes(want)
	return d
}

// precheck rules out pods the updater must not resize in place at all: modes other than InPlace
// and InPlaceOrRecreate, pods not running, on virtual nodes, BestEffort, or with a resize in
// progress (or failed: evicted only when opted in).
func precheck(in Input) (Decision, bool) {
	pod := in.Pod
	mode, inPlace := InPlaceMode(in.VPA)
	switch {
	case !inPlace:
		return none(ReasonRecommendOnly, "update mode %s: recommendations only", mode), true
	case pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName == "":
		return none(ReasonPodNotRunning, "pod is %s", podState(pod)), true
	case in.OnVirtualNode:
		return none(ReasonVirtualNode, "pod runs on virtual node %s, which cannot resize in place", pod.Spec.NodeName), true
	case QoS(pod) == corev1.PodQOSBestEffort:
		return none(ReasonBestEffort, "pod has no requests: resizing would change its QoS class from BestEffort"), true
	}
	c := condition(pod, corev1.PodResizeInProgress)
	switch {
	case c == nil:
		return Decision{}, false
	case c.Reason != corev1.PodReasonError:
		return none(ReasonInProgress, "a resize is being applied"), true
	case mode == vpav1.UpdateModeInPlaceOrRecreate && in.AllowEviction:
		return Decision{Action: Evict, Reason: ReasonResizeError, Message: "in-place resize failed: " + c.Message}, true
	default:
		return none(ReasonResizeError, "in-place resize failed: %s", c.Message), true
	}
}

// pendingDecision handles a resize the kubelet has not applied: Deferred waits for room (a
// changed target is sent after the backoff), Infeasible is retried only when the target drops.
func pendingDecision(in Input, cfg Config, c *corev1.PodCondition, want []change, evictable bool) (Decision, bool) {
	changed := false
	for _, w := range want {
		changed = changed || w.significant
	}
	switch c.Reason {
	case corev1.PodReasonInfeasible:
		if lowersEverything(want) && changed {
			return Decision{}, false
		}
		if evictable {
			return Decision{Action: Evict, Reason: ReasonInfeasible, Message: "in-place resize infeasible: " + c.Message}, true
		}
		return none(ReasonInfeasible, "in-place resize infeasible on node %s: %s", in.Pod.Spec.NodeName, c.Message), true
	default: // Deferred
		since := in.Now.Sub(c.LastTransitionTime.Time)
		if !changed || since < cfg.DeferredBackoff {
			return none(ReasonDeferred, "resize deferred by the kubelet for %s: %s", since.Round(time.Second), c.Message), true
		}
		return Decision{}, false
	}
}

// change is one container's new resources.
type change struct {
	name                            string
	requests, limits                corev1.ResourceList
	significant, increase, decrease bool
	boosted, boostEnded             bool
	notes                           []string
}

// desired computes each container's new requests and limits. A non-empty Decision.Reason stops.
func desired(in Input, cfg Config) ([]change, Decision) {
	pod, vpa := in.Pod, in.VPA
	recs := map[string]vpav1.RecommendedContainerResources{}
	if vpa.Status.Recommendation != nil {
		for _, r := range vpa.Status.Recommendation.ContainerRecommendations {
			recs[r.ContainerName] = r
		}
	}
	if len(recs) == 0 {
		return nil, none(ReasonNoRecommendation, "the VPA has no recommendation yet")
	}
	ready, readySince := readiness(pod)
	start := ContainerStart(pod)
	var out []change
	for _, ctr := range pod.Spec.Containers {
		policy := recommender.PolicyFor(vpa.Spec.ResourcePolicy, ctr.Name)
		rec, ok := recs[ctr.Name]
		if !ok || recommender.Off(policy) {
			continue
		}
		c := change{name: ctr.Name, requests: corev1.ResourceList{}, limits: corev1.ResourceList{}}
		for _, r := range recommender.Controlled(policy) {
			target, ok := rec.Target[r]
			if !ok || in.HPAResources[r] || !restartAllowed(ctr, r, in.AllowContainerRestart) {
				continue
			}
			boosted := false
			if b := boostPolicy(vpa, policy); r == corev1.ResourceCPU && boosting(b, in.Boost, start, ready, readySince, in.Now) {
				if bq, ok := boostedCPU(b, target); ok {
					if bq = capBoost(bq, policy, in.NodeRoom, pod, ctr.Name); bq.Cmp(target) > 0 {
						target, boosted = bq, true
					}
				}
			}
			boostEnds := r == corev1.ResourceCPU && in.Boost.Active && !boosted
			c.add(in, cfg, ctr, policy, r, target, boosted, boostEnds)
		}
		if len(c.requests) > 0 {
			out = append(out, c)
		}
	}
	return out, Decision{}
}

// add sets one resource of the container to target: the request, and the limit at its old ratio
// (RequestsAndLimits) or unchanged with the request capped to it (RequestsOnly). A memory limit
// is lowered only when usage leaves headroom below it.
func (c *change) add(in Input, cfg Config, ctr corev1.Container, policy *vpav1.ContainerResourcePolicy, r corev1.ResourceName, target resource.Quantity, boosted, boostEnds bool) {
	cur, hasReq := ctr.Resources.Requests[r]
	if !hasReq || cur.IsZero() {
		return // adding a request would change the QoS class; resize cannot add one
	}
	limit, hasLimit := ctr.Resources.Limits[r]
	req, newLimit := requestAndLimit(target, cur, limit, hasLimit, requestsOnly(policy), r)
	if r == corev1.ResourceMemory && hasLimit && newLimit.Cmp(limit) < 0 {
		if note := memoryTooClose(in.MemoryUsage, ctr.Name, newLimit, cfg.MemoryHeadroom); note != "" {
			c.notes = append(c.notes, note)
			return
		}
	}
	diff := relDiff(req, cur)
	if diff == 0 && (!hasLimit || newLimit.Cmp(limit) == 0) {
		return
	}
	c.requests[r] = req
	if hasLimit {
		c.limits[r] = newLimit
	}
	c.significant = c.significant || diff > cfg.Hysteresis || boosted || boostEnds
	c.increase = c.increase || req.Cmp(cur) > 0
	c.decrease = c.decrease || req.Cmp(cur) < 0
	c.boosted = c.boosted || boosted
	c.boostEnded = c.boostEnded || boostEnds
}

// requestAndLimit returns the new request and limit for target: RequestsOnly keeps the limit
// and caps the request to it; otherwise the limit keeps its ratio to the request.
func requestAndLimit(target, cur, limit resource.Quantity, hasLimit, onlyRequests bool, r corev1.ResourceName) (resource.Quantity, resource.Quantity) {
	req := target
	switch {
	case hasLimit && onlyRequests:
		if req.Cmp(limit) > 0 {
			req = limit.DeepCopy()
		}
		return req, limit
	case hasLimit:
		return req, scale(limit, req, cur, r)
	}
	return req, limit
}

// memoryTooClose explains why a memory limit cannot go down to newLimit (usage unknown, or
// usage plus headroom above it); "" when it can.
func memoryTooClose(usage map[string]int64, container string, newLimit resource.Quantity, headroom float64) string {
	used, known := usage[container]
	floor := int64(math.Ceil(float64(used) * (1 + headroom)))
	if known && newLimit.Value() >= floor {
		return ""
	}
	return fmt.Sprintf("%s memory limit kept: usage %s too close to %s", container, byteString(used, known), newLimit.String())
}

func restartAllowed(ctr corev1.Container, r corev1.ResourceName, allow bool) bool {
	for _, p := range ctr.ResizePolicy {
		if p.ResourceName == r && p.RestartPolicy == corev1.RestartContainer {
			return allow
		}
	}
	return true
}

func requestsOnly(p *vpav1.ContainerResourcePolicy) bool {
	return p != nil && p.ControlledValues != nil && *p.ControlledValues == vpav1.ContainerControlledValuesRequestsOnly
}

// scale returns limit × newReq / oldReq: the limit keeps its ratio to the request.
func scale(limit, newReq, oldReq resource.Quantity, r corev1.ResourceName) resource.Quantity {
	if r == corev1.ResourceCPU {
		v := float64(limit.MilliValue()) * float64(newReq.MilliValue()) / float64(oldReq.MilliValue())
		return *resource.NewMilliQuantity(int64(math.Ceil(v-1e-9)), resource.DecimalSI)
	}
	v := float64(limit.Value()) * float64(newReq.Value()) / float64(oldReq.Value())
	return *resource.NewQuantity(int64(math.Ceil(v-1e-9)), resource.BinarySI)
}

func relDiff(a, b resource.Quantity) float64 {
	x, y := a.AsApproximateFloat64(), b.AsApproximateFloat64()
	if y == 0 {
		return math.Inf(1)
	}
	return math.Abs(x-y) / y
}

func lowersEverything(want []change) bool {
	for _, w := range want {
		if w.increase {
			return false
		}
	}
	return true
}

func leftToHPA(in Input) []corev1.ResourceName {
	var out []corev1.ResourceName
	for r, on := range in.HPAResources {
		if on {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func applyTo(pod *corev1.Pod, want []change) {
	for _, w := range want {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			if c.Name != w.name {
				continue
			}
			for r, q := range w.requests {
				c.Resources.Requests[r] = q
			}
			for r, q := range w.limits {
				c.Resources.Limits[r] = q
			}
		}
	}
}

func resizes(want []change) ([]ContainerResize, string) {
	out := make([]ContainerResize, 0, len(want))
	var parts []string
	for _, w := range want {
		out = append(out, ContainerResize{Name: w.name, Requests: w.requests, Limits: w.limits})
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := w.requests[r]; ok {
				parts = append(parts, fmt.Sprintf("%s %s request %s", w.name, r, q.String()))
			}
		}
		parts = append(parts, w.notes...)
	}
	return out, strings.Join(parts, ", ")
}

func byteString(v int64, known bool) string {
	if !known {
		return "unknown"
	}
	return resource.NewQuantity(v, resource.BinarySI).String()
}

func condition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func podState(pod *corev1.Pod) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "terminating"
	case pod.Spec.NodeName == "":
		return "not scheduled"
	default:
		return string(pod.Status.Phase)
	}
}

// Patch is the strategic merge patch for the pods/resize subresource that applies d: one
// request for every container that changes.
func Patch(d Decision) ([]byte, error) {
	type res struct {
		Requests corev1.ResourceList `json:"requests,omitempty"`
		Limits   corev1.ResourceList `json:"limits,omitempty"`
	}
	type ctr struct {
		Name      string `json:"name"`
		Resources res    `json:"resources"`
	}
	body := struct {
		Spec struct {
			Containers []ctr `json:"containers"`
		} `json:"spec"`
	}{}
	for _, c := range d.Containers {
		body.Spec.Containers = append(body.Spec.Containers, ctr{Name: c.Name, Resources: res{Requests: c.Requests, Limits: c.Limits}})
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding resize patch: %w", err)
	}
	return b, nil
}
