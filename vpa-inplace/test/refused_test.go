package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// refuseResizeOf installs a ValidatingAdmissionPolicy that refuses pods/resize for the pods of
// app in ns (as a policy or quota would in a real cluster) and returns once it is enforced.
func refuseResizeOf(t *testing.T, c client.Client, ns, app string) {
	t.Helper()
	name := "refuse-resize-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/resize"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf("!has(object.metadata.labels) || !('app' in object.metadata.labels) || object.metadata.labels['app'] != '%s'", app),
				Message:    "resizing these pods is not allowed here",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), binding)
		_ = c.Delete(context.Background(), policy)
	})
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, app)
		if err != nil || len(pods) == 0 {
			return fmt.Errorf("no running pod of %s (err %w)", app, err)
		}
		patch := []byte(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"150m"}}}]}}`)
		err = c.SubResource("resize").Patch(ctx, &pods[0], client.RawPatch(types.StrategicMergePatchType, patch), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "not allowed") {
			return fmt.Errorf("the policy is not enforced yet (%w)", err)
		}
		return nil
	})
}

// A resize the API server refuses is counted, reported on the pod, and retried on its own
// backoff, while a sibling workload in the same namespace is resized at once.
func TestRefusedResizeBesideSibling(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	create(t, c, deployment(ns, "refused", 1, "400m", "200Mi", nil), deployment(ns, "fine", 1, "400m", "200Mi", nil))
	refuseResizeOf(t, c, ns, "refused")
	failed := counter(t, "lockstep_vpa_inplace_resizes_total", map[string]string{"outcome": "failed"})
	create(t, c, vpaFor(ns, "refused", vpav1.UpdateModeInPlace), vpaFor(ns, "fine", vpav1.UpdateModeInPlace))

	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, err := runningPods(ctx, c, ns, "fine")
		if err != nil || len(pods) != 1 {
			return fmt.Errorf("pods %d, err %w", len(pods), err)
		}
		return resizedTo400m(&pods[0])
	})
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		// Refused, then retried: at least two failed attempts.
		if n := counter(t, "lockstep_vpa_inplace_resizes_total", map[string]string{"outcome": "failed"}); n < failed+2 {
			return fmt.Errorf("resizes_total{failed} %v, want at least %v", n, failed+2)
		}
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "ResizeFailed" && e.InvolvedObject.Kind == "Pod" && strings.Contains(e.Message, "not allowed") {
				return nil
			}
		}
		return fmt.Errorf("no ResizeFailed event on the refused pod")
	})
	pods, err := runningPods(ctx, c, ns, "refused")
	if err != nil || len(pods) != 1 {
		t.Fatalf("pods %d, err %v", len(pods), err)
	}
	if got := cpuRequest(&pods[0]); got != 100 {
		t.Errorf("refused pod's cpu request %dm, want 100m unchanged", got)
	}
}
