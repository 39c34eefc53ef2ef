package controller

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// VPA annotations that opt in to what the updater does not do by default.
const (
	// AllowEvictionAnnotation ("true") lets InPlaceOrRecreate evict a pod whose in-place
	// resize is infeasible or failed. Without it the updater never evicts.
	AllowEvictionAnnotation = "vpa-inplace.lockstep.dev/allow-eviction"
	// AllowRestartAnnotation ("true") lets the updater change resources whose container
	// resizePolicy is RestartContainer (the kubelet restarts that container).
	AllowRestartAnnotation = "vpa-inplace.lockstep.dev/allow-container-restart"
)

// VirtualNodes tells pods on serverless virtual nodes (no in-place resize) apart.
type VirtualNodes struct {
	// Selector matches virtual nodes' labels (ACK: type=virtual-kubelet).
	Selector labels.Selector
	// TaintKey marks virtual nodes by a taint key (ACK: virtual-kubelet.io/provider); empty
	// disables the check.
	TaintKey string
}

// Updater resizes the pods of handled VPAs in place.
type Updater struct {
	Client   client.Client
	Targets  *Targets
	Model    *Model
	Clock    clock.WithTicker
	Recorder events.EventRecorder
	Metrics  *Metrics
	Log      logr.Logger
	Config   resizer.Config
	Virtual  VirtualNodes
	// Name and HandleUnnamed select the VPAs, as for the recommender.
	Name          string
	HandleUnnamed bool
	// MaxPerWorkload bounds a workload's resizes in flight; a PodDisruptionBudget on its pods
	// lowers it to the budget's disruptionsAllowed (at least one resize always proceeds).
	MaxPerWorkload int
	// MaxInFlight bounds resizes in flight across all workloads.
	MaxInFlight int
	// Resync is how often a VPA is looked at without any event.
	Resync time.Duration

	// mu guards what the updater remembers between reconciles (created on first use, so a
	// zero Updater with its fields set is ready).
	mu       sync.Mutex
	inflight map[types.UID]inflight
	pods     map[types.UID]podMemo
}

// maps creates the memory on first use. Callers hold mu.
func (u *Updater) maps() {
	if u.inflight == nil {
		u.inflight = map[types.UID]inflight{}
		u.pods = map[types.UID]podMemo{}
	}
}

// inflight is a resize this updater sent that the pod's status has not yet reported applied:
// when it was sent, and the pod generation the resize made (the cache's copy of the pod is
// older while its generation is lower).
type inflight struct {
	at         time.Time
	generation int64
}

// podMemo is what the updater remembers of a pod between reconciles.
type podMemo struct {
	// state is what decisions depend on; it is also kept on the pod (StateAnnotation), where a
	// new leader reads it. known is false until this process has read or written it.
	state podState
	known bool
	// pending is the PodResizePending reason last seen, to count transitions once.
	pending string
}

// inflightTimeout is how long a resize counts as in flight without the pod's status catching up.
const inflightTimeout = 2 * time.Minute

// podNodeField indexes the cache's pods by node, for what a node's pods are allocated.
const podNodeField = "spec.nodeName"

// SetupWithManager registers the updater: VPAs, and the pods and HPAs that map to them.
func (u *Updater) SetupWithManager(mgr ctrl.Manager, workers int, skipNameValidation bool) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, podNodeField, func(o client.Object) []string {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&vpav1.VerticalPodAutoscaler{}).
		Named("vpa-inplace").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: &skipNameValidation, UsePriorityQueue: ptr.To(true)}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(u.vpasOfPod), builder.WithPredicates()).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(u.vpasInNamespace)).
		Complete(u)
}

// vpasOfPod maps a pod to the handled VPAs in its namespace whose selector matches it (all of
// them while a selector is not resolved yet).
func (u *Updater) vpasOfPod(ctx context.Context, obj client.Object) []reconcile.Request {
	var vpas vpav1.VerticalPodAutoscalerList
	// Read-only: the cache's objects are not copied (a pod event would otherwise copy every VPA
	// of its namespace).
	if err := u.Client.List(ctx, &vpas, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range vpas.Items {
		v := &vpas.Items[i]
		if !Handles(v, u.Name, u.HandleUnnamed) {
			continue
		}
		key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
		if sel := u.Model.Selector(key); sel == nil || sel.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, reconcile.Request{NamespacedName: key})
		}
	}
	return out
}

func (u *Updater) vpasInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var vpas vpav1.VerticalPodAutoscalerList
	if err := u.Client.List(ctx, &vpas, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(vpas.Items))
	for i := range vpas.Items {
		if Handles(&vpas.Items[i], u.Name, u.HandleUnnamed) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&vpas.Items[i])})
		}
	}
	return out
}

