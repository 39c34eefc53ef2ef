package test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// Two adapter replicas serve behind one APIService, both answering (no leader). One is
// stopped, as a rolling update or a node drain does: a reader asking through the aggregator
// every 50 ms gets a value every time, and an HPA keeps scaling on the metric.
func TestOneOfTwoReplicasStops(t *testing.T) {
	h := setup(t)
	if len(h.adapters) != 2 || h.adapters[0].Exited() || h.adapters[1].Exited() {
		t.Fatal("the package's two adapter replicas are not both running")
	}
	ns := framework.Namespace(t, h.cs)
	ctx := context.Background()
	createService(t, h.cs, ns, "steady")
	h.ingress.setIngressRate(ns, "steady", 40)
	if err := createDeployment(ctx, h.cs, loopbackDeployment(ns, "steady-gw", 1, nil)); err != nil {
		t.Fatal(err)
	}
	qpsHPA(t, h.cs, ns, "steady-gw", "steady", 8)
	path := fmt.Sprintf("%s/namespaces/%s/ingress_requests_per_second?labelSelector=service%%3Dsteady", externalV1, ns)
	waitMetric(t, h.cs, path, 40, 1)
	waitReplicas(t, h.cs, ns, "steady-gw", 4, time.Minute)

	// Read through the aggregator while one replica goes away.
	readCtx, stopReading := context.WithCancel(ctx)
	var reads, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for readCtx.Err() == nil {
			if _, err := getMetric(readCtx, h.cs, path); err != nil && readCtx.Err() == nil {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
			reads.Add(1)
			time.Sleep(50 * time.Millisecond) // the reader's pace, not a wait for a condition
		}
	})
	time.Sleep(2 * time.Second) // reads spread over both replicas before the stop
	if err := h.adapters[1].Stop(); err != nil {
		t.Fatal(err)
	}
	// After the stop, traffic rises: the HPA follows it on the surviving replica's answers.
	h.ingress.setIngressRate(ns, "steady", 60)
	waitReplicas(t, h.cs, ns, "steady-gw", 6, time.Minute)
	stopReading()
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d reads failed while a replica stopped; first: %v", failures.Load(), reads.Load(), firstFailure.Load())
	}
	hpa, err := h.cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "steady-gw", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range hpa.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive && c.Status != corev1.ConditionTrue {
			t.Fatalf("HPA ScalingActive %s: %s", c.Status, c.Message)
		}
	}
	t.Logf("%d reads through the aggregator while one of two replicas stopped, none failed", reads.Load())
}
