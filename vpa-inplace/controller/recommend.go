package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/tools/events"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
)

// PodMetricsLister lists pod usage from metrics.k8s.io (the metrics clientset does).
type PodMetricsLister interface {
	List(ctx context.Context) ([]metricsv1beta1.PodMetrics, error)
}

// Checkpoint labels: checkpoints this recommender writes carry them, and it collects only those.
const (
	checkpointManagedBy = "app.kubernetes.io/managed-by"
	checkpointOwner     = "lockstep-vpa-inplace"
)

// Recommender reads usage every Interval, keeps each handled VPA's histories in the Model,
// writes status.recommendation and conditions, and checkpoints the histories.
type Recommender struct {
	Client   client.Client
	Usage    PodMetricsLister
	Targets  *Targets
	Model    *Model
	Clock    clock.WithTicker
	Recorder events.EventRecorder
	Metrics  *Metrics
	Log      logr.Logger
	// Name is the recommender name VPAs select in spec.recommenders; HandleUnnamed also takes
	// VPAs that name none.
	Name          string
	HandleUnnamed bool
	// Interval between usage reads; CheckpointInterval between checkpoint writes.
	Interval, CheckpointInterval time.Duration

	lastCheckpoint time.Time
}

// NeedLeaderElection is true: only the leader reads usage and writes recommendations.
func (r *Recommender) NeedLeaderElection() bool { return true }

// Start restores the checkpoints, then runs a pass every Interval until ctx ends.
func (r *Recommender) Start(ctx context.Context) error {
	if err := r.restore(ctx); err != nil {
		r.Log.Error(err, "Restoring checkpoints failed; starting without history")
	}
	r.lastCheckpoint = r.Clock.Now()
	t := r.Clock.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "Recommender pass failed")
		}
		select {
		case <-ctx.Done():
			// A last checkpoint keeps what this leader learnt for the next one.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.checkpoint(cctx); err != nil {
				r.Log.Error(err, "Final checkpoint failed")
			}
			return nil
		case <-t.C():
		}
	}
}

// RunOnce reads usage, updates every handled VPA's histories and writes recommendations.
func (r *Recommender) RunOnce(ctx context.Context) error {
	start := r.Clock.Now()
	defer func() { r.Metrics.RecommenderPass.Observe(r.Clock.Since(start).Seconds()) }()
	var vpas vpav1.VerticalPodAutoscalerList
	if err := r.Client.List(ctx, &vpas); err != nil {
		return fmt.Errorf("listing VPAs: %w", err)
	}
	var pods corev1.PodList
	// Pods are only read: the cache's objects are used without copies.
	if err := r.Client.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	usage, usageErr := r.Usage.List(ctx)
	if usageErr != nil {
		// No samples this pass: histories and recommendations stay as they are, and with no
		// memory usage known the updater lowers no memory limit.
		r.Metrics.UsageErrors.Inc()
		r.Log.Error(usageErr, "Reading pod usage from metrics.k8s.io failed")
	}
	byPod := make(map[types.NamespacedName]*metricsv1beta1.PodMetrics, len(usage))
	for i := range usage {
		byPod[types.NamespacedName{Namespace: usage[i].Namespace, Name: usage[i].Name}] = &usage[i]
	}
	memory := map[types.UID]map[string]int64{}
	podsByNS := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		podsByNS[p.Namespace] = append(podsByNS[p.Namespace], p)
		if m := byPod[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}]; m != nil {
			per := map[string]int64{}
			for _, c := range m.Containers {
				if q, ok := c.Usage[corev1.ResourceMemory]; ok {
					per[c.Name] = q.Value()
				}
			}
			memory[p.UID] = per
		}
	}
	if usageErr != nil {
		memory = nil
	}
	r.Model.SetMemory(memory)

	keep := map[types.NamespacedName]bool{}
	var errs []error
	for i := range vpas.Items {
		vpa := &vpas.Items[i]
		if !Handles(vpa, r.Name, r.HandleUnnamed) {
			continue
		}
		key := types.NamespacedName{Namespace: vpa.Namespace, Name: vpa.Name}
		keep[key] = true
		if err := r.recommend(ctx, vpa, podsByNS[vpa.Namespace], byPod); err != nil {
			errs = append(errs, err)
		}
	}
	r.Model.Forget(keep)
	if r.Clock.Since(r.lastCheckpoint) >= r.CheckpointInterval {
		if err := r.checkpoint(ctx); err != nil {
			errs = append(errs, err)
		}
		r.lastCheckpoint = r.Clock.Now()
	}
	return errors.Join(errs...)
}

