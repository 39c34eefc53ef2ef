package test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kwokv1alpha1 "sigs.k8s.io/karpenter/kwok/apis/v1alpha1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// TestPrewarmStaticNodePool: a CronHPA raises a static NodePool's node count (its /scale) ahead
// of a sale and lowers it afterwards, through bin/cronhpa and bin/node-autoscaler with Karpenter's
// StaticCapacity gate: the nodes are Ready before any pod needs them, then go.
func TestPrewarmStaticNodePool(t *testing.T) {
	c := setup(t)
	if err := v1beta1.AddToScheme(scheme.Scheme); err != nil {
		t.Fatal(err)
	}
	env := framework.Env(t)
	crd := filepath.Join("..", "..", "config", "crd", "autoscaling.alibabacloud.com_cronhorizontalpodautoscalers.yaml")
	if err := framework.InstallCRDs(context.Background(), env.Config, crd); err != nil {
		t.Fatal(err)
	}
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()

	nc := &kwokv1alpha1.KWOKNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "prewarm"},
		Spec: kwokv1alpha1.KWOKNodeClassSpec{NodeRegistrationDelay: metav1.Duration{Duration: 3 * time.Second}}}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), nc) })
	np := &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: "prewarm"},
		Spec: karpv1.NodePoolSpec{
			Replicas: ptr.To[int64](0),
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: "karpenter.kwok.sh", Kind: "KWOKNodeClass", Name: "prewarm"},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
					{Key: corev1.LabelInstanceTypeStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"c-4x-amd64-linux"}},
				},
				ExpireAfter: karpv1.MustParseNillableDuration("Never"),
			}},
		},
	}
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), np) })
	startAutoscaler(t, "node-autoscaler-prewarm", ns, "--feature-gates=StaticCapacity=true", "--spill=false")
	cleanupPool(t, c, "prewarm")
	startCronHPA(t, env, ns)

	warmAt := time.Now().Add(8 * time.Second)
	coolAt := warmAt.Add(30 * time.Second)
	date := func(at time.Time) string {
		return "@date " + at.UTC().Truncate(time.Second).Format("2006-01-02 15:04:05")
	}
	cron := &v1beta1.CronHorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sale-nodes"},
		Spec: v1beta1.CronHorizontalPodAutoscalerSpec{
			ScaleTargetRef: v1beta1.ScaleTargetRef{APIVersion: "karpenter.sh/v1", Kind: "NodePool", Name: "prewarm"},
			Jobs: []v1beta1.Job{
				{Name: "warm-up", Schedule: date(warmAt), TargetSize: 3},
				{Name: "cool-down", Schedule: date(coolAt), TargetSize: 0},
			},
		},
	}
	if err := c.Create(ctx, cron); err != nil {
		t.Fatal(err)
	}
	readyNodes := func(ctx context.Context) (int, error) {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes, client.MatchingLabels{karpv1.NodePoolLabelKey: "prewarm"}); err != nil {
			return 0, err
		}
		n := 0
		for i := range nodes.Items {
			if testbed.NodeReady(&nodes.Items[i]) && nodes.Items[i].DeletionTimestamp == nil {
				n++
			}
		}
		return n, nil
	}
	framework.Eventually(t, time.Until(coolAt), func(ctx context.Context) error {
		n, err := readyNodes(ctx)
		if err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("%d of 3 pre-warmed nodes Ready", n)
		}
		return nil
	})
	t.Logf("3 nodes Ready %s after the warm-up time, with no pod asking for them", time.Since(warmAt).Round(100*time.Millisecond))
	var got karpv1.NodePool
	if err := c.Get(ctx, client.ObjectKey{Name: "prewarm"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Replicas == nil || *got.Spec.Replicas != 3 {
		t.Errorf("NodePool replicas %v, want 3 (set through /scale)", got.Spec.Replicas)
	}
	framework.Eventually(t, time.Until(coolAt)+90*time.Second, func(ctx context.Context) error {
		n, err := readyNodes(ctx)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d pre-warmed nodes left after the cool-down", n)
		}
		return nil
	})
}

// startCronHPA runs bin/cronhpa with leader election in leaseNS.
func startCronHPA(t *testing.T, env *testbed.Env, leaseNS string) {
	t.Helper()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := env.Run("cronhpa", filepath.Join("..", "..", "bin", "cronhpa"), "--kubeconfig", env.Kubeconfig,
		"--leader-elect", "--leader-election-namespace", leaseNS, "--webhook-port", "0",
		"--metrics-bind-address", addr, "--health-probe-bind-address", "0", "--starting-deadline", "1m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
}
