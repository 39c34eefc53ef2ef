package testbed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
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

// A resize of a pod annotated testbed.lockstep.dev/resize=Deferred is reported pending with
// reason Deferred and not applied; removing the annotation lets the kubelet stage apply it and
// clear the condition.
func TestPodResizePendingStage(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "deferred", Annotations: map[string]string{"testbed.lockstep.dev/resize": "Deferred"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
		}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "deferred", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Resources == nil {
			return fmt.Errorf("pod phase %s", p.Status.Phase)
		}
		running = p
		return nil
	})
	resized := running.DeepCopy()
	resized.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("300m")
	if _, err := cs.CoreV1().Pods(ns).UpdateResize(ctx, "deferred", resized, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("resize refused: %v", err)
	}
	pendingReason := func(p *corev1.Pod) string {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodResizePending && c.Status == corev1.ConditionTrue {
				return c.Reason
			}
		}
		return ""
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "deferred", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if r := pendingReason(p); r != corev1.PodReasonDeferred {
			return fmt.Errorf("PodResizePending reason %q, want Deferred", r)
		}
		if got := p.Status.ContainerStatuses[0].Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("100m")) != 0 {
			return fmt.Errorf("status cpu %s changed while deferred", got.String())
		}
		return nil
	})
	patch := []byte(`{"metadata":{"annotations":{"testbed.lockstep.dev/resize":null}}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "deferred", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "deferred", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return appliedAndReady(p, pendingReason(p))
	})
}

// appliedAndReady checks that the deferred resize to 300m was applied, the pending condition
// cleared and the Ready condition kept.
func appliedAndReady(p *corev1.Pod, pending string) error {
	if pending != "" {
		return fmt.Errorf("still pending: %s", pending)
	}
	if got := p.Status.ContainerStatuses[0].Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("300m")) != 0 {
		return fmt.Errorf("status cpu %s, want 300m", got.String())
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("the Ready condition was lost: %v", p.Status.Conditions)
}

// A pod's usage annotations flow through kwok's emulated kubelet endpoint and metrics-server to
// metrics.k8s.io, and a changed annotation shows there.
func TestPodUsageThroughMetricsAPI(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	mc, err := metricsclient.NewForConfig(framework.Env(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Annotations: map[string]string{
			testbed.UsageCPUAnnotation: "250m", testbed.UsageMemoryAnnotation: "300Mi",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	usage := func(wantCPU, wantMem string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			m, err := mc.MetricsV1beta1().PodMetricses(ns).Get(ctx, "busy", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(m.Containers) != 1 {
				return fmt.Errorf("containers %v", m.Containers)
			}
			cpu, mem := m.Containers[0].Usage[corev1.ResourceCPU], m.Containers[0].Usage[corev1.ResourceMemory]
			// CPU is a rate over the scrape window: allow 10 %.
			want := resource.MustParse(wantCPU)
			if d := cpu.MilliValue() - want.MilliValue(); d*10 > want.MilliValue() || -d*10 > want.MilliValue() {
				return fmt.Errorf("cpu %s, want about %s", cpu.String(), wantCPU)
			}
			if mem.Cmp(resource.MustParse(wantMem)) != 0 {
				return fmt.Errorf("memory %s, want %s", mem.String(), wantMem)
			}
			return nil
		}
	}
	framework.Eventually(t, 90*time.Second, usage("250m", "300Mi"))
	patch := []byte(`{"metadata":{"annotations":{"` + testbed.UsageCPUAnnotation + `":"1","` + testbed.UsageMemoryAnnotation + `":"1Gi"}}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "busy", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 90*time.Second, usage("1", "1Gi"))
}
