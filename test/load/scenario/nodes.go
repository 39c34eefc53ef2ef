package scenario

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Nodes gives each side a node pool of its own, launched by node-autoscaler (Karpenter's kwok
// provider) for pending pods, so that each side pays for its own nodes, and each Lockstep side a
// serverless virtual node to spill onto while its nodes boot. The baseline's pods never spill.
type Nodes struct {
	// BootDelay is how long a launched node takes to register and become Ready.
	BootDelay time.Duration
	// InstanceType is a kwok provider instance type (e.g. c-8x-amd64-linux).
	InstanceType string
}

// SideLabel carries a side's name on its nodes; its pods select their side's nodes by it.
const SideLabel = "load.lockstep.dev/side"

// VirtualNodePrefix names a Lockstep side's serverless virtual node (the side's name follows).
// It shows itself as ACK's virtual-kubelet does (label and taint), carries the side's label so
// that the side's pods may spill onto it, and kwok runs it.
const VirtualNodePrefix = "virtual-kubelet-"

// spillAnnotation opts a pod out of node-autoscaler's spill.
const spillAnnotation = "node-autoscaler.lockstep.dev/spill"

// nodeObjects are, for every side, its KWOKNodeClass and NodePool, and for a Lockstep side its
// virtual node.
func nodeObjects(n Nodes, sides []Side) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, s := range sides {
		out = append(out,
			&unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
				"metadata": map[string]any{"name": s.Name},
				"spec":     map[string]any{"nodeRegistrationDelay": n.BootDelay.String()},
			}},
			&unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
				"metadata": map[string]any{"name": s.Name},
				"spec": map[string]any{
					"template": map[string]any{
						"metadata": map[string]any{"labels": map[string]any{SideLabel: s.Name}},
						"spec": map[string]any{
							"nodeClassRef": map[string]any{"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": s.Name},
							"requirements": []any{
								map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"on-demand"}},
								map[string]any{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": []any{n.InstanceType}},
							},
							"expireAfter": "Never",
						},
					},
					"disruption": map[string]any{"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "2m"},
				},
			}})
		if s.Policy == sales.Lockstep {
			out = append(out, virtualNode(s.Name))
		}
	}
	return out
}

// virtualNode is side's serverless virtual node.
func virtualNode(side string) *unstructured.Unstructured {
	name := VirtualNodePrefix + side
	metricsKey, metricsPath := testbed.NodeMetricsAnnotation(name)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{
			"name":        name,
			"annotations": map[string]any{"kwok.x-k8s.io/node": "fake", metricsKey: metricsPath},
			"labels":      map[string]any{"type": "virtual-kubelet", "kubernetes.io/hostname": name, SideLabel: side},
		},
		"spec": map[string]any{"taints": []any{map[string]any{"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}}},
		"status": map[string]any{
			"capacity":    map[string]any{"cpu": "1000", "memory": "4Ti", "pods": "5000"},
			"allocatable": map[string]any{"cpu": "1000", "memory": "4Ti", "pods": "5000"},
		},
	}}
}

// placeOnSide puts a Deployment's pods on its side's nodes, and opts the baseline's pods out of
// spill; other objects are left as they are.
func placeOnSide(o *unstructured.Unstructured, s Side) error {
	if o.GetKind() != "Deployment" {
		return nil
	}
	if err := unstructured.SetNestedStringMap(o.Object, map[string]string{SideLabel: s.Name}, "spec", "template", "spec", "nodeSelector"); err != nil {
		return fmt.Errorf("deployment %s: %w", o.GetName(), err)
	}
	if s.Policy == sales.Lockstep {
		return nil
	}
	annotations, _, err := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
	if err != nil {
		return fmt.Errorf("deployment %s: %w", o.GetName(), err)
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[spillAnnotation] = "false"
	if err := unstructured.SetNestedStringMap(o.Object, annotations, "spec", "template", "metadata", "annotations"); err != nil {
		return fmt.Errorf("deployment %s: %w", o.GetName(), err)
	}
	return nil
}

// sideNodes are the nodes of side's pool and its virtual node.
func sideNodes(nodes []corev1.Node, side string) []corev1.Node {
	var out []corev1.Node
	for _, n := range nodes {
		if n.Labels[SideLabel] == side {
			out = append(out, n)
		}
	}
	return out
}

// measureNodes points metrics-server at the emulated resource metrics of each kwok node of
// nodes that does not say where they are (Karpenter's kwok provider creates nodes without it),
// so that CPU-utilisation HPAs see the pods that run there. It patches only that annotation.
func measureNodes(ctx context.Context, cs kubernetes.Interface, nodes []corev1.Node) error {
	for _, n := range nodes {
		key, path := testbed.NodeMetricsAnnotation(n.Name)
		if n.Annotations["kwok.x-k8s.io/node"] != "fake" || n.Annotations[key] != "" {
			continue
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, path)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pointing metrics-server at node %s: %w", n.Name, err)
		}
	}
	return nil
}
