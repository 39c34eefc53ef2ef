package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/framework"
)

func createService(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createHPA scales deployment target between min and max on one metric, reacting at once in
// both directions (no stabilization window), so tests see decisions within seconds.
func createHPA(t *testing.T, cs kubernetes.Interface, ns, target string, minReplicas, maxReplicas int32, metric autoscalingv2.MetricSpec) {
	t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: target},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    &minReplicas,
			MaxReplicas:    maxReplicas,
			Metrics:        []autoscalingv2.MetricSpec{metric},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)},
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)},
			},
		},
	}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func averageValue(v string) autoscalingv2.MetricTarget {
	return autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse(v))}
}

// waitReplicas waits until the Deployment's spec.replicas is want.
func waitReplicas(t *testing.T, cs kubernetes.Interface, ns, name string, want int32, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, timeout, replicasAre(cs, ns, name, want))
}

// keepsReplicas checks that the deployment stays at want replicas for the whole period.
func keepsReplicas(t *testing.T, cs kubernetes.Interface, ns, name string, want int32, period time.Duration) {
	t.Helper()
	framework.Consistently(t, period, replicasAre(cs, ns, name, want))
}

func replicasAre(cs kubernetes.Interface, ns, name string, want int32) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := ptr.Deref(d.Spec.Replicas, 1); got != want {
			return fmt.Errorf("deployment %s has %d replicas, want %d", name, got, want)
		}
		return nil
	}
}

// metricValue is what the custom and external metrics APIs return, reduced to the values.
type metricValue struct {
	Items []struct {
		Value resource.Quantity `json:"value"`
	} `json:"items"`
	Value *resource.Quantity `json:"value"`
}

// getMetric reads a metrics API path through the aggregator and returns its first value.
func getMetric(ctx context.Context, cs kubernetes.Interface, path string) (float64, error) {
	u, err := url.Parse(path)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	req := cs.CoreV1().RESTClient().Get().AbsPath(u.Path)
	for k, vs := range u.Query() {
		for _, v := range vs {
			req = req.Param(k, v)
		}
	}
	body, err := req.DoRaw(ctx)
	if err != nil {
		// The raw client leaves the Status in the body; surface its message.
		var status metav1.Status
		if json.Unmarshal(body, &status) == nil && status.Message != "" {
			return 0, &apierrors.StatusError{ErrStatus: status}
		}
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	var v metricValue
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", body, err)
	}
	switch {
	case v.Value != nil:
		return v.Value.AsApproximateFloat64(), nil
	case len(v.Items) > 0:
		return v.Items[0].Value.AsApproximateFloat64(), nil
	}
	return 0, fmt.Errorf("no value in %s", body)
}

// waitMetric waits until path answers within tolerance (relative) of want.
func waitMetric(t *testing.T, cs kubernetes.Interface, path string, want, tolerance float64) {
	t.Helper()
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		got, err := getMetric(ctx, cs, path)
		if err != nil {
			return err
		}
		if math.Abs(got-want) > tolerance*want {
			return fmt.Errorf("%s = %v, want %v ± %.0f%%", path, got, want, tolerance*100)
		}
		return nil
	})
}

// waitUnavailable waits until path answers 503 (never a value) with a message containing
// mention.
func waitUnavailable(t *testing.T, cs kubernetes.Interface, path, mention string) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		v, err := getMetric(ctx, cs, path)
		var status apierrors.APIStatus
		if err == nil {
			return fmt.Errorf("still served: %v", v)
		}
		if !errors.As(err, &status) || status.Status().Code != http.StatusServiceUnavailable {
			return fmt.Errorf("want 503, got %w", err)
		}
		if !strings.Contains(err.Error(), mention) {
			return fmt.Errorf("the error does not say %q: %w", mention, err)
		}
		return nil
	})
}

// qpsHPA creates an HPA on target scaling on ingress_requests_per_second of service, 10 per pod.
func qpsHPA(t *testing.T, cs kubernetes.Interface, ns, target, service string, maxReplicas int32) {
	t.Helper()
	createHPA(t, cs, ns, target, 1, maxReplicas, autoscalingv2.MetricSpec{
		Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "ingress_requests_per_second", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"service": service}}},
			Target: averageValue("10"),
		},
	})
}
