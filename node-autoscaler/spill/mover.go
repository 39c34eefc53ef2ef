package spill

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Mover keeps the placeholders of spilled pods and moves the pods back onto real nodes. It runs
// one pod at a time so that its bounds on moves in flight hold exactly.
type Mover struct {
	deps  Deps
	class *priorityClass
	// moves are the pods this mover released, counted in flight until the cache shows them.
	moves moveReservations
	// reported are the placeholders reported not running lately, so a cache that does not
	// show the mark yet never reports one twice.
	reported recentSet
}

// Register adds the controller to the manager.
func (m *Mover) Register(_ context.Context, mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("lockstep.moveback").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[SpilledLabel] != ""
		}))).
		// A placeholder's changes (bound, preempted) wake the pod it holds room for.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetLabels()[HoldForLabel] == "" {
				return nil
			}
			for _, ref := range o.GetOwnerReferences() {
				if ref.Kind == "Pod" {
					return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
				}
			}
			return nil
		})).
		// One worker keeps the bounds exact; the timeout keeps a hung API call from stopping it.
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: 1, ReconciliationTimeout: reconcileTimeout}).
		Complete(m)
}

// Reconcile gathers, decides and acts on one spilled pod.
func (m *Mover) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	d := m.deps
	var pod corev1.Pod
	if err := d.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Labels[SpilledLabel] == "" {
		return reconcile.Result{}, nil
	}
	in, err := m.gather(ctx, &pod)
	if err != nil {
		return reconcile.Result{}, err
	}
	if pod.Annotations[MovingBackAnnotation] != "" && pod.Annotations[ReleasedLabelAnnotation] != "" {
		if err := m.syncSlices(ctx, &pod); err != nil {
			return reconcile.Result{}, err
		}
	}
	dec := DecideMove(in, d.Config)
	logger := log.FromContext(ctx).WithValues("pod", req.NamespacedName, "reason", dec.Reason)
	logger.V(1).Info("decided move-back step", "action", dec.Action.String(), "hold", in.Hold != nil, "holdNode", nodeName(in.HoldNode),
		"readyOwned", in.ReadyOwned, "inFlight", in.InFlight, "inFlightWorkload", in.InFlightWorkload, "requeueAfter", dec.RequeueAfter)
	switch dec.Action {
	case MoveCreateHold:
		if err := m.class.ensure(ctx); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, createHold(ctx, d, &pod, in.Now)
	case MoveDeleteHold:
		if err := d.Client.Delete(ctx, in.Hold, client.Preconditions{UID: &in.Hold.UID}); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("deleting placeholder %s/%s: %w", in.Hold.Namespace, in.Hold.Name, err)
		}
		event := "deleted"
		if dec.Reason == MoveReasonHoldExpired {
			event = "expired"
			d.Recorder.Eventf(&pod, nil, corev1.EventTypeNormal, "HoldExpired", "Hold",
				"no room on a real node within %s: the pod stays on serverless capacity and is the first removed on scale-in", d.Config.HoldDuration)
		}
		d.Metrics.Holds.WithLabelValues(event).Inc()
		if dec.Reason == MoveReasonHandedOver {
			logger.Info("placeholder's room handed to the released pod's replacement", "placeholder", in.Hold.Name, "node", in.Hold.Spec.NodeName)
			return reconcile.Result{RequeueAfter: moveRequeueWhileWaiting}, nil
		}
		return reconcile.Result{}, nil
	case MoveRelease:
		return m.release(ctx, &pod, in)
	case MoveEvict:
		return m.evict(ctx, &pod, in, dec)
	case MoveReportHold:
		return reconcile.Result{RequeueAfter: moveRequeueWhileWaiting}, m.reportHold(ctx, &pod, in)
	case MoveNone:
		if dec.Reason == MoveReasonUnsupported && pod.Annotations[MovingBackAnnotation] == "" {
			d.Recorder.Eventf(&pod, nil, corev1.EventTypeNormal, MoveReasonUnsupported, "MoveBack",
				"only pods of Deployments are moved back (a replacement must exist before the pod goes); this one stays on serverless capacity and is the first removed on scale-in")
		}
	}
	return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
}

