package test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/internal/scaleclient"
	"github.com/lockstep-dev/lockstep/test/framework"
	vpainplace "github.com/lockstep-dev/lockstep/vpa-inplace"
	"github.com/lockstep-dev/lockstep/vpa-inplace/controller"
)

// flakyUsage reads metrics.k8s.io, or fails while failing is set.
type flakyUsage struct {
	c       metricsclient.Interface
	failing atomic.Bool
}

func (f *flakyUsage) List(ctx context.Context) ([]metricsv1beta1.PodMetrics, error) {
	if f.failing.Load() {
		return nil, errors.New("metrics.k8s.io: the server is currently unable to handle the request")
	}
	l, err := f.c.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Missing usage is an error, never a smaller number: while metrics.k8s.io fails, the recommender
// adds no sample, keeps the recommendation it wrote, counts the failure, and reports every pod's
// memory usage as unknown (so the updater lowers no memory limit).
func TestUsageReadFailureKeepsRecommendation(t *testing.T) {
	c := setup(t)
	env := framework.Env(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "dark", 1, "300m", "300Mi", nil), vpaFor(ns, "dark", vpav1.UpdateModeOff, func(v *vpav1.VerticalPodAutoscaler) {
		// Its own recommender name: the package's controller leaves this VPA to the one below.
		v.Spec.Recommenders[0].Name = "failure-test"
	}))
	mc, err := metricsclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	scales, err := scaleclient.New(env.Config, c.RESTMapper())
	if err != nil {
		t.Fatal(err)
	}
	s, err := vpainplace.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	recorder, stopEvents, err := eventrec.New(env.Config, s, "vpa-inplace-test")
	if err != nil {
		t.Fatal(err)
	}
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go stopEvents.Start(evCtx) //nolint:errcheck // returns nil when the test ends
	reg := prometheus.NewRegistry()
	usage := &flakyUsage{c: mc}
	opts := testOptions(reg)
	model := controller.NewModel(opts.Recommender)
	r := &controller.Recommender{
		Client: c, Usage: usage, Targets: &controller.Targets{Client: c, Mapper: c.RESTMapper(), Scales: scales},
		Model: model, Clock: clock.RealClock{}, Recorder: recorder, Metrics: controller.NewMetrics(reg), Log: ctrl.Log,
		Name: "failure-test", Interval: time.Second, CheckpointInterval: time.Hour,
	}
	var before vpav1.VerticalPodAutoscaler
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		if err := r.RunOnce(ctx); err != nil {
			return err
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dark"}, &before); err != nil {
			return err
		}
		if before.Status.Recommendation == nil {
			return fmt.Errorf("no recommendation yet")
		}
		return nil
	})
	pods, err := runningPods(ctx, c, ns, "dark")
	if err != nil || len(pods) != 1 {
		t.Fatalf("pods %d, err %v", len(pods), err)
	}
	if model.Memory(pods[0].UID) == nil {
		t.Fatal("memory usage unknown while metrics.k8s.io answers")
	}
	samples := counterIn(t, reg, "lockstep_vpa_inplace_usage_samples_total", nil)

	usage.failing.Store(true)
	for range 3 {
		if err := r.RunOnce(ctx); err != nil {
			t.Fatalf("a failed usage read failed the pass: %v", err)
		}
	}
	if n := counterIn(t, reg, "lockstep_vpa_inplace_usage_errors_total", nil); n != 3 {
		t.Errorf("usage_errors_total %v, want 3", n)
	}
	if n := counterIn(t, reg, "lockstep_vpa_inplace_usage_samples_total", nil); n != samples {
		t.Errorf("samples added while metrics.k8s.io failed: %v → %v", samples, n)
	}
	if m := model.Memory(pods[0].UID); m != nil {
		t.Errorf("memory usage %v kept after a failed read, want unknown", m)
	}
	var after vpav1.VerticalPodAutoscaler
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dark"}, &after); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(before.Status.Recommendation, after.Status.Recommendation) {
		t.Errorf("recommendation changed while usage was missing: %+v → %+v", before.Status.Recommendation, after.Status.Recommendation)
	}
	if cond := condition(&after, vpav1.RecommendationProvided); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Errorf("RecommendationProvided %+v after failed reads", cond)
	}
}
