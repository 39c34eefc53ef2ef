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
// `until`: the pod's requests, node selector, node affinity and tolerations (without the virtual
// node's), the hold PriorityClass, and karpenter.sh/do-not-disrupt for the hold's length so the
// node it lands on is not consolidated while the spilled pod waits to move back. The spilled pod
// owns it: deleting the pod deletes the hold.
func Placeholder(pod *corev1.Pod, cfg Config, now time.Time) *corev1.Pod {
	virtual := cfg.toleration()
	var tolerations []corev1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.MatchToleration(&virtual) {
			continue
		}
		tolerations = append(tolerations, t)
	}
	var affinity *corev1.Affinity
	if pod.Spec.Affinity != nil && pod.Spec.Affinity.NodeAffinity != nil {
		affinity = &corev1.Affinity{NodeAffinity: pod.Spec.Affinity.NodeAffinity.DeepCopy()}
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{ExcludeOverhead: true})
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      HoldName(pod.Name),
			Namespace: pod.Namespace,
			Labels:    map[string]string{HoldForLabel: string(pod.UID)},
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
				Name:      "hold",
				Image:     cfg.HoldImage,
				Resources: corev1.ResourceRequirements{Requests: requests},
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
			Tolerations:                   tolerations,
			PriorityClassName:             cfg.HoldPriorityClass,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
		},
	}
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
