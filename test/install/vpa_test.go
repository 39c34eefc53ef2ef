package install_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/internal/podresources"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
	vpainplace "github.com/lockstep-dev/lockstep/vpa-inplace"
)

// vpa-inplace resizes a running container through a real kubelet: the demo API on the real
// node is grown by a VPA (the test writes its recommendations), the kubelet applies the resize
// (status resources and observedGeneration), the container's cgroup CPU quota follows, nothing
// restarts; with the node full the kubelet answers Deferred, and applies the resize once room
// frees. It reports the decision → applied latency on the real kubelet.
func TestVPAResizesOnRealKubelet(t *testing.T) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ctx := context.Background()
	ns := framework.Namespace(t, cs)
	installVPACRDs(t, env)
	reg := prometheus.NewRegistry()
	mgr, err := vpainplace.New(env.Config, vpainplace.Options{
		MetricsAddr: "0", ProbeAddr: "0", RecommenderDisabled: true, RecommenderName: "real-kubelet",
		Resync: 2 * time.Second, Registry: reg, SkipNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("vpa-inplace: %v", err)
		}
	})

	d := probeDeployment("resized", 1, "--listen=:8080", "--work=1ms")
	c := &d.Spec.Template.Spec.Containers[0]
	c.Name, c.Image = "api", demoAPIImage
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := waitPod(t, cs, ns, "resized", func(p *corev1.Pod) error { return nil })
	kc, err := client.New(env.Config, client.Options{Scheme: vpaScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	mode := vpav1.UpdateModeInPlace
	vpa := &vpav1.VerticalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "resized"}, Spec: vpav1.VerticalPodAutoscalerSpec{
		TargetRef:      &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "resized"},
		UpdatePolicy:   &vpav1.PodUpdatePolicy{UpdateMode: &mode},
		Recommenders:   []*vpav1.VerticalPodAutoscalerRecommenderSelector{{Name: "real-kubelet"}},
		ResourcePolicy: &vpav1.PodResourcePolicy{ContainerPolicies: []vpav1.ContainerResourcePolicy{{ContainerName: "*", ControlledResources: &[]corev1.ResourceName{corev1.ResourceCPU}}}},
	}}
	if err := kc.Create(ctx, vpa); err != nil {
		t.Fatal(err)
	}

	// Grow to 400m: the kubelet applies it in place.
	decided := time.Now()
	recommendCPU(t, kc, ns, "resized", "400m")
	grown := waitPod(t, cs, ns, "resized", appliedCPU(400))
	seen := time.Since(decided)
	checkInPlace(t, first, grown)
	if q := containerCPUQuota(t, env, grown); q != 40000 {
		t.Errorf("the container's cgroup CPU quota is %d, want 40000 (400m of a 100 ms period)", q)
	}
	applied := histogram(t, reg, "lockstep_vpa_inplace_resize_applied_seconds")
	t.Logf("real kubelet: resize to 400m applied %.3f s after vpa-inplace sent it (its metric), %s after the recommendation was written (seen by polling every 100 ms)",
		applied.GetSampleSum(), seen.Round(time.Millisecond))

	// Fill the node, then grow again: the kubelet defers, and applies once the filler goes.
	node, err := cs.CoreV1().Nodes().Get(ctx, testbed.RealNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	free := node.Status.Allocatable.Cpu().MilliValue() - allocatedOn(t, cs, testbed.RealNodeName)
	if free < 300 {
		t.Fatalf("only %dm of the real node's CPU is free; the test needs 300m", free)
	}
	filler := probeDeployment("filler", 1)
	filler.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(free-100, resource.DecimalSI)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, filler, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, ns, "filler", func(*corev1.Pod) error { return nil })
	recommendCPU(t, kc, ns, "resized", "800m")
	deferred := waitPod(t, cs, ns, "resized", func(p *corev1.Pod) error {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodResizePending && c.Reason == corev1.PodReasonDeferred {
				return nil
			}
		}
		return fmt.Errorf("no Deferred answer yet: %+v", p.Status.Conditions)
	})
	t.Logf("real kubelet, node full: %s", pendingMessage(deferred))
	if q := containerCPUQuota(t, env, deferred); q != 40000 {
		t.Errorf("while deferred the cgroup CPU quota is %d, want 40000 still", q)
	}
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "filler", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	last := waitPod(t, cs, ns, "resized", appliedCPU(800))
	checkInPlace(t, first, last)
	if q := containerCPUQuota(t, env, last); q != 80000 {
		t.Errorf("after the room freed the cgroup CPU quota is %d, want 80000", q)
	}
	applied = histogram(t, reg, "lockstep_vpa_inplace_resize_applied_seconds")
	t.Logf("real kubelet: %d resizes applied, %.3f s in all from sent to applied (the deferred one waited for the filler to go)", applied.GetSampleCount(), applied.GetSampleSum())
}

