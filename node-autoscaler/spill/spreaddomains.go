package spill

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SpreadDomains says where a spilled pod's replacement may go under its hard topology spread
// constraints, as node requirements for its placeholder: for each DoNotSchedule constraint, the
// domains (values of its key among the nodes kube-scheduler counts) where one more of the
// workload's pods keeps the skew within maxSkew — counting the workload's pods as they are (the
// spilled pod too: it serves until its replacement is ready) and each placeholder already
// scheduled as the pod it stands for. A placeholder copies the constraint, but it does not match
// the workload's selector, so that copy alone lets it into a domain its replacement could not
// enter (a respill loop); this requirement closes the gap. None when no node has the key. Pure.
func SpreadDomains(pod *corev1.Pod, nodes []corev1.Node, pods []corev1.Pod, holds []corev1.Pod, virtual corev1.Toleration) []corev1.NodeSelectorRequirement {
	var out []corev1.NodeSelectorRequirement
	own := labels.Set(pod.Labels)
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	tolerations := withoutToleration(pod.Spec.Tolerations, virtual)
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != corev1.DoNotSchedule || c.LabelSelector == nil {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(withKeys(c.LabelSelector.DeepCopy(), own, c.MatchLabelKeys, false))
		if err != nil {
			continue
		}
		domainOf := map[string]string{} // eligible node → domain
		for i := range nodes {
			if d, ok := nodes[i].Labels[c.TopologyKey]; ok && counted(c, &nodes[i], required, tolerations) {
				domainOf[nodes[i].Name] = d
			}
		}
		if len(domainOf) == 0 {
			continue
		}
		counts := domainCounts(domainOf, pod.Namespace, selector, pods, holds)
		out = append(out, corev1.NodeSelectorRequirement{Key: c.TopologyKey, Operator: corev1.NodeSelectorOpIn, Values: allowedDomains(counts, int(c.MaxSkew))})
	}
	return out
}

// domainCounts counts per domain the workload's pods (those of namespace that selector matches,
// not terminating) and the placeholders, on the nodes of domainOf; every domain is present.
func domainCounts(domainOf map[string]string, namespace string, selector labels.Selector, pods, holds []corev1.Pod) map[string]int {
	counts := map[string]int{}
	for _, d := range domainOf {
		counts[d] += 0
	}
	for i := range pods {
		p := &pods[i]
		if d, ok := domainOf[p.Spec.NodeName]; ok && p.DeletionTimestamp == nil && p.Namespace == namespace && selector.Matches(labels.Set(p.Labels)) {
			counts[d]++
		}
	}
	for i := range holds {
		if d, ok := domainOf[holds[i].Spec.NodeName]; ok && holds[i].DeletionTimestamp == nil {
			counts[d]++
		}
	}
	return counts
}

// allowedDomains are the domains where one more pod keeps the skew within maxSkew, sorted.
func allowedDomains(counts map[string]int, maxSkew int) []string {
	fewest := -1
	for _, n := range counts {
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	var allowed []string
	for d, n := range counts {
		if n+1-fewest <= maxSkew {
			allowed = append(allowed, d)
		}
	}
	sort.Strings(allowed)
	return allowed
}

// spreadRequirements reads what SpreadDomains needs from the cache, for a pod with hard spread
// constraints.
func spreadRequirements(ctx context.Context, d Deps, pod *corev1.Pod) ([]corev1.NodeSelectorRequirement, error) {
	if !hasSpread(pod.Spec.TopologySpreadConstraints, "", corev1.DoNotSchedule) {
		return nil, nil
	}
	var nodes corev1.NodeList
	if err := d.Client.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("listing nodes for the spread of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	var pods corev1.PodList
	if err := d.Client.List(ctx, &pods, client.InNamespace(pod.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods for the spread of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	var holds []corev1.Pod
	for _, p := range pods.Items {
		if p.Labels[HoldGroupLabel] == holdGroup(pod) {
			holds = append(holds, p)
		}
	}
	return SpreadDomains(pod, nodes.Items, pods.Items, holds, d.Config.toleration()), nil
}

// counted reports whether kube-scheduler counts node as a domain of constraint c for the pod:
// by default nodes that meet its node selector and required affinity (nodeAffinityPolicy
// Honor), whatever their taints (nodeTaintsPolicy Ignore).
func counted(c corev1.TopologySpreadConstraint, n *corev1.Node, required nodeaffinity.RequiredNodeAffinity, tolerations []corev1.Toleration) bool {
	if c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor {
		if ok, _ := required.Match(n); !ok {
			return false
		}
	}
	if c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor {
		if _, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, tolerations, func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, false); untolerated {
			return false
		}
	}
	return true
}

// withoutToleration is tolerations without those matching t.
func withoutToleration(tolerations []corev1.Toleration, t corev1.Toleration) []corev1.Toleration {
	var out []corev1.Toleration
	for _, x := range tolerations {
		if !x.MatchToleration(&t) {
			out = append(out, x)
		}
	}
	return out
}

// withRequirements adds reqs to every term of the affinity's required node affinity (a term is
// made when there is none).
func withRequirements(aff *corev1.Affinity, reqs []corev1.NodeSelectorRequirement) *corev1.Affinity {
	if len(reqs) == 0 {
		return aff
	}
	if aff == nil {
		aff = &corev1.Affinity{}
	}
	if aff.NodeAffinity == nil {
		aff.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := aff.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		terms = []corev1.NodeSelectorTerm{{}}
	}
	for i := range terms {
		terms[i].MatchExpressions = append(terms[i].MatchExpressions, reqs...)
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = terms
	return aff
}
