package testbed

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// KwokNode returns a Node object that the test bed's kwok will manage, with the given capacity
// (defaultNodeCapacity when nil). Callers may add labels and taints before creating it.
func KwokNode(name string, capacity corev1.ResourceList) *corev1.Node {
	if capacity == nil {
		capacity = defaultNodeCapacity()
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				kwokNodeAnnotation: "fake",
				// Where metrics-server finds the node's emulated kubelet resource metrics.
				resourceMetricsPathAnnotation: nodeMetricsPath(name),
			},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity.DeepCopy(), Allocatable: capacity.DeepCopy()},
	}
}

// AddNodes creates count kwok nodes named <prefix><index> and waits until all are Ready.
func (e *Env) AddNodes(ctx context.Context, prefix string, count int, capacity corev1.ResourceList) error {
	cs, err := e.Clientset()
	if err != nil {
		return err
	}
	names := make([]string, 0, count)
	for i := range count {
		node := KwokNode(prefix+strconv.Itoa(i), capacity)
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", node.Name, err)
		}
		names = append(names, node.Name)
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // retried until the deadline.
			}
			if !NodeReady(node) {
				return false, nil
			}
		}
		return true, nil
	})
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeMetricsPath(name string) string {
	_, path := NodeMetricsAnnotation(name)
	return path
}
