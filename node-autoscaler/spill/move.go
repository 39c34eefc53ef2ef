package spill

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// MoveAction is what to do next with a spilled pod.
type MoveAction int

const (
	// MoveNone leaves the pod (look again after RequeueAfter when set).
	MoveNone MoveAction = iota
	// MoveCreateHold creates its missing placeholder.
	MoveCreateHold
	// MoveDeleteHold deletes its placeholder (expired, or no longer needed).
	MoveDeleteHold
	// MoveRelease releases the pod from its ReplicaSet, which creates a replacement at once.
	MoveRelease
	// MoveEvict evicts the released pod: its ReplicaSet is whole again without it.
	MoveEvict
	// MoveReportHold says, once, that the placeholder has not run within HoldStartTimeout: the
	// pod cannot move back until it does.
	MoveReportHold
)

// HoldNotRunningAnnotation on a placeholder records when it was reported not running (once).
const HoldNotRunningAnnotation = "node-autoscaler.lockstep.dev/hold-not-running-since"

// Move reasons (event reasons and metric labels).
const (
	MoveReasonTerminating   = "Terminating"
	MoveReasonPending       = "StillPending"
	MoveReasonOnRealNode    = "OnRealNode"
	MoveReasonHoldExpired   = "HoldExpired"
	MoveReasonNoHold        = "NoHold"
	MoveReasonDisabled      = "MoveBackDisabled"
	MoveReasonUnsupported   = "MoveBackUnsupported"
	MoveReasonHoldPending   = "HoldPending"
	MoveReasonHoldStuck     = "HoldNotRunning"
	MoveReasonSettling      = "Settling"
	MoveReasonBounded       = "MovesInFlight"
	MoveReasonRoomReady     = "RoomReady"
	MoveReasonReplacing     = "WaitingForReplacement"
	MoveReasonReplaced      = "Replaced"
	MoveReasonOwnerGone     = "OwnerGone"
	MoveReasonHandedOver    = "HandedOver"
	moveRequeueWhileWaiting = 2 * time.Second
)

// MoveInput is a spilled pod and what its move depends on.
type MoveInput struct {
	Now time.Time
	Pod *corev1.Pod
	// Node is the node the pod runs on (nil while pending).
	Node *corev1.Node
	// Hold is its placeholder (nil when there is none) and HoldNode the node the placeholder runs
	// on (nil while pending).
	Hold     *corev1.Pod
	HoldNode *corev1.Node
	// ReplicaSet is the pod's ReplicaSet (nil when it has none or it is gone); Deployment says
	// whether a Deployment owns it.
	ReplicaSet *appsv1.ReplicaSet
	Deployment bool
	// ReadyOwned counts the ReplicaSet's own pods (its controller's) that are ready and not
	// terminating, as the cache shows them: a released pod is not among them. The ReplicaSet's
	// status cannot say this: it lags the release, and a pod's release does not change the
	// ReplicaSet's generation.
	ReadyOwned int
	// InFlight and InFlightWorkload count pods being moved, in total and of the pod's ReplicaSet.
	InFlight, InFlightWorkload int
}

// MoveDecision is what DecideMove chose and why.
type MoveDecision struct {
	Action       MoveAction
	Reason       string
	RequeueAfter time.Duration
}

// DecideMove says what happens next to a spilled pod. It is pure.
//
// A pod released from its ReplicaSet hands its placeholder's room to its replacement (the
// placeholder goes, so the replacement schedules into that room at once instead of preempting
// some other pod's placeholder), and is evicted once the ReplicaSet has all its replicas ready
// again without it (or is gone). Otherwise, a pod running on a virtual node keeps a placeholder on
// real capacity for Config.HoldDuration after it was spilled; when the placeholder runs on a Ready
// real node, the pod has settled for MoveBackAfter, it belongs to a Deployment and the move bounds
// allow, it is released: its ReplicaSet creates a replacement, which takes the placeholder's room.
func DecideMove(in MoveInput, cfg Config) MoveDecision {
	pod := in.Pod
	switch {
	case pod.DeletionTimestamp != nil:
		return MoveDecision{Action: MoveNone, Reason: MoveReasonTerminating}
	case pod.Annotations[MovingBackAnnotation] != "" && in.Hold != nil:
		return MoveDecision{Action: MoveDeleteHold, Reason: MoveReasonHandedOver}
	case pod.Annotations[MovingBackAnnotation] != "":
		return decideReleased(in.ReplicaSet, in.ReadyOwned)
	case pod.Spec.NodeName == "":
		return MoveDecision{Action: MoveNone, Reason: MoveReasonPending, RequeueAfter: moveRequeueWhileWaiting}
	case in.Node != nil && !cfg.VirtualNodeSelector.Matches(labels.Set(in.Node.Labels)):
		if in.Hold != nil {
			return MoveDecision{Action: MoveDeleteHold, Reason: MoveReasonOnRealNode}
		}
		return MoveDecision{Action: MoveNone, Reason: MoveReasonOnRealNode}
	}
	return decideOnVirtual(in, cfg)
}

