package test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/metrics-adapter/scrape"
	"github.com/lockstep-dev/lockstep/test/framework"
)

const (
	customV1beta2 = "/apis/custom.metrics.k8s.io/v1beta2"
	externalV1    = "/apis/external.metrics.k8s.io/v1beta1"
)

// Values read through the aggregator match what the exporter produces: request rate,
// latency quantiles (seconds, and milliseconds under Alibaba's names); unknown metrics and
// objects get a 404 that says what exists.
func TestServedValues(t *testing.T) {
	h := setup(t)
	ns := framework.Namespace(t, h.cs)
	createService(t, h.cs, ns, "checkout")
	h.ingress.setIngressRate(ns, "checkout", 20)

	svc := fmt.Sprintf("%s/namespaces/%s/services/checkout/", customV1beta2, ns)
	waitMetric(t, h.cs, svc+"requests_per_second", 20, 0.05)
	// Half the requests fall in 0.05–0.1 s and half in 0.1–0.25 s.
	waitMetric(t, h.cs, svc+"request_latency_p50_seconds", 0.1, 0.02)
	waitMetric(t, h.cs, svc+"request_latency_p99_seconds", 0.1+0.15*0.98, 0.02)
	waitMetric(t, h.cs, svc+"request_latency_average_seconds", 0.12, 0.02)
	waitMetric(t, h.cs, fmt.Sprintf("%s/namespaces/%s/ingresses.networking.k8s.io/web/requests_per_second", customV1beta2, ns), 20, 0.05)

	route := "sls.ingress.route%3D" + ns + "-checkout-80,sls.project%3Dk8s-log,sls.logstore%3Dnginx-ingress"
	waitMetric(t, h.cs, fmt.Sprintf("%s/namespaces/%s/sls_ingress_qps?labelSelector=%s", externalV1, ns, route), 20, 0.05)
	waitMetric(t, h.cs, fmt.Sprintf("%s/namespaces/%s/sls_ingress_latency_p99?labelSelector=%s", externalV1, ns, route), 247, 0.02)
	waitMetric(t, h.cs, fmt.Sprintf("%s/namespaces/%s/ingress_requests_per_second?labelSelector=service%%3Dcheckout", externalV1, ns), 20, 0.05)

	// With a Prometheus source behind the scraper, the first question about an unknown
	// object is passed on to it (503 "asking Prometheus"); once Prometheus answered "nothing"
	// the adapter says 404 and what exists.
	for path, want := range map[string]string{
		svc + "no_such_metric": "served: requests_per_second",
		fmt.Sprintf("%s/namespaces/%s/services/cart/requests_per_second", customV1beta2, ns):                                 "series exist for checkout",
		fmt.Sprintf("%s/namespaces/%s/sls_ingress_qps?labelSelector=sls.ingress.route%%3D%s-nothing-80", externalV1, ns, ns): "does not name an existing Service",
	} {
		framework.Eventually(t, 15*time.Second, func(ctx context.Context) error {
			_, err := getMetric(ctx, h.cs, path)
			var status apierrors.APIStatus
			if !errors.As(err, &status) || !strings.Contains(status.Status().Message, want) {
				return fmt.Errorf("GET %s: %w; want an error saying %q", path, err, want)
			}
			return nil
		})
	}
}

// (a) An HPA written for Alibaba's adapter (External sls_ingress_qps selected by
// sls.ingress.route) scales a Deployment up with the ingress QPS and back down.
func TestExternalSLSIngressQPS(t *testing.T) {
	h := setup(t)
	ns := framework.Namespace(t, h.cs)
	createService(t, h.cs, ns, "checkout")
	if err := createDeployment(context.Background(), h.cs, loopbackDeployment(ns, "gateway", 1, nil)); err != nil {
		t.Fatal(err)
	}
	h.ingress.setIngressRate(ns, "checkout", 40)
	createHPA(t, h.cs, ns, "gateway", 1, 6, autoscalingv2.MetricSpec{
		Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "sls_ingress_qps", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"sls.ingress.route": ns + "-checkout-80", "sls.project": "k8s-log-c1", "sls.logstore": "nginx-ingress",
			}}},
			Target: averageValue("10"),
		},
	})
	waitReplicas(t, h.cs, ns, "gateway", 4, 2*time.Minute) // 40 QPS / 10 per pod
	h.ingress.setIngressRate(ns, "checkout", 5)
	waitReplicas(t, h.cs, ns, "gateway", 1, 2*time.Minute)
}

// (b) An Object metric on a Service (ingress tier requests per second).
func TestObjectMetricOnService(t *testing.T) {
	h := setup(t)
	scaleOnServiceRequests(t, h, "cart", func(ns string, rate float64) { h.ingress.setIngressRate(ns, "cart", rate) })
}

// scaleOnServiceRequests runs an HPA on the Object metric requests_per_second of Service
// name (target 10 per pod) while setRate drives the source: 30 req/s → 3 replicas, then
// 2 req/s → 1.
func scaleOnServiceRequests(t *testing.T, h *harness, name string, setRate func(ns string, rate float64)) {
	t.Helper()
	ns := framework.Namespace(t, h.cs)
	createService(t, h.cs, ns, name)
	if err := createDeployment(context.Background(), h.cs, loopbackDeployment(ns, name, 1, nil)); err != nil {
		t.Fatal(err)
	}
	setRate(ns, 30)
	createHPA(t, h.cs, ns, name, 1, 6, autoscalingv2.MetricSpec{
		Type: autoscalingv2.ObjectMetricSourceType,
		Object: &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "Service", Name: name},
			Metric:          autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
			Target:          averageValue("10"),
		},
	})
	waitReplicas(t, h.cs, ns, name, 3, 2*time.Minute)
	setRate(ns, 2)
	waitReplicas(t, h.cs, ns, name, 1, 2*time.Minute)
}

// (c) A Pods metric from the application's own OpenTelemetry histogram, per pod.
func TestPodsMetric(t *testing.T) {
	h := setup(t)
	ns := framework.Namespace(t, h.cs)
	// Every pod of the Deployment scrapes the same exporter path, so each reports the same
	// rate: 20 req/s per pod against a target of 10 doubles the replicas until the maximum.
	h.ingress.setAppRate(20)
	d := loopbackDeployment(ns, "orders", 1, map[string]string{
		scrape.AnnotationScrape: "true", scrape.AnnotationPort: fmt.Sprint(h.ingress.port()), scrape.AnnotationPath: "/app",
	})
	if err := createDeployment(context.Background(), h.cs, d); err != nil {
		t.Fatal(err)
	}
	createHPA(t, h.cs, ns, "orders", 1, 4, autoscalingv2.MetricSpec{
		Type: autoscalingv2.PodsMetricSourceType,
		Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
			Target: averageValue("10"),
		},
	})
	waitReplicas(t, h.cs, ns, "orders", 4, 2*time.Minute)
	h.ingress.setAppRate(2)
	waitReplicas(t, h.cs, ns, "orders", 1, 2*time.Minute)
}
