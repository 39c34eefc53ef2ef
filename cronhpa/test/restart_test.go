package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// Scheduled times that pass while the controller is down run once after it comes back if
// they are within the starting deadline, and are recorded as Missed (without scaling) if not.
func TestRestartCatchUp(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	deployment(t, c, ns, "inside", 1)
	deployment(t, c, ns, "outside", 1)

	stopController(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			startController(t)
		}
	})
	inside := cronHPA(ns, "inside", "inside", v1beta1.Job{Name: "sale", Schedule: dateIn(2 * time.Second), TargetSize: 6})
	outside := cronHPA(ns, "outside", "outside", v1beta1.Job{Name: "sale", Schedule: dateIn(2 * time.Second), TargetSize: 6})
	outside.Spec.StartingDeadlineSeconds = ptr.To[int64](2)
	// The webhook is down with the controller; create both without it, as after an outage.
	withoutWebhook(t, c, func() {
		for _, o := range []*v1beta1.CronHorizontalPodAutoscaler{inside, outside} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	})
	time.Sleep(6 * time.Second) // both dates pass while nothing runs.
	startController(t)
	restarted = true

	waitReplicas(t, c, ns, "inside", 6, 15*time.Second)
	jobRecord(t, c, ns, "inside", "sale", 5*time.Second, succeeded)
	missed := jobRecord(t, c, ns, "outside", "sale", 15*time.Second, func(r v1beta1.Condition) bool { return r.State == v1beta1.Missed })
	if missed.LastScheduleTime == nil || !strings.Contains(missed.Message, "missed") {
		t.Fatalf("missed record: %+v", missed)
	}
	waitReplicas(t, c, ns, "outside", 1, time.Second)

	// A second restart must not run the handled time again.
	setReplicas(t, c, ns, "inside", 2)
	stopController(t)
	startController(t)
	keepsReplicas(t, c, ns, "inside", 2, 3*time.Second)
}

// withoutWebhook removes the webhook configuration while fn runs, then restores it.
func withoutWebhook(t *testing.T, c client.Client, fn func()) {
	t.Helper()
	ctx := context.Background()
	var cfg = webhookConfig(t, c)
	if err := c.Delete(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cfg.ResourceVersion = ""
		if err := c.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}()
	// The API server drops the webhook from its informer a moment after the delete: wait
	// until a dry-run create (which runs admission webhooks) no longer calls it.
	probe := cronHPA("default", "webhook-probe", "none", v1beta1.Job{Name: "j", Schedule: "@daily", TargetSize: 1})
	framework.Eventually(t, 10*time.Second, func(ctx context.Context) error {
		return c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
	})
	fn()
}

// An invalid object that got in while the webhook was down gets Ready=False and an event,
// scales nothing, and does not disturb a valid object beside it.
func TestBrokenObjectNextToGoodOne(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	deployment(t, c, ns, "good", 1)
	deployment(t, c, ns, "bad", 1)
	bad := cronHPA(ns, "bad", "bad", v1beta1.Job{Name: "up", Schedule: "*/2 * * * * *", TargetSize: 4})
	bad.Spec.TimeZone = ptr.To("Mars/Olympus")
	withoutWebhook(t, c, func() {
		if err := c.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
	})
	if err := c.Create(ctx, cronHPA(ns, "good", "good", v1beta1.Job{Name: "up", Schedule: dateIn(2 * time.Second), TargetSize: 4})); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 15*time.Second, func(ctx context.Context) error {
		var obj v1beta1.CronHorizontalPodAutoscaler
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bad"}, &obj); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(obj.Status.ObjectConditions, v1beta1.ConditionReady)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1beta1.ReasonInvalidSpec || !strings.Contains(cond.Message, "Mars/Olympus") {
			return fmt.Errorf("bad object conditions: %+v", obj.Status.ObjectConditions)
		}
		return nil
	})
	waitReplicas(t, c, ns, "good", 4, 15*time.Second)
	waitReplicas(t, c, ns, "bad", 1, time.Second)
}

// Any kind with a scale subresource works, custom resources included.
func TestCustomResourceWithScaleSubresource(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "shards.example.lockstep.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.lockstep.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "shards", Singular: "shard", Kind: "Shard", ListKind: "ShardList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"replicas": {Type: "integer"}}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"replicas": {Type: "integer"}}},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale:  &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas"},
				},
			}},
		},
	}
	if err := c.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), crd) })
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, types.NamespacedName{Name: crd.Name}, &got); err != nil {
			return err
		}
		if !framework.CRDEstablished(&got) {
			return fmt.Errorf("CRD not established")
		}
		return nil
	})
	shard := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.lockstep.dev/v1", "kind": "Shard",
		"metadata": map[string]any{"namespace": ns, "name": "orders"},
		"spec":     map[string]any{"replicas": int64(1)},
	}}
	if err := c.Create(ctx, shard); err != nil {
		t.Fatal(err)
	}
	obj := cronHPA(ns, "orders", "orders", v1beta1.Job{Name: "up", Schedule: dateIn(2 * time.Second), TargetSize: 7})
	obj.Spec.ScaleTargetRef = v1beta1.ScaleTargetRef{APIVersion: "example.lockstep.dev/v1", Kind: "Shard", Name: "orders"}
	framework.Eventually(t, 15*time.Second, func(ctx context.Context) error {
		// The webhook's RESTMapper learns the new kind on its next discovery refresh.
		return c.Create(ctx, obj.DeepCopy())
	})
	framework.Eventually(t, 15*time.Second, func(ctx context.Context) error {
		got := &unstructured.Unstructured{}
		got.SetAPIVersion("example.lockstep.dev/v1")
		got.SetKind("Shard")
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "orders"}, got); err != nil {
			return err
		}
		replicas, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas")
		if replicas != 7 {
			return fmt.Errorf("shard has %d replicas, want 7", replicas)
		}
		return nil
	})
}