// release releases the pod from its ReplicaSet (its replacement takes the placeholder's room),
// taking a label off when it can keep serving through EndpointSlices of its own (PlanRelease).
func (m *Mover) release(ctx context.Context, pod *corev1.Pod, in MoveInput) (reconcile.Result, error) {
	d := m.deps
	plan, err := m.planRelease(ctx, pod, in.ReplicaSet)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := d.Client.Patch(ctx, pod, client.RawPatch(types.JSONPatchType, ReleasePatch(pod, in.Now, plan.Label))); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(fmt.Errorf("releasing pod %s from its ReplicaSet: %w", client.ObjectKeyFromObject(pod), err))
	}
	m.moves.reserve(pod, in.ReplicaSet.UID)
	if plan.Label == "" {
		d.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "ReleasedPodCounted", "MoveBack",
			"keeps its labels while it moves back (%s): HPAs on Resource or Pods metrics count it until it goes", plan.Why)
	}
	d.Metrics.Moves.WithLabelValues("released").Inc()
	d.Recorder.Eventf(pod, in.ReplicaSet, corev1.EventTypeNormal, "MovingBack", "MoveBack",
		"room is ready on node %s: released from ReplicaSet %s, which creates a replacement; this pod keeps serving until the replacement is ready", in.Hold.Spec.NodeName, in.ReplicaSet.Name)
	log.FromContext(ctx).Info("released spilled pod from its ReplicaSet", "pod", client.ObjectKeyFromObject(pod), "replicaSet", in.ReplicaSet.Name, "node", in.Hold.Spec.NodeName, "labelTakenOff", plan.Label)
	return reconcile.Result{RequeueAfter: moveRequeueWhileWaiting}, nil
}

func (m *Mover) evict(ctx context.Context, pod *corev1.Pod, in MoveInput, dec MoveDecision) (reconcile.Result, error) {
	d := m.deps
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}}
	err := d.Client.SubResource("eviction").Create(ctx, pod, ev)
	switch {
	case apierrors.IsTooManyRequests(err):
		d.Metrics.Moves.WithLabelValues("blocked").Inc()
		d.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "MoveBackBlocked", "MoveBack", "eviction refused, retrying: %v", err)
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case apierrors.IsConflict(err):
		// The pod changed or was replaced under the same name: look again.
		return reconcile.Result{RequeueAfter: moveRequeueWhileWaiting}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := m.dropSlices(ctx, pod); err != nil {
		log.FromContext(ctx).Error(err, "Dropping the evicted pod's EndpointSlices failed; its deletion takes them")
	}
	d.Metrics.Moves.WithLabelValues("evicted").Inc()
	if since, ok := annotationTime(pod, MovingBackAnnotation); ok {
		d.Metrics.MoveDuration.Observe(in.Now.Sub(since).Seconds())
	}
	d.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "MovedBack", "MoveBack", "replacement ready (%s): evicted from serverless capacity", dec.Reason)
	log.FromContext(ctx).Info("moved spilled pod back", "pod", client.ObjectKeyFromObject(pod), "reason", dec.Reason)
	return reconcile.Result{}, nil
}

// gather reads what DecideMove needs from the cache.
func (m *Mover) gather(ctx context.Context, pod *corev1.Pod) (MoveInput, error) {
	c := m.deps.Client
	in := MoveInput{Now: m.deps.Clock.Now(), Pod: pod}
	var err error
	if in.Node, err = getNode(ctx, c, pod.Spec.NodeName); err != nil {
		return in, err
	}
	var hold corev1.Pod
	switch err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: HoldName(pod.Name)}, &hold); {
	case err == nil && hold.Labels[HoldForLabel] == string(pod.UID) && hold.DeletionTimestamp == nil:
		in.Hold = &hold
		if in.HoldNode, err = getNode(ctx, c, hold.Spec.NodeName); err != nil {
			return in, err
		}
	case err != nil && !apierrors.IsNotFound(err):
		return in, fmt.Errorf("reading placeholder: %w", err)
	}
	if ref := ownerRef(pod, "ReplicaSet"); ref != nil {
		var rs appsv1.ReplicaSet
		switch err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}, &rs); {
		case err == nil && rs.UID == ref.UID:
			in.ReplicaSet = &rs
			in.Deployment = ownerRef(&rs, "Deployment") != nil
		case err != nil && !apierrors.IsNotFound(err):
			return in, fmt.Errorf("reading ReplicaSet %s: %w", ref.Name, err)
		}
	}
	if pod.Annotations[MovingBackAnnotation] != "" && in.ReplicaSet != nil {
		if in.ReadyOwned, err = readyOwned(ctx, c, in.ReplicaSet); err != nil {
			return in, err
		}
	}
	in.InFlight, in.InFlightWorkload, err = m.movesInFlight(ctx, pod.Namespace, in.ReplicaSet)
	return in, err
}

