package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// (d) When the exporter goes away the API answers with an error — not zero — so the HPA
// reports the failure and keeps its replicas instead of scaling down.
func TestExporterGoneHoldsReplicas(t *testing.T) {
	h := setup(t)
	ns := framework.Namespace(t, h.cs)
	createService(t, h.cs, ns, "legacy")
	if err := createDeployment(context.Background(), h.cs, loopbackDeployment(ns, "legacy-gw", 1, nil)); err != nil {
		t.Fatal(err)
	}
	h.legacy.setIngressRate(ns, "legacy", 30)
	qpsHPA(t, h.cs, ns, "legacy-gw", "legacy", 6)
	waitReplicas(t, h.cs, ns, "legacy-gw", 3, 2*time.Minute)

	h.legacy.stop()
	path := fmt.Sprintf("%s/namespaces/%s/ingress_requests_per_second?labelSelector=service%%3Dlegacy", externalV1, ns)
	waitUnavailable(t, h.cs, path, "")
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		hpa, err := h.cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "legacy-gw", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range hpa.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse && c.Reason == "FailedGetExternalMetric" {
				return nil
			}
		}
		return fmt.Errorf("HPA conditions %v: want ScalingActive=False FailedGetExternalMetric", hpa.Status.Conditions)
	})
	// For ten HPA sync periods the replicas stay at 3.
	keepsReplicas(t, h.cs, ns, "legacy-gw", 3, 10*time.Second)
}
