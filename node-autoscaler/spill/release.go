package spill

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// How a released pod is seen by HPAs. An HPA on Resource, ContainerResource or Pods metrics
// counts the ready pods its target's selector matches, so a released pod, still labelled like
// the workload, would count as one more replica until it goes (and, on a metric its pods do
// not share, such as a per-pod latency, make the HPA scale up for it). So the release also
// removes one label of the Deployment's selector from the pod, which then leaves the
// Deployment's (and its HPA's, PodDisruptionBudget's) view, and the pod keeps serving through
// EndpointSlices of its own for every Service that selected it, until it is evicted.
const (
	// ReleasedLabelAnnotation records the label taken off a released pod, "key=value".
	ReleasedLabelAnnotation = "node-autoscaler.lockstep.dev/released-label"
	// MirrorManagedBy is the endpointslice.kubernetes.io/managed-by of those EndpointSlices.
	MirrorManagedBy = "node-autoscaler.lockstep.dev"
	// MirrorPodLabel on those EndpointSlices names the released pod's UID.
	MirrorPodLabel = "node-autoscaler.lockstep.dev/released-pod"
)

// ReleasePlan is how a pod leaves its workload's view while it keeps serving.
type ReleasePlan struct {
	// Label is the key taken off the pod; empty keeps every label (Why says why).
	Label string
	// Slices are the EndpointSlices that keep the pod in its Services.
	Slices []discoveryv1.EndpointSlice
	Why    string
}

// PlanRelease chooses the label to take off a released pod: a key of the Deployment's selector
// (matchLabels) that no NetworkPolicy selects pods by, so no policy treats the pod otherwise;
// and the EndpointSlices that keep it in each Service whose selector matches it. With no such
// key, or an address no EndpointSlice may hold (none yet, or loopback), the pod keeps its
// labels. Pure.
func PlanRelease(pod *corev1.Pod, deployment *metav1.LabelSelector, services []corev1.Service, policies []networkingv1.NetworkPolicy) ReleasePlan {
	if deployment == nil || len(deployment.MatchLabels) == 0 {
		return ReleasePlan{Why: "the Deployment's selector has no matchLabels to take off"}
	}
	addr, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil || addr.IsLoopback() || addr.IsUnspecified() {
		return ReleasePlan{Why: "the pod's address " + pod.Status.PodIP + " cannot be kept in an EndpointSlice"}
	}
	used := policyKeys(policies)
	var keys []string
	for k, v := range deployment.MatchLabels {
		if !used[k] && pod.Labels[k] == v {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ReleasePlan{Why: "every label of the Deployment's selector is one NetworkPolicies select pods by"}
	}
	sort.Strings(keys)
	plan := ReleasePlan{Label: keys[0]}
	for i := range services {
		if s := mirrorSlice(pod, addr, &services[i]); s != nil {
			plan.Slices = append(plan.Slices, *s)
		}
	}
	return plan
}

// policyKeys are the label keys any NetworkPolicy selects pods by (its own podSelector and its
// rules' peers).
func policyKeys(policies []networkingv1.NetworkPolicy) map[string]bool {
	keys := map[string]bool{}
	add := func(sel *metav1.LabelSelector) {
		if sel == nil {
			return
		}
		for k := range sel.MatchLabels {
			keys[k] = true
		}
		for _, e := range sel.MatchExpressions {
			keys[e.Key] = true
		}
	}
	for i := range policies {
		p := &policies[i].Spec
		add(&p.PodSelector)
		for _, r := range p.Ingress {
			for _, peer := range r.From {
				add(peer.PodSelector)
			}
		}
		for _, r := range p.Egress {
			for _, peer := range r.To {
				add(peer.PodSelector)
			}
		}
	}
	return keys
}

// mirrorSlice is the EndpointSlice that keeps pod in svc, nil when svc does not select it.
func mirrorSlice(pod *corev1.Pod, addr netip.Addr, svc *corev1.Service) *discoveryv1.EndpointSlice {
	if svc.Namespace != pod.Namespace || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		return nil
	}
	addrType := discoveryv1.AddressTypeIPv4
	if addr.Is6() {
		addrType = discoveryv1.AddressTypeIPv6
	}
	var ports []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		if port, ok := containerPort(pod, sp.TargetPort, sp.Port); ok {
			ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(port), Protocol: ptr.To(sp.Protocol), AppProtocol: sp.AppProtocol})
		}
	}
	sum := sha256.Sum256([]byte(svc.Name + "/" + string(pod.UID)))
	name := svc.Name
	if len(name) > 40 {
		name = name[:40]
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-released-" + hex.EncodeToString(sum[:6]), Namespace: pod.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: MirrorManagedBy, MirrorPodLabel: string(pod.UID),
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		AddressType: addrType,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr.String()},
			Conditions: EndpointConditions(pod),
			NodeName:   ptr.To(pod.Spec.NodeName),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}},
		Ports: ports,
	}
}

// EndpointConditions are the pod's endpoint conditions as the EndpointSlice controller writes
// them: ready and serving while the pod is Ready, terminating once it is being deleted.
func EndpointConditions(pod *corev1.Pod) discoveryv1.EndpointConditions {
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	terminating := pod.DeletionTimestamp != nil
	return discoveryv1.EndpointConditions{Ready: ptr.To(ready && !terminating), Serving: ptr.To(ready), Terminating: ptr.To(terminating)}
}

// containerPort resolves a Service's target port on the pod: a number as is (the service port
// when unset), a name through the pod's container ports.
func containerPort(pod *corev1.Pod, target intstr.IntOrString, servicePort int32) (int32, bool) {
	switch {
	case target.Type == intstr.Int && target.IntVal != 0:
		return target.IntVal, true
	case target.Type == intstr.Int:
		return servicePort, true
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == target.StrVal {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}