// decideReleased: evict once the ReplicaSet's own ready pods make its replicas again without the
// released pod (or the ReplicaSet is gone).
func decideReleased(rs *appsv1.ReplicaSet, readyOwned int) MoveDecision {
	switch {
	case rs == nil || rs.DeletionTimestamp != nil:
		return MoveDecision{Action: MoveEvict, Reason: MoveReasonOwnerGone}
	case rs.Spec.Replicas != nil && int32(readyOwned) >= *rs.Spec.Replicas: //nolint:gosec // a pod count
		return MoveDecision{Action: MoveEvict, Reason: MoveReasonReplaced}
	}
	return MoveDecision{Action: MoveNone, Reason: MoveReasonReplacing, RequeueAfter: moveRequeueWhileWaiting}
}

// decideOnVirtual handles a spilled pod running on a virtual node: keep its hold while the hold
// lasts, release it when the hold's room is ready.
func decideOnVirtual(in MoveInput, cfg Config) MoveDecision {
	spilledAt, ok := annotationTime(in.Pod, SpilledAtAnnotation)
	if !ok {
		spilledAt = in.Pod.CreationTimestamp.Time
	}
	holdEnd := spilledAt.Add(cfg.HoldDuration)
	if until, ok := holdUntil(in.Hold); ok && until.Before(holdEnd) {
		holdEnd = until
	}
	switch {
	case !in.Now.Before(holdEnd) && in.Hold != nil:
		return MoveDecision{Action: MoveDeleteHold, Reason: MoveReasonHoldExpired}
	case !in.Now.Before(holdEnd):
		return MoveDecision{Action: MoveNone, Reason: MoveReasonHoldExpired}
	case in.Hold == nil:
		return MoveDecision{Action: MoveCreateHold, Reason: MoveReasonNoHold}
	}
	// Look again when the hold ends at the latest.
	wait := func(reason string, d time.Duration) MoveDecision {
		return MoveDecision{Action: MoveNone, Reason: reason, RequeueAfter: min(d, holdEnd.Sub(in.Now))}
	}
	switch {
	case !cfg.MoveBack:
		return wait(MoveReasonDisabled, holdEnd.Sub(in.Now))
	case in.ReplicaSet == nil || !in.Deployment:
		return wait(MoveReasonUnsupported, holdEnd.Sub(in.Now))
	case !holdRunning(in) && in.Hold.Annotations[HoldNotRunningAnnotation] == "" && in.Now.Sub(in.Hold.CreationTimestamp.Time) >= cfg.HoldStartTimeout:
		return MoveDecision{Action: MoveReportHold, Reason: MoveReasonHoldStuck}
	case !holdRunning(in):
		return wait(MoveReasonHoldPending, 5*time.Second)
	case in.Now.Sub(spilledAt) < cfg.MoveBackAfter:
		return wait(MoveReasonSettling, cfg.MoveBackAfter-in.Now.Sub(spilledAt))
	case in.InFlight >= cfg.MaxMovesInFlight || in.InFlightWorkload >= cfg.MaxMovesPerWorkload:
		return wait(MoveReasonBounded, moveRequeueWhileWaiting)
	}
	return MoveDecision{Action: MoveRelease, Reason: MoveReasonRoomReady}
}

// holdRunning: the placeholder runs on a Ready node, so its room is there.
func holdRunning(in MoveInput) bool {
	return in.Hold.Spec.NodeName != "" && in.HoldNode != nil && nodeReady(in.HoldNode) && in.Hold.Status.Phase == corev1.PodRunning
}

func annotationTime(o metav1.Object, key string) (time.Time, bool) {
	v := o.GetAnnotations()[key]
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func holdUntil(hold *corev1.Pod) (time.Time, bool) {
	if hold == nil {
		return time.Time{}, false
	}
	return annotationTime(hold, HoldUntilAnnotation)
}

func nodeReady(n *corev1.Node) bool {
	if n.DeletionTimestamp != nil || n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