// installVPACRDs installs the VPA CRDs unless they are there (the chart's uninstall keeps them),
// and removes what it installed afterwards.
func installVPACRDs(t *testing.T, env *testbed.Env) {
	t.Helper()
	ax, err := apiextensionsclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const name = "verticalpodautoscalers.autoscaling.k8s.io"
	if _, err := ax.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{}); err == nil {
		return
	}
	dir := filepath.Join("..", "..", "config", "crd", "vpa")
	files := []string{filepath.Join(dir, "autoscaling.k8s.io_verticalpodautoscalers.yaml"), filepath.Join(dir, "autoscaling.k8s.io_verticalpodautoscalercheckpoints.yaml")}
	if err := framework.InstallCRDs(context.Background(), env.Config, files...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{name, "verticalpodautoscalercheckpoints.autoscaling.k8s.io"} {
			_ = ax.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})
}

func vpaScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s, err := vpainplace.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recommendCPU writes the VPA's CPU target (the test plays the recommender).
func recommendCPU(t *testing.T, c client.Client, ns, name, cpu string) {
	t.Helper()
	rec := vpav1.RecommendedPodResources{ContainerRecommendations: []vpav1.RecommendedContainerResources{{
		ContainerName: "api", Target: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"recommendation": rec}})
	if err != nil {
		t.Fatal(err)
	}
	v := &vpav1.VerticalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Status().Patch(context.Background(), v, client.RawPatch(types.MergePatchType, body)); err != nil {
		t.Fatal(err)
	}
}

// waitPod waits until the Deployment's one pod is Ready and check passes, and returns it.
func waitPod(t *testing.T, cs kubernetes.Interface, ns, app string, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var out *corev1.Pod
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return err
		}
		if len(pods.Items) != 1 || !podReady(&pods.Items[0]) {
			return fmt.Errorf("%d pods of %s, want one Ready", len(pods.Items), app)
		}
		if err := check(&pods.Items[0]); err != nil {
			return err
		}
		out = &pods.Items[0]
		return nil
	})
	return out
}

// appliedCPU checks that the kubelet reports the container at milli CPU (request and limit),
// having observed the pod's generation.
func appliedCPU(milli int64) func(*corev1.Pod) error {
	return func(p *corev1.Pod) error {
		st := p.Status.ContainerStatuses
		if len(st) != 1 || st[0].Resources == nil {
			return fmt.Errorf("no resources reported: %+v", st)
		}
		req, lim := st[0].Resources.Requests[corev1.ResourceCPU], st[0].Resources.Limits[corev1.ResourceCPU]
		if req.MilliValue() != milli || lim.MilliValue() != milli {
			return fmt.Errorf("the kubelet reports %s/%s, want %dm", req.String(), lim.String(), milli)
		}
		if p.Status.ObservedGeneration < p.Generation {
			return fmt.Errorf("status observedGeneration %d behind generation %d", p.Status.ObservedGeneration, p.Generation)
		}
		return nil
	}
}

// checkInPlace: the same pod and container, never restarted.
func checkInPlace(t *testing.T, before, after *corev1.Pod) {
	t.Helper()
	b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
	if before.UID != after.UID || a.ContainerID != b.ContainerID || a.RestartCount != 0 {
		t.Errorf("not in place: pod %s → %s, container %s → %s, restarts %d", before.UID, after.UID, b.ContainerID, a.ContainerID, a.RestartCount)
	}
}

func pendingMessage(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodResizePending {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// allocatedOn sums what the kubelet allocated the node's pods (milli CPU).
func allocatedOn(t *testing.T, cs kubernetes.Interface, node string) int64 {
	t.Helper()
	pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	var milli int64
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			cpu := podresources.Allocated(p)[corev1.ResourceCPU]
			milli += cpu.MilliValue()
		}
	}
	return milli
}

// containerCPUQuota reads the container's cgroup (v1) CPU quota on the real node.
func containerCPUQuota(t *testing.T, env *testbed.Env, p *corev1.Pod) int64 {
	t.Helper()
	id := p.Status.ContainerStatuses[0].ContainerID
	id = id[strings.Index(id, "://")+3:]
	var quota int64 = -2
	root := filepath.Join("/sys/fs/cgroup/cpu", filepath.Base(env.Dir))
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			if data, err := os.ReadFile(filepath.Join(path, "cpu.cfs_quota_us")); err == nil {
				quota, _ = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			}
			return filepath.SkipAll
		}
		return nil
	})
	if quota == -2 {
		t.Fatalf("no cgroup for container %s under %s", id, root)
	}
	return quota
}

// histogram reads a histogram of the registry.
func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}