// recommend feeds one VPA's samples and writes its recommendation and conditions.
func (r *Recommender) recommend(ctx context.Context, vpa *vpav1.VerticalPodAutoscaler, nsPods []corev1.Pod, usage map[types.NamespacedName]*metricsv1beta1.PodMetrics) error {
	now := r.Clock.Now()
	after := vpa.DeepCopy()
	if err := recommender.ValidatePolicy(vpa.Spec.ResourcePolicy); err != nil {
		return r.unsupported(ctx, vpa, after, "InvalidResourcePolicy", err)
	}
	sel, err := r.Targets.Selector(ctx, vpa)
	if err != nil {
		if errors.Is(err, ErrUnsupportedTarget) {
			return r.unsupported(ctx, vpa, after, "UnsupportedTarget", err)
		}
		return err
	}
	pods := podsOf(nsPods, sel)

	r.Model.mu.Lock()
	st := r.Model.state(vpa)
	names, containersPerPod := r.feed(st, vpa, pods, usage)
	var recs []vpav1.RecommendedContainerResources
	for _, name := range names {
		policy := recommender.PolicyFor(vpa.Spec.ResourcePolicy, name)
		if e, ok := st.container(name, r.Model.cfg, policy).Estimate(r.Model.cfg, containersPerPod); ok {
			recs = append(recs, recommender.Apply(name, e, policy))
		}
	}
	r.Model.mu.Unlock()

	conds := []cond{{t: vpav1.ConfigUnsupported, status: false}}
	if len(pods) == 0 {
		conds = append(conds, cond{t: vpav1.NoPodsMatched, status: true, reason: "NoPodsMatched", message: "no running pod matches the target's selector"})
	} else {
		conds = append(conds, cond{t: vpav1.NoPodsMatched, status: false})
	}
	if len(recs) > 0 {
		after.Status.Recommendation = &vpav1.RecommendedPodResources{ContainerRecommendations: recs}
		conds = append(conds, cond{t: vpav1.RecommendationProvided, status: true, reason: "RecommendationProvided", message: fmt.Sprintf("from usage of %d pods", len(pods))})
	} else {
		conds = append(conds, cond{t: vpav1.RecommendationProvided, status: false, reason: "NoUsage", message: "no usage sample yet"})
	}
	after.Status.Conditions = withConditions(vpa.Status.Conditions, vpa.Generation, now, conds...)
	after.Status.ObservedGeneration = &vpa.Generation
	written, err := patchStatus(ctx, r.Client, vpa, after)
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // the next pass writes from a fresh copy
		}
		return err
	}
	if written && !equality.Semantic.DeepEqual(vpa.Status.Recommendation, after.Status.Recommendation) {
		r.Metrics.Recommendations.Inc()
	}
	return nil
}

// feed adds the pods' usage samples and OOM kills to the VPA's histories and returns the
// container names seen (sorted) and the most containers a pod has. Callers hold the model's lock.
func (r *Recommender) feed(st *vpaState, vpa *vpav1.VerticalPodAutoscaler, pods []*corev1.Pod, usage map[types.NamespacedName]*metricsv1beta1.PodMetrics) ([]string, int) {
	var names []string
	containersPerPod := 1
	seen := map[string]bool{}
	live := make(map[string]bool, len(pods))
	for _, p := range pods {
		live[string(p.UID)] = true
		containersPerPod = max(containersPerPod, len(p.Spec.Containers))
		m := usage[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}]
		for _, c := range p.Spec.Containers {
			policy := recommender.PolicyFor(vpa.Spec.ResourcePolicy, c.Name)
			if recommender.Off(policy) {
				continue
			}
			if !seen[c.Name] {
				seen[c.Name] = true
				names = append(names, c.Name)
			}
			h := st.container(c.Name, r.Model.cfg, policy)
			if s, ok := sampleOf(m, c); ok && h.Add(string(p.UID), s, r.Model.cfg) {
				r.Metrics.Samples.Inc()
			}
			r.recordOOM(st, h, p, c, policy)
		}
	}
	st.prune(live)
	sort.Strings(names)
	return names, containersPerPod
}

// sampleOf returns the container's usage sample from the pod's metrics, if there is one.
func sampleOf(m *metricsv1beta1.PodMetrics, c corev1.Container) (recommender.Sample, bool) {
	if m == nil {
		return recommender.Sample{}, false
	}
	for _, cu := range m.Containers {
		if cu.Name != c.Name {
			continue
		}
		cpu, mem := cu.Usage[corev1.ResourceCPU], cu.Usage[corev1.ResourceMemory]
		req := c.Resources.Requests[corev1.ResourceCPU]
		return recommender.Sample{Time: m.Timestamp.Time, CPUCores: cpu.AsApproximateFloat64(), MemoryBytes: mem.AsApproximateFloat64(), CPURequestCores: req.AsApproximateFloat64()}, true
	}
	return recommender.Sample{}, false
}

// recordOOM adds a bumped memory sample for an OOM kill not recorded before. Callers hold the
// model's lock.
func (r *Recommender) recordOOM(st *vpaState, h *recommender.Container, p *corev1.Pod, c corev1.Container, policy *vpav1.ContainerResourcePolicy) {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != c.Name || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.Reason != "OOMKilled" {
			continue
		}
		at := cs.LastTerminationState.Terminated.FinishedAt.Time
		k := oomKey{pod: p.UID, container: c.Name}
		if !at.After(st.ooms[k]) {
			continue
		}
		st.ooms[k] = at
		mem, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			mem = c.Resources.Requests[corev1.ResourceMemory]
		}
		ratio, minBump := 0.0, int64(-1)
		if policy != nil && policy.OOMBumpUpRatio != nil {
			ratio = policy.OOMBumpUpRatio.AsApproximateFloat64()
		}
		if policy != nil && policy.OOMMinBumpUp != nil {
			minBump = policy.OOMMinBumpUp.Value()
		}
		h.RecordOOM(string(p.UID), at, mem.AsApproximateFloat64(), r.Model.cfg, ratio, minBump)
		r.Metrics.OOMs.Inc()
	}
}

