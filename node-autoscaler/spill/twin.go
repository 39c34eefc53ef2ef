package spill

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// HoldGroupLabel on a placeholder names the workload it holds room for (the spilled pod's
// controller, else the pod itself), so that its copies of the pod's spread constraints and
// anti-affinity count the workload's other placeholders too, as the replacements they stand
// for will count each other.
const HoldGroupLabel = "node-autoscaler.lockstep.dev/hold-group"

// holdGroup is the value of HoldGroupLabel for a pod's placeholder.
func holdGroup(pod *corev1.Pod) string {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return string(ref.UID)
	}
	return string(pod.UID)
}

// twinPlacement is what decides where the placeholder may go, copied from the pod so that the
// room it holds fits the pod's replacement: node affinity, pod affinity and anti-affinity, and
// topology spread constraints (their matchLabelKeys and mismatchLabelKeys resolved from the
// pod's labels, since the placeholder does not carry them), plus, for every anti-affinity term
// and hard spread constraint that selects the pod's own workload, the same rule over the
// workload's placeholders (HoldGroupLabel; a spread twin is soft, as the API takes one
// constraint per key and whenUnsatisfiable). The placeholder never takes the pod's labels: Services, PDBs,
// HPAs and ReplicaSets would count it. Pure.
func twinPlacement(pod *corev1.Pod, group string) (*corev1.Affinity, []corev1.TopologySpreadConstraint) {
	own := labels.Set(pod.Labels)
	siblings := &metav1.LabelSelector{MatchLabels: map[string]string{HoldGroupLabel: group}}
	var aff *corev1.Affinity
	if a := pod.Spec.Affinity; a != nil {
		aff = &corev1.Affinity{}
		if a.NodeAffinity != nil {
			aff.NodeAffinity = a.NodeAffinity.DeepCopy()
		}
		if a.PodAffinity != nil {
			aff.PodAffinity = &corev1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution:  resolveTerms(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, own, nil),
				PreferredDuringSchedulingIgnoredDuringExecution: resolveWeighted(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, own, nil),
			}
		}
		if a.PodAntiAffinity != nil {
			aff.PodAntiAffinity = &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution:  resolveTerms(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, own, siblings),
				PreferredDuringSchedulingIgnoredDuringExecution: resolveWeighted(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, own, siblings),
			}
		}
		if aff.NodeAffinity == nil && aff.PodAffinity == nil && aff.PodAntiAffinity == nil {
			aff = nil
		}
	}
	var spread []corev1.TopologySpreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		c = *c.DeepCopy()
		c.LabelSelector = withKeys(c.LabelSelector, own, c.MatchLabelKeys, false)
		c.MatchLabelKeys = nil
		spread = append(spread, c)
		// The API allows one constraint per topology key and whenUnsatisfiable: the twin over
		// the placeholders is the soft one (Karpenter and kube-scheduler still spread by it),
		// and a soft constraint of the pod's own has none.
		if selects(c.LabelSelector, own) && c.WhenUnsatisfiable == corev1.DoNotSchedule && !hasSpread(pod.Spec.TopologySpreadConstraints, c.TopologyKey, corev1.ScheduleAnyway) {
			twin := *c.DeepCopy()
			twin.LabelSelector, twin.WhenUnsatisfiable, twin.MinDomains = siblings.DeepCopy(), corev1.ScheduleAnyway, nil
			spread = append(spread, twin)
		}
	}
	return aff, spread
}

// hasSpread reports whether constraints has one for key ("" for any) and when.
func hasSpread(constraints []corev1.TopologySpreadConstraint, key string, when corev1.UnsatisfiableConstraintAction) bool {
	for _, c := range constraints {
		if (key == "" || c.TopologyKey == key) && c.WhenUnsatisfiable == when {
			return true
		}
	}
	return false
}

// resolveTerms copies affinity terms with their label keys resolved; with siblings, a term that
// selects the pod's own workload gets a twin over the placeholders.
func resolveTerms(terms []corev1.PodAffinityTerm, own labels.Set, siblings *metav1.LabelSelector) []corev1.PodAffinityTerm {
	var out []corev1.PodAffinityTerm
	for _, t := range terms {
		t = *t.DeepCopy()
		t.LabelSelector = withKeys(t.LabelSelector, own, t.MatchLabelKeys, false)
		t.LabelSelector = withKeys(t.LabelSelector, own, t.MismatchLabelKeys, true)
		t.MatchLabelKeys, t.MismatchLabelKeys = nil, nil
		out = append(out, t)
		if siblings != nil && selects(t.LabelSelector, own) {
			twin := *t.DeepCopy()
			twin.LabelSelector, twin.NamespaceSelector = siblings.DeepCopy(), nil
			twin.Namespaces = nil // the placeholders are in the pod's namespace
			out = append(out, twin)
		}
	}
	return out
}

func resolveWeighted(terms []corev1.WeightedPodAffinityTerm, own labels.Set, siblings *metav1.LabelSelector) []corev1.WeightedPodAffinityTerm {
	var out []corev1.WeightedPodAffinityTerm
	for _, w := range terms {
		for _, t := range resolveTerms([]corev1.PodAffinityTerm{w.PodAffinityTerm}, own, siblings) {
			out = append(out, corev1.WeightedPodAffinityTerm{Weight: w.Weight, PodAffinityTerm: t})
		}
	}
	return out
}

// withKeys adds to sel, for each key the pod has, `key In (value)` (or NotIn for mismatch keys):
// what the scheduler derives from matchLabelKeys and mismatchLabelKeys of the incoming pod.
func withKeys(sel *metav1.LabelSelector, own labels.Set, keys []string, mismatch bool) *metav1.LabelSelector {
	if len(keys) == 0 {
		return sel
	}
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	op := metav1.LabelSelectorOpIn
	if mismatch {
		op = metav1.LabelSelectorOpNotIn
	}
	for _, k := range keys {
		if v, ok := own[k]; ok {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: op, Values: []string{v}})
		}
	}
	return sel
}

// selects reports whether sel matches the labels own (a nil or invalid selector matches nothing).
func selects(sel *metav1.LabelSelector, own labels.Set) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(own)
}
