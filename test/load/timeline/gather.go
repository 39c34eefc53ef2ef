package timeline

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Gather reads what Observe needs of namespace: its Deployments, HPAs and pods, with nodes,
// which the caller lists once for every namespace it samples. Backed is left for the caller,
// who knows which pods answer.
func Gather(ctx context.Context, cs kubernetes.Interface, namespace string, nodes []corev1.Node) (Cluster, error) {
	var c Cluster
	deploys, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return c, fmt.Errorf("listing deployments: %w", err)
	}
	hpas, err := cs.AutoscalingV2().HorizontalPodAutoscalers(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return c, fmt.Errorf("listing HPAs: %w", err)
	}
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return c, fmt.Errorf("listing pods: %w", err)
	}
	c.Deployments, c.HPAs, c.Pods, c.Nodes = deploys.Items, hpas.Items, pods.Items, nodes
	return c, nil
}
