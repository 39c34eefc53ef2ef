package test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// Two ingress controller replicas carry half of a Service's traffic each. When one answers its
// scrape with 503 while its pod keeps running, the metric is refused (503) and the HPA holds
// its replicas, rather than scaling down on the other half. Once that pod is deleted, its
// share is no longer expected and the value is the survivor's.
func TestFailedReplicaScrapeHoldsReplicas(t *testing.T) {
	h := setup(t)
	ns := framework.Namespace(t, h.cs)
	ctx := context.Background()
	var exporters [2]*exporter
	for i := range exporters {
		e, err := startExporter()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.stop)
		e.setIngressRate(ns, "split", 15)
		exporters[i] = e
		ingressReplicaPod(t, h.cs, fmt.Sprintf("ingress-replicated-%s-%d", ns, i), e.port())
	}
	createService(t, h.cs, ns, "split")
	if err := createDeployment(ctx, h.cs, loopbackDeployment(ns, "split-gw", 1, nil)); err != nil {
		t.Fatal(err)
	}
	qpsHPA(t, h.cs, ns, "split-gw", "split", 6)
	path := fmt.Sprintf("%s/namespaces/%s/ingress_requests_per_second?labelSelector=service%%3Dsplit", externalV1, ns)
	waitMetric(t, h.cs, path, 30, 1)
	waitReplicas(t, h.cs, ns, "split-gw", 3, 2*time.Minute)

	// Replica 1 is overloaded: its pod runs, its /metrics answers 503.
	exporters[1].failing.Store(true)
	waitUnavailable(t, h.cs, path, "ingress-replicated-"+ns+"-1")
	// The HPA holds at 3 (half the traffic alone would take it to 2).
	keepsReplicas(t, h.cs, ns, "split-gw", 3, 10*time.Second)

	// Its pod is deleted: the value is the survivor's half, and the HPA follows it.
	if err := h.cs.CoreV1().Pods(systemNS).Delete(ctx, "ingress-replicated-"+ns+"-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		v, err := getMetric(ctx, h.cs, path)
		if err != nil {
			return err
		}
		if math.Abs(v-15) > 1 {
			return fmt.Errorf("value %v, want the survivor's 15", v)
		}
		return nil
	})
	waitReplicas(t, h.cs, ns, "split-gw", 2, time.Minute)
}

// ingressReplicaPod creates one kwok "ingress controller" pod (app=ingress-replicated) whose
// metrics port, named metrics, is the exporter's loopback port; it is deleted after the test.
func ingressReplicaPod(t *testing.T, cs kubernetes.Interface, name string, port int) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: systemNS, Name: name,
			Labels:      map[string]string{"app": "ingress-replicated"},
			Annotations: map[string]string{podIPAnno: "127.0.0.1"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "controller", Image: "registry.example/ingress-nginx:1",
			Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(port)}},
		}}},
	}
	if _, err := cs.CoreV1().Pods(systemNS).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(systemNS).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
}
