package testbed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// A resize through the pods/resize subresource is accepted by the API server and reflected in
// the pod's status by the test bed's kwok resize stage, without a restart.
func TestPodResizeReflectedInStatus(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "resizable"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example/app:1",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
		}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "resizable", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Resources == nil {
			return fmt.Errorf("pod phase %s, container statuses %v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		running = p
		return nil
	})
	startedAt := running.Status.ContainerStatuses[0].State.Running.StartedAt

	resized := running.DeepCopy()
	resized.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("300m")
	resized.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("600m")
	updated, err := cs.CoreV1().Pods(ns).UpdateResize(ctx, "resizable", resized, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("resize refused: %v", err)
	}

	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "resizable", metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := p.Status.ContainerStatuses[0]
		if st.Resources == nil {
			return fmt.Errorf("no resources in container status")
		}
		if got := st.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("300m")) != 0 {
			return fmt.Errorf("status cpu request %s, want 300m", got.String())
		}
		if got := st.Resources.Limits[corev1.ResourceCPU]; got.Cmp(resource.MustParse("600m")) != 0 {
			return fmt.Errorf("status cpu limit %s, want 600m", got.String())
		}
		if p.Status.ObservedGeneration != updated.Generation {
			return fmt.Errorf("status observedGeneration %d, want %d", p.Status.ObservedGeneration, updated.Generation)
		}
		if st.RestartCount != 0 || st.State.Running == nil || !st.State.Running.StartedAt.Equal(&startedAt) {
			return fmt.Errorf("container restarted: %+v", st)
		}
		return nil
	})
}
