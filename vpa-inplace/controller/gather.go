package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/internal/podresources"
)

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
		nodes:        map[string]nodeUse{},
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
		if err := u.gatherNode(ctx, g, p.Spec.NodeName); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// nodeUse is a node's allocatable and what the kubelet has allocated to its pods.
type nodeUse struct {
	allocatable, allocated corev1.ResourceList
}

// gatherNode reads a node of the VPA's pods once: whether it is virtual, its allocatable, and
// what its pods (of every namespace) are allocated.
func (u *Updater) gatherNode(ctx context.Context, g *gathered, name string) error {
	if name == "" {
		return nil
	}
	if _, seen := g.virtual[name]; seen {
		return nil
	}
	var node corev1.Node
	if err := u.Client.Get(ctx, types.NamespacedName{Name: name}, &node, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading node %s: %w", name, err)
	}
	g.virtual[name] = u.Virtual.matches(&node)
	var pods corev1.PodList
	if err := u.Client.List(ctx, &pods, client.MatchingFields{podNodeField: name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing the pods of node %s: %w", name, err)
	}
	use := nodeUse{allocatable: node.Status.Allocatable, allocated: corev1.ResourceList{}}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		podresources.Add(use.allocated, podresources.Allocated(p), 1)
	}
	g.nodes[name] = use
	return nil
}

// room is what pod may be allocated on its node at most: the node's allocatable less what the
// other pods there are allocated; nil when the node is unknown.
func (g *gathered) room(pod *corev1.Pod) corev1.ResourceList {
	use, ok := g.nodes[pod.Spec.NodeName]
	if !ok {
		return nil
	}
	room := use.allocatable.DeepCopy()
	podresources.Add(room, use.allocated, -1)
	podresources.Add(room, podresources.Allocated(pod), 1)
	return room
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
