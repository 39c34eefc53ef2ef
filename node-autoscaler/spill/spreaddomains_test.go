package spill

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSpreadDomains(t *testing.T) {
	cfg := DefaultConfig()
	zone := corev1.LabelTopologyZone
	node := func(name, z string, labels ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{zone: z}}}
		for i := 0; i+1 < len(labels); i += 2 {
			n.Labels[labels[i]] = labels[i+1]
		}
		return n
	}
	app := func(name, nodeName string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: nodeName}}
	}
	hold := func(nodeName string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{HoldGroupLabel: "rs-1"}}, Spec: corev1.PodSpec{NodeName: nodeName}}
	}
	spilled := func(mod ...func(*corev1.Pod)) *corev1.Pod {
		p := app("web-1", "vk")
		p.Spec.Tolerations = []corev1.Toleration{cfg.toleration()}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zone, WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
		for _, m := range mod {
			m(&p)
		}
		return &p
	}
	nodes := []corev1.Node{node("vk", "a", "type", "virtual-kubelet"), node("n-d", "d")}
	cases := map[string]struct {
		pod   *corev1.Pod
		pods  []corev1.Pod
		holds []corev1.Pod
		want  []string // nil: no requirement
	}{
		// The bed's respill loop: zone d holds two of the workload, zone a (the virtual node)
		// the spilled one; a replacement in d would make the skew 2.
		"the full zone is out": {spilled(), []corev1.Pod{app("web-1", "vk"), app("web-2", "n-d"), app("web-3", "n-d")}, nil, []string{"a"}},
		"balanced: both":       {spilled(), []corev1.Pod{app("web-1", "vk"), app("web-2", "n-d")}, nil, []string{"a", "d"}},
		"placeholders count as the pods they stand for": {spilled(), []corev1.Pod{app("web-1", "vk"), app("web-2", "n-d")}, []corev1.Pod{hold("n-d")}, []string{"a"}},
		"other workloads do not count":                  {spilled(), []corev1.Pod{app("web-1", "vk"), {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{"app": "db"}}, Spec: corev1.PodSpec{NodeName: "n-d"}}}, nil, []string{"d"}},
		"a soft constraint: no requirement":             {spilled(func(p *corev1.Pod) { p.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable = corev1.ScheduleAnyway }), nil, nil, nil},
		"nodes the pod may not use are no domain":       {spilled(func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{zone: "d"} }), []corev1.Pod{app("web-2", "n-d"), app("web-3", "n-d")}, nil, []string{"d"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reqs := SpreadDomains(tc.pod, nodes, tc.pods, tc.holds, cfg.toleration())
			if tc.want == nil {
				if len(reqs) != 0 {
					t.Errorf("requirements %+v, want none", reqs)
				}
				return
			}
			if len(reqs) != 1 || reqs[0].Key != zone || reqs[0].Operator != corev1.NodeSelectorOpIn || !slices.Equal(reqs[0].Values, tc.want) {
				t.Errorf("requirements %+v, want %s In %v", reqs, zone, tc.want)
			}
		})
	}
	aff := withRequirements(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}, {}}}}},
		[]corev1.NodeSelectorRequirement{{Key: zone, Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}})
	for i, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if last := term.MatchExpressions[len(term.MatchExpressions)-1]; last.Key != zone {
			t.Errorf("term %d lacks the zone requirement: %+v", i, term)
		}
	}
}
