// Package test runs vpa-inplace against the test bed: a real API server, kube-controller-manager
// (Deployments, HPAs, disruption budgets), scheduler, kwok nodes whose kubelet stage applies
// in-place resizes, and metrics-server serving the pods' usage through metrics.k8s.io.
package test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
	vpainplace "github.com/lockstep-dev/lockstep/vpa-inplace"
	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	framework.Main(m, testbed.Options{
		ControllerManager: true,
		Scheduler:         true,
		Nodes:             2,
		MetricsServer:     true,
		HPASyncPeriod:     time.Second,
	})
}

// ctl is the controller under test, started once per package in this process.
var ctl struct {
	registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan error
}

// testOptions makes the loops fast enough for tests: usage read every 2 s, a one-hour half-life,
// no cooldown on decreases beyond 5 s, checkpoints every 3 s.
func testOptions(reg *prometheus.Registry) vpainplace.Options {
	rc := recommender.DefaultConfig()
	rc.HalfLife = time.Hour
	rc.MemoryAggregationInterval = time.Minute
	rs := resizer.DefaultConfig()
	rs.DownscaleCooldown = 5 * time.Second
	rs.DeferredBackoff = 5 * time.Second
	return vpainplace.Options{
		MetricsAddr: "0", ProbeAddr: "0",
		Recommender: rc, Resizer: rs,
		RecommendInterval: 2 * time.Second, CheckpointInterval: 3 * time.Second, Resync: 5 * time.Second,
		Registry: reg, SkipNameValidation: true,
	}
}

// setup installs the VPA CRDs and starts the controller, once per package.
func setup(t testing.TB) client.Client {
	t.Helper()
	env := framework.Env(t)
	if ctl.cancel == nil {
		installCRDs(t, env)
		start(t)
	}
	return newClient(t)
}

var crdsInstalled bool

// installCRDs installs the generated VPA CRDs, once per package.
func installCRDs(t testing.TB, env *testbed.Env) {
	t.Helper()
	if crdsInstalled {
		return
	}
	crdsInstalled = true
	dir := filepath.Join("..", "..", "config", "crd", "vpa")
	if err := framework.InstallCRDs(context.Background(), env.Config,
		filepath.Join(dir, "autoscaling.k8s.io_verticalpodautoscalers.yaml"),
		filepath.Join(dir, "autoscaling.k8s.io_verticalpodautoscalercheckpoints.yaml")); err != nil {
		t.Fatal(err)
	}
}

func start(t testing.TB) {
	t.Helper()
	ctl.registry = prometheus.NewRegistry()
	mgr, err := vpainplace.New(framework.Env(t).Config, testOptions(ctl.registry))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctl.cancel, ctl.done = cancel, make(chan error, 1)
	go func() { ctl.done <- mgr.Start(ctx) }()
}

// stop stops the controller and waits for it.
func stop(t testing.TB) {
	t.Helper()
	ctl.cancel()
	if err := <-ctl.done; err != nil {
		t.Fatalf("controller: %v", err)
	}
	ctl.cancel = nil
}

func newClient(t testing.TB) client.Client {
	t.Helper()
	s, err := vpainplace.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	// Tests also install admission policies.
	if err := admissionregistrationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(framework.Env(t).Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rl(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

// deployment has replicas pods requesting 100m/128Mi with limits 200m/256Mi, using cpu and
// memory as the kwok usage annotations say.
func deployment(ns, name string, replicas int32, cpu, mem string, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	ann := map[string]string{testbed.UsageCPUAnnotation: cpu, testbed.UsageMemoryAnnotation: mem}
	for k, v := range annotations {
		ann[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: ann},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/shop:1",
					Resources: corev1.ResourceRequirements{Requests: rl("100m", "128Mi"), Limits: rl("200m", "256Mi")},
				}}},
			},
		},
	}
}

func vpaFor(ns, name string, mode vpav1.UpdateMode, mut ...func(*vpav1.VerticalPodAutoscaler)) *vpav1.VerticalPodAutoscaler {
	v := &vpav1.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: vpav1.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			UpdatePolicy: &vpav1.PodUpdatePolicy{UpdateMode: &mode},
			Recommenders: []*vpav1.VerticalPodAutoscalerRecommenderSelector{{Name: vpainplace.DefaultRecommenderName}},
		},
	}
	for _, m := range mut {
		m(v)
	}
	return v
}

func create(t testing.TB, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// runningPods returns the Deployment's running pods.
func runningPods(ctx context.Context, c client.Client, ns, app string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func condition(v *vpav1.VerticalPodAutoscaler, t vpav1.VerticalPodAutoscalerConditionType) *vpav1.VerticalPodAutoscalerCondition {
	for i := range v.Status.Conditions {
		if v.Status.Conditions[i].Type == t {
			return &v.Status.Conditions[i]
		}
	}
	return nil
}

// waitCondition waits until the VPA's condition has the status (and, if not empty, the reason).
func waitCondition(t *testing.T, c client.Client, ns, name string, ct vpav1.VerticalPodAutoscalerConditionType, status corev1.ConditionStatus, timeout time.Duration) *vpav1.VerticalPodAutoscalerCondition {
	t.Helper()
	var got *vpav1.VerticalPodAutoscalerCondition
	framework.Eventually(t, timeout, func(ctx context.Context) error {
		var v vpav1.VerticalPodAutoscaler
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v); err != nil {
			return err
		}
		got = condition(&v, ct)
		if got == nil || got.Status != status {
			return fmt.Errorf("condition %s is %+v, want %s", ct, got, status)
		}
		return nil
	})
	return got
}

// counter reads a counter (with label values, for a vector) from the controller's registry;
// for a histogram, its sample count.
func counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	return counterIn(t, ctl.registry, name, labels)
}

func counterIn(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				total += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func cpuRequest(p *corev1.Pod) int64 {
	q := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
	return q.MilliValue()
}

func statusCPURequest(p *corev1.Pod) int64 {
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].Resources == nil {
		return -1
	}
	q := p.Status.ContainerStatuses[0].Resources.Requests[corev1.ResourceCPU]
	return q.MilliValue()
}