// readyOwned counts the ReplicaSet's own ready pods that are not terminating.
func readyOwned(ctx context.Context, c client.Reader, rs *appsv1.ReplicaSet) (int, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(rs.Namespace), client.MatchingLabels(rs.Spec.Selector.MatchLabels)); err != nil {
		return 0, fmt.Errorf("listing pods of ReplicaSet %s: %w", rs.Name, err)
	}
	n := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != rs.UID || p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}

// movesInFlight counts the released pods not yet gone, in total and of rs: those the cache
// shows, and those this mover released that it does not show yet.
func (m *Mover) movesInFlight(ctx context.Context, namespace string, rs *appsv1.ReplicaSet) (total, ofRS int, err error) {
	var spilled corev1.PodList
	if err := m.deps.Client.List(ctx, &spilled, client.HasLabels{SpilledLabel}); err != nil {
		return 0, 0, fmt.Errorf("listing spilled pods: %w", err)
	}
	var rsUID types.UID
	if rs != nil {
		rsUID = rs.UID
	}
	total, ofRS = m.moves.count(spilled.Items, namespace, rsUID)
	return total, ofRS, nil
}

func getNode(ctx context.Context, c client.Reader, name string) (*corev1.Node, error) {
	if name == "" {
		return nil, nil
	}
	var n corev1.Node
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading node %s: %w", name, err)
	}
	return &n, nil
}

func nodeName(n *corev1.Node) string {
	if n == nil {
		return ""
	}
	return n.Name
}

func ownerRef(o metav1.Object, kind string) *metav1.OwnerReference {
	refs := o.GetOwnerReferences()
	for i := range refs {
		if refs[i].Kind == kind {
			return &refs[i]
		}
	}
	return nil
}

// ReleasePatch releases a Deployment's pod from its ReplicaSet while keeping it serving: the
// pod-template-hash label goes (the ReplicaSet no longer selects it and creates a replacement at
// once; the Deployment's and Services' selectors still match it), its owner reference stays but
// is no longer the controller's (the garbage collector still deletes it with its ReplicaSet), and
// the release time is recorded. The patch fails if the pod changed since it was read.
//
// With label set, that label is taken off too (PlanRelease: the pod leaves the Deployment's,
// HPAs' and PodDisruptionBudgets' view) and recorded in ReleasedLabelAnnotation.
func ReleasePatch(pod *corev1.Pod, now time.Time, label string) []byte {
	refs := make([]metav1.OwnerReference, len(pod.OwnerReferences))
	for i, r := range pod.OwnerReferences {
		r.Controller = nil
		r.BlockOwnerDeletion = nil
		refs[i] = r
	}
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/resourceVersion", Value: pod.ResourceVersion},
		{Op: "replace", Path: "/metadata/ownerReferences", Value: refs},
	}
	annotations := map[string]string{MovingBackAnnotation: now.UTC().Format(time.RFC3339)}
	for _, key := range []string{podTemplateHashLabel, label} {
		if v, ok := pod.Labels[key]; ok && key != "" {
			ops = append(ops, jsonPatchOp{Op: "remove", Path: "/metadata/labels/" + escapePointer(key)})
			if key == label {
				annotations[ReleasedLabelAnnotation] = key + "=" + v
			}
		}
	}
	ops = append(ops, mapAdds("/metadata/annotations", pod.Annotations, annotations)...)
	b, _ := json.Marshal(ops) // plain values: cannot fail
	return b
}