// gathered is what one reconcile reads.
type gathered struct {
	vpa                      *vpav1.VerticalPodAutoscaler
	pods                     []*corev1.Pod
	hpa                      map[corev1.ResourceName]bool
	hpaNames                 []string
	budget                   int // resizes allowed in flight for this workload
	virtual                  map[string]bool
	allowEvict, allowRestart bool
	// nodes holds, per node of the VPA's pods, its allocatable and what the kubelet has
	// allocated to all its pods.
	nodes map[string]nodeUse
}

// Reconcile gathers a VPA's pods and their context, decides per pod, and acts within the
// workload's and the global in-flight bounds.
func (u *Updater) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := u.Clock.Now()
	defer func() { u.Metrics.UpdaterPass.Observe(u.Clock.Since(start).Seconds()) }()
	log := u.Log.WithValues("vpa", req.NamespacedName)
	g, err := u.gather(ctx, req.NamespacedName)
	if err != nil || g == nil {
		return reconcile.Result{}, err
	}
	if _, inPlace := resizer.InPlaceMode(g.vpa); !inPlace {
		return reconcile.Result{}, nil
	}
	now := u.Clock.Now()
	ps := u.decideAll(g, now)
	plan, busy, wake := ps.plan, ps.busy, ps.wake
	// Increases first: under a tight budget the pods that need more resources go first.
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].d.Increase && !plan[j].d.Increase })
	for _, p := range plan {
		if busy >= g.budget || !u.reserve(p.pod.UID, now) {
			wake = earliest(wake, now.Add(time.Second))
			log.V(1).Info("Resize held by the in-flight bound", "pod", p.pod.Name, "busy", busy, "budget", g.budget)
			continue
		}
		busy++
		if err := u.act(ctx, g.vpa, p.pod, p.d); err != nil {
			u.release(p.pod.UID)
			log.Error(err, "Acting on pod failed", "pod", p.pod.Name, "action", p.d.Action)
			wake = earliest(wake, now.Add(5*time.Second))
		}
	}
	if err := u.writeConditions(ctx, g, ps.infeasible, ps.leftToHPA); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: max(wake.Sub(now), 100*time.Millisecond)}, nil
}

// planned is one pod's decision that needs acting on.
type planned struct {
	pod *corev1.Pod
	d   resizer.Decision
}

// pass is what deciding over a VPA's pods yields.
type pass struct {
	plan                  []planned
	busy                  int // pods of the workload resizing now
	infeasible, leftToHPA []string
	wake                  time.Time // when to look again
}

// decideAll settles resizes in flight and decides for every pod of the VPA. A pod whose cached
// copy predates a resize this updater sent is left alone until the cache catches up.
func (u *Updater) decideAll(g *gathered, now time.Time) pass {
	ps := pass{wake: now.Add(u.Resync)}
	for _, pod := range g.pods {
		busy, stale := u.settle(pod, now)
		if busy {
			ps.busy++
		}
		if stale {
			ps.wake = earliest(ps.wake, now.Add(time.Second))
			continue
		}
		st := u.stateOf(pod)
		d := resizer.Decide(resizer.Input{
			Now: now, VPA: g.vpa, Pod: pod,
			OnVirtualNode:         g.virtual[pod.Spec.NodeName],
			HPAResources:          g.hpa,
			MemoryUsage:           u.Model.Memory(pod.UID),
			LastResize:            st.LastResize.Time,
			AllowContainerRestart: g.allowRestart,
			AllowEviction:         g.allowEvict,
			Boost:                 st.Boost,
			NodeRoom:              g.room(pod),
		}, u.Config)
		u.Metrics.Decisions.WithLabelValues(string(d.Action), string(d.Reason)).Inc()
		u.notePending(g.vpa, pod, d)
		switch d.Reason {
		case resizer.ReasonInfeasible:
			ps.infeasible = append(ps.infeasible, pod.Name)
		case resizer.ReasonCooldown:
			ps.wake = earliest(ps.wake, st.LastResize.Add(u.Config.DownscaleCooldown))
		case resizer.ReasonDeferred:
			ps.wake = earliest(ps.wake, now.Add(u.Config.DeferredBackoff))
		}
		if len(ps.leftToHPA) == 0 {
			for _, r := range d.LeftToHPA {
				ps.leftToHPA = append(ps.leftToHPA, string(r))
			}
		}
		if t, ok := boostEnds(g.vpa, pod); ok && t.After(now) {
			ps.wake = earliest(ps.wake, t)
		}
		if d.Action != resizer.None {
			ps.plan = append(ps.plan, planned{pod, d})
		}
	}
	return ps
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