// unsupported records a configuration the recommender cannot act on: ConfigUnsupported True,
// an event, no recommendation change. Other VPAs are unaffected.
func (r *Recommender) unsupported(ctx context.Context, vpa, after *vpav1.VerticalPodAutoscaler, reason string, cause error) error {
	after.Status.Conditions = withConditions(vpa.Status.Conditions, vpa.Generation, r.Clock.Now(),
		cond{t: vpav1.ConfigUnsupported, status: true, reason: reason, message: cause.Error()})
	after.Status.ObservedGeneration = &vpa.Generation
	written, err := patchStatus(ctx, r.Client, vpa, after)
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return err
	}
	if written {
		r.Recorder.Eventf(vpa, nil, corev1.EventTypeWarning, reason, "Recommend", "%s", cause.Error())
	}
	return nil
}

// checkpointName names the checkpoint of one container of a VPA.
func checkpointName(vpa, container string) string { return vpa + "-" + container }

// checkpoint writes every history to its VerticalPodAutoscalerCheckpoint and deletes this
// recommender's checkpoints whose VPA or container it no longer tracks.
func (r *Recommender) checkpoint(ctx context.Context) error {
	now := metav1.NewTime(r.Clock.Now())
	type item struct {
		ns, vpa, container string
		status             vpav1.VerticalPodAutoscalerCheckpointStatus
	}
	var items []item
	want := map[types.NamespacedName]bool{}
	r.Model.mu.Lock()
	for key, st := range r.Model.vpas {
		for name, h := range st.containers {
			if h.Samples() == 0 {
				continue
			}
			items = append(items, item{key.Namespace, key.Name, name, h.Checkpoint(now)})
			want[types.NamespacedName{Namespace: key.Namespace, Name: checkpointName(key.Name, name)}] = true
		}
	}
	r.Model.mu.Unlock()
	var errs []error
	for _, it := range items {
		cp := &vpav1.VerticalPodAutoscalerCheckpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: it.ns, Name: checkpointName(it.vpa, it.container), Labels: map[string]string{checkpointManagedBy: checkpointOwner}},
			Spec:       vpav1.VerticalPodAutoscalerCheckpointSpec{VPAObjectName: it.vpa, ContainerName: it.container},
		}
		var old vpav1.VerticalPodAutoscalerCheckpoint
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(cp), &old)
		switch {
		case apierrors.IsNotFound(err):
			cp.Status = it.status
			err = r.Client.Create(ctx, cp)
		case err == nil:
			if old.Labels[checkpointManagedBy] != checkpointOwner {
				continue // another recommender's checkpoint of the same name: leave it
			}
			patched := old.DeepCopy()
			patched.Status = it.status
			patched.Spec = cp.Spec
			err = r.Client.Patch(ctx, patched, client.MergeFrom(&old))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("writing checkpoint %s/%s: %w", cp.Namespace, cp.Name, err))
			continue
		}
		r.Metrics.Checkpoints.Inc()
	}
	var list vpav1.VerticalPodAutoscalerCheckpointList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{checkpointManagedBy: checkpointOwner}); err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing checkpoints: %w", err))...)
	}
	for i := range list.Items {
		cp := &list.Items[i]
		if !want[client.ObjectKeyFromObject(cp)] {
			if err := r.Client.Delete(ctx, cp); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting checkpoint %s/%s: %w", cp.Namespace, cp.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// restore loads this recommender's checkpoints into the model for the VPAs it handles.
func (r *Recommender) restore(ctx context.Context) error {
	var list vpav1.VerticalPodAutoscalerCheckpointList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{checkpointManagedBy: checkpointOwner}); err != nil {
		return fmt.Errorf("listing checkpoints: %w", err)
	}
	var errs []error
	for i := range list.Items {
		cp := &list.Items[i]
		var vpa vpav1.VerticalPodAutoscaler
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: cp.Namespace, Name: cp.Spec.VPAObjectName}, &vpa); err != nil {
			continue // the VPA is gone: the first checkpoint pass deletes this one
		}
		if !Handles(&vpa, r.Name, r.HandleUnnamed) {
			continue
		}
		r.Model.mu.Lock()
		st := r.Model.state(&vpa)
		h := st.container(cp.Spec.ContainerName, r.Model.cfg, recommender.PolicyFor(vpa.Spec.ResourcePolicy, cp.Spec.ContainerName))
		err := h.Restore(cp.Status, r.Model.cfg)
		r.Model.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("checkpoint %s/%s: %w", cp.Namespace, cp.Name, err))
			continue
		}
		r.Metrics.Restored.Inc()
	}
	return errors.Join(errs...)
}
