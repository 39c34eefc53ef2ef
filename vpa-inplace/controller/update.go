package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// inflight is a resize sent and not yet reported applied by the pod's status: when it was sent.
type inflight struct {
	at time.Time
}

// podMemo is what the updater remembers of a pod between reconciles.
type podMemo struct {
	lastResize time.Time
	boosted    bool
	pending    string // the PodResizePending reason last seen, to count transitions once
}

// inflightTimeout is how long a resize counts as in flight without the pod's status catching up.
const inflightTimeout = 2 * time.Minute

// SetupWithManager registers the updater: VPAs, and the pods and HPAs that map to them.
func (u *Updater) SetupWithManager(mgr ctrl.Manager, workers int, skipNameValidation bool) error {
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

// decideAll settles resizes in flight and decides for every pod of the VPA.
func (u *Updater) decideAll(g *gathered, now time.Time) pass {
	ps := pass{wake: now.Add(u.Resync)}
	for _, pod := range g.pods {
		if u.settle(pod, now) {
			ps.busy++
		}
		memo := u.memo(pod.UID)
		d := resizer.Decide(resizer.Input{
			Now: now, VPA: g.vpa, Pod: pod,
			OnVirtualNode:         g.virtual[pod.Spec.NodeName],
			HPAResources:          g.hpa,
			MemoryUsage:           u.Model.Memory(pod.UID),
			LastResize:            memo.lastResize,
			AllowContainerRestart: g.allowRestart,
			AllowEviction:         g.allowEvict,
			Boosted:               memo.boosted,
		}, u.Config)
		u.Metrics.Decisions.WithLabelValues(string(d.Action), string(d.Reason)).Inc()
		u.notePending(g.vpa, pod, d)
		switch d.Reason {
		case resizer.ReasonInfeasible:
			ps.infeasible = append(ps.infeasible, pod.Name)
		case resizer.ReasonCooldown:
			ps.wake = earliest(ps.wake, memo.lastResize.Add(u.Config.DownscaleCooldown))
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

// gather reads the VPA and everything its decisions depend on. nil, nil: nothing to do.
func (u *Updater) gather(ctx context.Context, key types.NamespacedName) (*gathered, error) {
	var vpa vpav1.VerticalPodAutoscaler
	if err := u.Client.Get(ctx, key, &vpa); err != nil {
		if apierrors.IsNotFound(err) {
			u.Model.SetSelector(key, nil)
		}
		return nil, client.IgnoreNotFound(err)
	}
	if !Handles(&vpa, u.Name, u.HandleUnnamed) {
		u.Model.SetSelector(key, nil)
		return nil, nil
	}
	sel, err := u.Targets.Selector(ctx, &vpa)
	if err != nil {
		u.Model.SetSelector(key, nil)
		// The recommender reports unsupported targets in ConfigUnsupported; nothing to resize.
		return nil, client.IgnoreNotFound(ignoreUnsupported(err))
	}
	u.Model.SetSelector(key, sel)
	var pods corev1.PodList
	// Pods, HPAs, PDBs and nodes are only read: the cache's objects are used without copies.
	if err := u.Client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	g := &gathered{
		vpa:          &vpa,
		pods:         podsOf(pods.Items, labels.Everything()),
		hpa:          map[corev1.ResourceName]bool{},
		virtual:      map[string]bool{},
		allowEvict:   vpa.Annotations[AllowEvictionAnnotation] == "true",
		allowRestart: vpa.Annotations[AllowRestartAnnotation] == "true",
		budget:       u.MaxPerWorkload,
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := u.Client.List(ctx, &hpas, client.InNamespace(key.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing HPAs: %w", err)
	}
	for i := range hpas.Items {
		h := &hpas.Items[i]
		if !sameTarget(&vpa, h) {
			continue
		}
		owned := UtilizationResources(h)
		for r := range owned {
			g.hpa[r] = true
		}
		if len(owned) > 0 {
			g.hpaNames = append(g.hpaNames, h.Name)
		}
	}
	var pdbs policyv1.PodDisruptionBudgetList
	if err := u.Client.List(ctx, &pdbs, client.InNamespace(key.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing PodDisruptionBudgets: %w", err)
	}
	for i := range pdbs.Items {
		if allowed, ok := pdbBudget(&pdbs.Items[i], g.pods); ok {
			g.budget = min(g.budget, max(int(allowed), 1))
		}
	}
	for _, p := range g.pods {
		if p.Spec.NodeName == "" {
			continue
		}
		if _, seen := g.virtual[p.Spec.NodeName]; seen {
			continue
		}
		var node corev1.Node
		if err := u.Client.Get(ctx, types.NamespacedName{Name: p.Spec.NodeName}, &node, client.UnsafeDisableDeepCopy); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("reading node %s: %w", p.Spec.NodeName, err)
		}
		g.virtual[p.Spec.NodeName] = u.Virtual.matches(&node)
	}
	return g, nil
}

func ignoreUnsupported(err error) error {
	if errors.Is(err, ErrUnsupportedTarget) {
		return nil
	}
	return err
}

func (v VirtualNodes) matches(node *corev1.Node) bool {
	if v.Selector != nil && !v.Selector.Empty() && v.Selector.Matches(labels.Set(node.Labels)) {
		return true
	}
	if v.TaintKey != "" {
		for _, t := range node.Spec.Taints {
			if t.Key == v.TaintKey {
				return true
			}
		}
	}
	return false
}

// UtilizationResources returns the resources an HPA scales on by utilization (Resource or
// ContainerResource metrics with a Utilization target): their requests are its denominator.
func UtilizationResources(h *autoscalingv2.HorizontalPodAutoscaler) map[corev1.ResourceName]bool {
	out := map[corev1.ResourceName]bool{}
	for _, m := range h.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType:
			out[m.Resource.Name] = true
		case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil && m.ContainerResource.Target.Type == autoscalingv2.UtilizationMetricType:
			out[m.ContainerResource.Name] = true
		}
	}
	return out
}

// pdbBudget returns a PDB's disruptionsAllowed when it selects any of pods.
func pdbBudget(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (int32, bool) {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() {
		return 0, false
	}
	for _, p := range pods {
		if sel.Matches(labels.Set(p.Labels)) {
			return pdb.Status.DisruptionsAllowed, true
		}
	}
	return 0, false
}

// boostEnds returns when the pod's startup boost window ends (Ready + the longest duration).
func boostEnds(vpa *vpav1.VerticalPodAutoscaler, pod *corev1.Pod) (time.Time, bool) {
	var d time.Duration
	if vpa.Spec.StartupBoost != nil && vpa.Spec.StartupBoost.CPU != nil && vpa.Spec.StartupBoost.CPU.DurationSeconds != nil {
		d = time.Duration(*vpa.Spec.StartupBoost.CPU.DurationSeconds) * time.Second
	}
	if vpa.Spec.ResourcePolicy != nil {
		for _, cp := range vpa.Spec.ResourcePolicy.ContainerPolicies {
			if cp.StartupBoost != nil && cp.StartupBoost.CPU != nil && cp.StartupBoost.CPU.DurationSeconds != nil {
				d = max(d, time.Duration(*cp.StartupBoost.CPU.DurationSeconds)*time.Second)
			}
		}
	}
	if d == 0 {
		return time.Time{}, false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Add(d), true
		}
	}
	return time.Time{}, false
}

// settle checks a pod against the resize in flight for it: when the status reports the spec's
// resources, the resize is applied (latency observed); it reports whether the pod is still
// resizing (sent and not applied, or pending in the kubelet).
func (u *Updater) settle(pod *corev1.Pod, now time.Time) bool {
	u.mu.Lock()
	u.maps()
	defer u.mu.Unlock()
	f, ok := u.inflight[pod.UID]
	applied := statusMatchesSpec(pod)
	if ok && applied {
		u.Metrics.Applied.Observe(now.Sub(f.at).Seconds())
		u.Metrics.Resizes.WithLabelValues("applied").Inc()
		delete(u.inflight, pod.UID)
		return false
	}
	if ok && now.Sub(f.at) > inflightTimeout {
		delete(u.inflight, pod.UID)
	}
	return !applied && !hasCondition(pod, corev1.PodResizePending, corev1.PodReasonInfeasible)
}

// statusMatchesSpec reports whether every container's reported resources equal its spec.
func statusMatchesSpec(pod *corev1.Pod) bool {
	if pod.Status.ObservedGeneration != 0 && pod.Status.ObservedGeneration < pod.Generation {
		return false
	}
	for _, c := range pod.Spec.Containers {
		found := false
		for _, s := range pod.Status.ContainerStatuses {
			if s.Name != c.Name {
				continue
			}
			found = true
			if s.Resources == nil || !equality.Semantic.DeepEqual(s.Resources.Requests, c.Resources.Requests) || !equality.Semantic.DeepEqual(s.Resources.Limits, c.Resources.Limits) {
				return false
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func hasCondition(pod *corev1.Pod, t corev1.PodConditionType, reason string) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

// reserve counts a resize in flight if the global bound allows it.
func (u *Updater) reserve(uid types.UID, now time.Time) bool {
	u.mu.Lock()
	u.maps()
	defer u.mu.Unlock()
	if _, ok := u.inflight[uid]; !ok && len(u.inflight) >= u.MaxInFlight {
		return false
	}
	u.inflight[uid] = inflight{at: now}
	return true
}

func (u *Updater) release(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.inflight, uid)
}

func (u *Updater) memo(uid types.UID) podMemo {
	u.mu.Lock()
	u.maps()
	defer u.mu.Unlock()
	return u.pods[uid]
}

// notePending counts a pod's Deferred or Infeasible once per transition and tells the pod.
func (u *Updater) notePending(vpa *vpav1.VerticalPodAutoscaler, pod *corev1.Pod, d resizer.Decision) {
	reason := ""
	switch d.Reason {
	case resizer.ReasonDeferred:
		reason = "deferred"
	case resizer.ReasonInfeasible:
		reason = "infeasible"
	}
	u.mu.Lock()
	u.maps()
	m := u.pods[pod.UID]
	changed := m.pending != reason
	m.pending = reason
	u.pods[pod.UID] = m
	u.mu.Unlock()
	if !changed || reason == "" {
		return
	}
	u.Metrics.Resizes.WithLabelValues(reason).Inc()
	u.Recorder.Eventf(pod, vpa, corev1.EventTypeWarning, string(d.Reason), "Resize", "%s", d.Message)
}

// act applies one decision: one pods/resize patch, or an eviction.
func (u *Updater) act(ctx context.Context, vpa *vpav1.VerticalPodAutoscaler, pod *corev1.Pod, d resizer.Decision) error {
	switch d.Action {
	case resizer.Resize:
		body, err := resizer.Patch(d)
		if err != nil {
			return err
		}
		// pod is the cache's object: the response goes into a fresh one.
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
		if err := u.Client.SubResource("resize").Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, body)); err != nil {
			u.Metrics.Resizes.WithLabelValues("failed").Inc()
			u.Recorder.Eventf(pod, vpa, corev1.EventTypeWarning, "ResizeFailed", "Resize", "in-place resize refused: %v", err)
			return fmt.Errorf("resizing pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		u.mu.Lock()
		u.maps()
		m := u.pods[pod.UID]
		m.lastResize = u.Clock.Now()
		if d.Boosted {
			m.boosted = true
		} else if d.Reason == resizer.ReasonBoostEnded || !d.Increase {
			m.boosted = false
		}
		u.pods[pod.UID] = m
		u.mu.Unlock()
		u.Recorder.Eventf(pod, vpa, corev1.EventTypeNormal, string(d.Reason), "Resize", "%s", d.Message)
		return nil
	case resizer.Evict:
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
		if err := u.Client.SubResource("eviction").Create(ctx, target, ev); err != nil {
			u.Metrics.Resizes.WithLabelValues("eviction_failed").Inc()
			return fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		u.Metrics.Resizes.WithLabelValues("evicted").Inc()
		u.Recorder.Eventf(pod, vpa, corev1.EventTypeNormal, "Evicted", "Evict", "%s; evicted (InPlaceOrRecreate, %s=true)", d.Message, AllowEvictionAnnotation)
		return nil
	}
	return nil
}

// writeConditions sets the updater's conditions on the VPA.
func (u *Updater) writeConditions(ctx context.Context, g *gathered, infeasible, leftToHPA []string) error {
	vpa := g.vpa
	hpa := cond{t: ResourcesLeftToHPA, status: false, reason: "NoHPAOnUtilization"}
	if len(leftToHPA) > 0 {
		hpa = cond{t: ResourcesLeftToHPA, status: true, reason: "HPAScalesOnUtilization",
			message: fmt.Sprintf("%s left alone: HorizontalPodAutoscaler %s scales this target on its utilization", strings.Join(leftToHPA, ", "), strings.Join(g.hpaNames, ", "))}
	}
	inf := cond{t: ResizeInfeasible, status: false, reason: "NoInfeasibleResize"}
	if len(infeasible) > 0 {
		sort.Strings(infeasible)
		inf = cond{t: ResizeInfeasible, status: true, reason: "Infeasible", message: "in-place resize infeasible for pods " + strings.Join(infeasible, ", ")}
	}
	// A False condition is written only to clear a True one: VPAs that never had either carry
	// neither (and an idle pass writes nothing).
	var conds []cond
	for _, c := range []cond{hpa, inf} {
		if c.status || condition(vpa, c.t) != nil {
			conds = append(conds, c)
		}
	}
	if len(conds) == 0 {
		return nil
	}
	after := vpa.DeepCopy()
	after.Status.Conditions = withConditions(vpa.Status.Conditions, vpa.Generation, u.Clock.Now(), conds...)
	written, err := patchStatus(ctx, u.Client, vpa, after)
	if written && len(leftToHPA) > 0 && !conditionTrue(vpa, ResourcesLeftToHPA) {
		u.Recorder.Eventf(vpa, nil, corev1.EventTypeNormal, "ResourcesLeftToHPA", "Resize", "%s", hpa.message)
	}
	if written && len(infeasible) > 0 && !conditionTrue(vpa, ResizeInfeasible) {
		u.Recorder.Eventf(vpa, nil, corev1.EventTypeWarning, "ResizeInfeasible", "Resize", "%s", inf.message)
	}
	return err
}

func condition(vpa *vpav1.VerticalPodAutoscaler, t vpav1.VerticalPodAutoscalerConditionType) *vpav1.VerticalPodAutoscalerCondition {
	for i := range vpa.Status.Conditions {
		if vpa.Status.Conditions[i].Type == t {
			return &vpa.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTrue(vpa *vpav1.VerticalPodAutoscaler, t vpav1.VerticalPodAutoscalerConditionType) bool {
	for _, c := range vpa.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Start forgets, every Resync, what the updater remembers of pods that no longer exist, so
// its memory follows the cluster's pods. It runs on the leader with the controller.
func (u *Updater) Start(ctx context.Context) error {
	t := u.Clock.NewTicker(u.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		var list corev1.PodList
		if err := u.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			u.Log.Error(err, "Listing pods to forget gone ones failed")
			continue
		}
		live := make(map[types.UID]bool, len(list.Items))
		for i := range list.Items {
			live[list.Items[i].UID] = true
		}
		u.forget(live)
	}
}

// NeedLeaderElection is true: the memory belongs to the acting leader.
func (u *Updater) NeedLeaderElection() bool { return true }

// forget drops the memos and in-flight entries of pods not in live.
func (u *Updater) forget(live map[types.UID]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for uid := range u.pods {
		if !live[uid] {
			delete(u.pods, uid)
		}
	}
	for uid := range u.inflight {
		if !live[uid] {
			delete(u.inflight, uid)
		}
	}
}
