package spill

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
)

// bootSamples is how many of a pool's most recent boots its boot time is the median of.
const bootSamples = 5

// gatherCluster reads the launches in flight, the NodePools with their boot times and the virtual
// nodes from the cache.
func gatherCluster(ctx context.Context, c client.Reader, cfg Config, now time.Time) (Cluster, error) {
	cl := Cluster{Now: now}
	var claims karpv1.NodeClaimList
	if err := c.List(ctx, &claims); err != nil {
		return cl, fmt.Errorf("listing NodeClaims: %w", err)
	}
	var pools karpv1.NodePoolList
	if err := c.List(ctx, &pools); err != nil {
		return cl, fmt.Errorf("listing NodePools: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes, client.MatchingLabelsSelector{Selector: cfg.VirtualNodeSelector}); err != nil {
		return cl, fmt.Errorf("listing virtual nodes: %w", err)
	}
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp == nil {
			cl.VirtualNodes = append(cl.VirtualNodes, &nodes.Items[i])
		}
	}
	boots := BootTimes(claims.Items)
	for i := range pools.Items {
		np := &pools.Items[i]
		if np.DeletionTimestamp != nil || np.StatusConditions().Root().IsFalse() {
			continue // Karpenter launches nothing from a pool that is not ready
		}
		reqs := karpscheduling.NewNodeSelectorRequirementsWithMinValues(np.Spec.Template.Spec.Requirements...)
		reqs.Add(karpscheduling.NewLabelRequirements(np.Spec.Template.Labels).Values()...)
		reqs.Add(karpscheduling.NewRequirement(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, np.Name))
		bt, ok := boots[np.Name]
		if !ok {
			bt = cfg.DefaultBootTime
		}
		cl.Pools = append(cl.Pools, Pool{Name: np.Name, Requirements: reqs, Taints: np.Spec.Template.Spec.Taints, BootTime: bt})
	}
	for i := range claims.Items {
		nc := &claims.Items[i]
		if nc.DeletionTimestamp != nil || nc.StatusConditions().Get(karpv1.ConditionTypeInitialized).IsTrue() {
			continue
		}
		cl.Launches = append(cl.Launches, Launch{
			Name: nc.Name, Pool: nc.Labels[karpv1.NodePoolLabelKey], Created: nc.CreationTimestamp.Time,
			Requirements: karpscheduling.NewNodeSelectorRequirementsWithMinValues(nc.Spec.Requirements...),
			Taints:       nc.Spec.Taints,
		})
	}
	return cl, nil
}

// BootTimes is each NodePool's observed boot time: the median time from NodeClaim creation to an
// initialized node over its most recent bootSamples initialized NodeClaims. Pools without one are
// absent.
func BootTimes(claims []karpv1.NodeClaim) map[string]time.Duration {
	type boot struct {
		created time.Time
		took    time.Duration
	}
	byPool := map[string][]boot{}
	for i := range claims {
		nc := &claims[i]
		cond := nc.StatusConditions().Get(karpv1.ConditionTypeInitialized)
		pool := nc.Labels[karpv1.NodePoolLabelKey]
		if cond == nil || !cond.IsTrue() || pool == "" {
			continue
		}
		took := cond.LastTransitionTime.Sub(nc.CreationTimestamp.Time)
		if took <= 0 {
			continue
		}
		byPool[pool] = append(byPool[pool], boot{nc.CreationTimestamp.Time, took})
	}
	out := make(map[string]time.Duration, len(byPool))
	for pool, bs := range byPool {
		slices.SortFunc(bs, func(a, b boot) int { return b.created.Compare(a.created) })
		bs = bs[:min(len(bs), bootSamples)]
		took := make([]time.Duration, len(bs))
		for i := range bs {
			took[i] = bs[i].took
		}
		slices.Sort(took)
		out[pool] = took[len(took)/2]
	}
	return out
}

// gatherCandidate reads what Decide needs about a pod beyond the pod: its namespace's budget and
// whether a volume ties it to one machine.
func gatherCandidate(ctx context.Context, c client.Reader, pod *corev1.Pod) (Candidate, error) {
	cand := Candidate{Pod: pod}
	var ns corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: pod.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		return cand, fmt.Errorf("reading namespace %s: %w", pod.Namespace, err)
	}
	cand.NamespaceBudget = ns.Annotations[BudgetAnnotation]
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.HostPath != nil:
			cand.LocalVolume = v.Name + " (hostPath)"
		case v.PersistentVolumeClaim != nil:
			local, err := localClaim(ctx, c, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return cand, err
			}
			if local != "" {
				cand.LocalVolume = v.Name + " (" + local + ")"
			}
		}
		if cand.LocalVolume != "" {
			break
		}
	}
	return cand, nil
}

// localClaim says how a claim ties a pod to one machine ("" when it does not).
func localClaim(ctx context.Context, c client.Reader, namespace, name string) (string, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &pvc); err != nil {
		if apierrors.IsNotFound(err) {
			return "claim " + name + " does not exist", nil
		}
		return "", fmt.Errorf("reading PersistentVolumeClaim %s/%s: %w", namespace, name, err)
	}
	if pvc.Spec.VolumeName == "" {
		return "claim " + name + " is not bound yet; its volume's place is unknown", nil
	}
	var pv corev1.PersistentVolume
	if err := c.Get(ctx, types.NamespacedName{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		if apierrors.IsNotFound(err) {
			return "volume " + pvc.Spec.VolumeName + " does not exist", nil
		}
		return "", fmt.Errorf("reading PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
	}
	switch {
	case pv.Spec.Local != nil:
		return "local volume " + pv.Name, nil
	case pv.Spec.HostPath != nil:
		return "hostPath volume " + pv.Name, nil
	}
	return "", nil
}
