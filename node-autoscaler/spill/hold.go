package spill

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// HoldName is the name of the placeholder that holds room for the spilled pod named podName.
func HoldName(podName string) string {
	const prefix = "hold-"
	if len(prefix)+len(podName) <= 253 {
		return prefix + podName
	}
	sum := sha256.Sum256([]byte(podName))
	return prefix + podName[:253-len(prefix)-17] + "-" + hex.EncodeToString(sum[:8])
}

// Placeholder is the low-priority pod that holds room on real capacity for a spilled pod until
// `until`: the pod's twin for placement — its requests, node selector, node and pod
// (anti-)affinity, topology spread constraints (twinPlacement), tolerations (without the virtual
// node's), host ports, scheduler and runtime class — with the hold PriorityClass, and
// karpenter.sh/do-not-disrupt for the hold's length so the node it lands on is not consolidated
// while the spilled pod waits to move back. Its priority is the lowest on purpose: any pod, the
// replacement first, preempts it, so it is never placed where the replacement could not go.
// Volumes are not copied (a claim bound to one zone is not expressed). The spilled pod owns it:
// deleting the pod deletes the hold.
func Placeholder(pod *corev1.Pod, cfg Config, now time.Time) *corev1.Pod {
	virtual := cfg.toleration()
	var tolerations []corev1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.MatchToleration(&virtual) {
			continue
		}
		tolerations = append(tolerations, t)
	}
	group := holdGroup(pod)
	affinity, spread := twinPlacement(pod, group)
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{ExcludeOverhead: true})
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      HoldName(pod.Name),
			Namespace: pod.Namespace,
			Labels:    map[string]string{HoldForLabel: string(pod.UID), HoldGroupLabel: group},
			Annotations: map[string]string{
				HoldUntilAnnotation:              now.Add(cfg.HoldDuration).UTC().Format(time.RFC3339),
				karpv1.DoNotDisruptAnnotationKey: cfg.HoldDuration.String(),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
			}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "hold",
				Image:           cfg.HoldImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Resources:       corev1.ResourceRequirements{Requests: requests},
				Ports:           hostPorts(pod),
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					RunAsNonRoot:             ptr.To(true),
					RunAsUser:                ptr.To[int64](65535),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
			}},
			NodeSelector:                  pod.Spec.NodeSelector,
			Affinity:                      affinity,
			TopologySpreadConstraints:     spread,
			SchedulerName:                 pod.Spec.SchedulerName,
			ImagePullSecrets:              pod.Spec.ImagePullSecrets,
			RuntimeClassName:              pod.Spec.RuntimeClassName,
			Tolerations:                   tolerations,
			PriorityClassName:             cfg.HoldPriorityClass,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
		},
	}
}

// hostPorts are the pod's containers' host ports: a node can take the replacement only where
// they are free, so the placeholder declares them too.
func hostPorts(pod *corev1.Pod) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	seen := map[corev1.ContainerPort]bool{}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, p := range c.Ports {
			// One container holds them all: no names (they could clash), each port once.
			port := corev1.ContainerPort{ContainerPort: p.HostPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: p.Protocol}
			if p.HostPort != 0 && !seen[port] {
				seen[port] = true
				out = append(out, port)
			}
		}
	}
	return out
}

// HoldPriorityClass is the placeholders' PriorityClass: below every workload, never preempting.
func HoldPriorityClass(cfg Config) *schedulingv1.PriorityClass {
	return &schedulingv1.PriorityClass{
		ObjectMeta:       metav1.ObjectMeta{Name: cfg.HoldPriorityClass, Labels: map[string]string{"app.kubernetes.io/managed-by": "lockstep"}},
		Value:            cfg.HoldPriority,
		PreemptionPolicy: ptr.To(corev1.PreemptNever),
		Description:      "Lockstep node-autoscaler placeholders that hold room on real nodes for pods spilled to serverless capacity; any workload preempts them.",
	}
}
