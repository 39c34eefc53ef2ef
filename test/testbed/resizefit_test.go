package testbed_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func cpuMem(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

// The bed answers a resize as a kubelet does: Deferred while the node's other pods hold the
// room, and applied once one goes.
func TestResizeDeferredUntilRoom(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	node := testbed.KwokNode("resize-tight", cpuMem("2", "4Gi"))
	node.Spec.Taints = []corev1.Taint{{Key: "resize-tight", Effect: corev1.TaintEffectNoSchedule}} // keeps other tests' pods off
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	for name, cpu := range map[string]string{"big": "1500m", "small": "250m"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node.Name,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", Resources: corev1.ResourceRequirements{Requests: cpuMem(cpu, "256Mi")}}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	running := waitReported(t, ns, "small")
	resize := func(cpu string) error {
		t.Helper()
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "small", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		_, err = cs.CoreV1().Pods(ns).UpdateResize(ctx, "small", p, metav1.UpdateOptions{})
		return err
	}
	waitReported(t, ns, "big")
	if err := resize("1"); err != nil {
		t.Fatalf("resize to 1 core refused: %v", err)
	}
	framework.Eventually(t, 30*time.Second, pendingWith(t, ns, "small", corev1.PodReasonDeferred, "cpu, requested: 1000, used: 1500, capacity: 2000", "250m"))
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "big", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, pendingWith(t, ns, "small", "", "", "1"))
	// Beyond the node's allocatable the API server itself refuses the resize (1.37), before
	// any kubelet sees it; the bed's Infeasible answer covers what it does not check.
	if err := resize("3"); err == nil || !strings.Contains(err.Error(), "node didn't have enough allocatable resources") {
		t.Fatalf("resize beyond the node's allocatable: %v, want the API server's refusal", err)
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, "small", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status.ContainerStatuses[0]; st.RestartCount != 0 || st.ContainerID != running.Status.ContainerStatuses[0].ContainerID {
		t.Errorf("container restarted during the resizes: %+v", st)
	}
}

// waitReported waits until the pod runs and its container reports resources.
func waitReported(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	cs := framework.Clientset(t)
	var out *corev1.Pod
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Resources == nil {
			return fmt.Errorf("pod %s: phase %s, statuses %v", name, p.Status.Phase, p.Status.ContainerStatuses)
		}
		out = p
		return nil
	})
	return out
}

// pendingWith checks the pod's PodResizePending reason ("" for none), that its message holds
// message, and the CPU request its container reports.
func pendingWith(t *testing.T, ns, name, reason, message, statusCPU string) func(context.Context) error {
	cs := framework.Clientset(t)
	return func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		gotReason, gotMessage := "", ""
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodResizePending && c.Status == corev1.ConditionTrue {
				gotReason, gotMessage = c.Reason, c.Message
			}
		}
		if gotReason != reason || !strings.Contains(gotMessage, message) {
			return fmt.Errorf("PodResizePending %q %q, want %q containing %q", gotReason, gotMessage, reason, message)
		}
		if got := p.Status.ContainerStatuses[0].Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse(statusCPU)) != 0 {
			return fmt.Errorf("status cpu %s, want %s", got.String(), statusCPU)
		}
		return nil
	}
}
