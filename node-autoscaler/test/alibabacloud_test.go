package test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud/alifake"
	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud/apis/v1alpha1"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// TestAlibabaCloudProvider runs bin/node-autoscaler with --cloud-provider=alibabacloud against
// the ECS fake: Karpenter launches an instance for pending pods (falling back to the other zone
// where the cheapest type is out of stock), the instance "boots" (the test registers a kwok node
// with its provider ID, as the node's kubelet would), the pods run, and when they go Karpenter
// consolidates the node and the instance is released.
func TestAlibabaCloudProvider(t *testing.T) {
	c := setup(t)
	env := framework.Env(t)
	ctx := context.Background()
	crd := filepath.Join("..", "..", "config", "crd", "node-autoscaler", "karpenter.lockstep.dev_ecsnodeclasses.yaml")
	if err := framework.InstallCRDs(ctx, env.Config, crd); err != nil {
		t.Fatal(err)
	}
	ecs, endpoint, creds := startECSFake(t)
	nc := &v1alpha1.ECSNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "ecs"}, Spec: v1alpha1.ECSNodeClassSpec{
		VSwitchSelectorTerms:       []v1alpha1.VSwitchSelectorTerm{{VPCID: "vpc-bed"}},
		SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"cluster": "bed"}}},
		ImageID:                    "aliyun_3_x64_bed.vhd",
	}}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), nc) })
	createECSPool(t, c)

	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	startAutoscaler(t, "node-autoscaler-ecs", ns, "--cloud-provider=alibabacloud", "--alibabacloud-region=cn-hangzhou",
		"--alibabacloud-endpoint="+endpoint, "--alibabacloud-scheme=http", "--alibabacloud-credentials-dir="+creds,
		"--cluster-name=bed", "--spill=false")
	cleanupPool(t, c, "ecs")
	stopJoin := joinInstances(t, c, ecs)
	defer stopJoin()
	runOnECS(t, c, ns, ecs)
}

// startECSFake serves a fake region with two zones (the cheaper type out of stock in one) and
// writes its key where --alibabacloud-credentials-dir reads it.
func startECSFake(t *testing.T) (*alifake.ECS, string, string) {
	t.Helper()
	fake := alifake.New()
	fake.AddKey("LTAI5tBedKey", "bed-secret", "")
	ecs := alifake.NewECS(fake, clock.RealClock{},
		[]alifake.InstanceType{
			{ID: "ecs.c7.xlarge", Family: "ecs.c7", Arch: "X86", Cores: 4, MemoryGiB: 8, Price: 0.8, SpotPrice: 0.16},
			{ID: "ecs.c7.2xlarge", Family: "ecs.c7", Arch: "X86", Cores: 8, MemoryGiB: 16, Price: 1.6, SpotPrice: 0.3},
		},
		[]string{"cn-hangzhou-h", "cn-hangzhou-i"},
		[]alifake.VSwitch{{ID: "vsw-h", VPCID: "vpc-bed", ZoneID: "cn-hangzhou-h"}, {ID: "vsw-i", VPCID: "vpc-bed", ZoneID: "cn-hangzhou-i"}},
		[]alifake.SecurityGroup{{ID: "sg-bed", Tags: map[string]string{"cluster": "bed"}}},
		"aliyun_3_x64_bed.vhd")
	ecs.SetStock("cn-hangzhou-h", "ecs.c7.xlarge", false)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	creds := t.TempDir()
	for name, v := range map[string]string{"access-key-id": "LTAI5tBedKey", "access-key-secret": "bed-secret"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ecs, u.Host, creds
}

// createECSPool creates NodePool "ecs" on the ECSNodeClass "ecs", on-demand, consolidating at once.
func createECSPool(t *testing.T, c client.Client) {
	t.Helper()
	np := &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: "ecs"},
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.GroupVersion.Group, Kind: "ECSNodeClass", Name: "ecs"},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
				},
				ExpireAfter: karpv1.MustParseNillableDuration("Never"),
			}},
			Disruption: karpv1.Disruption{ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized, ConsolidateAfter: karpv1.MustParseNillableDuration("0s")},
		},
	}
	if err := c.Create(context.Background(), np); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), np) })
}

// runOnECS: the class resolves, two pods get an instance and run, and the instance is released
// when they go.
func runOnECS(t *testing.T, c client.Client, ns string, ecs *alifake.ECS) {
	t.Helper()
	ctx := context.Background()
	// The class resolves (the provider's controller, through the fake).
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var got v1alpha1.ECSNodeClass
		if err := c.Get(ctx, client.ObjectKey{Name: "ecs"}, &got); err != nil {
			return err
		}
		if !got.StatusConditions().Root().IsTrue() {
			return fmt.Errorf("ECSNodeClass not Ready: %+v", got.Status.Conditions)
		}
		return nil
	})

	labels := map[string]string{"app": "ecs-web"}
	if err := c.Create(ctx, deployment(ns, "ecs-web", labels, 2, "1")); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 90*time.Second, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns, labels)
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			if ready(&p) {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d of 2 pods ready (instances: %d)", n, len(ecs.Instances()))
		}
		return nil
	})
	insts := ecs.Instances()
	if len(insts) != 1 {
		t.Fatalf("%d instances launched, want 1", len(insts))
	}
	inst := insts[0]
	t.Logf("launched %s (%s in %s) for the pods", inst.ID, inst.Type, inst.Zone)
	if inst.Type != "ecs.c7.xlarge" || inst.Zone != "cn-hangzhou-i" || inst.Tags["karpenter.lockstep.dev/cluster"] != "bed" || inst.Tags["karpenter.sh/nodepool"] != "ecs" {
		t.Errorf("instance %+v: want ecs.c7.xlarge in cn-hangzhou-i (h is out of stock), tagged with the cluster and pool", inst)
	}
	var claims karpv1.NodeClaimList
	if err := c.List(ctx, &claims, client.MatchingLabels{karpv1.NodePoolLabelKey: "ecs"}); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 1 || claims.Items[0].Status.ProviderID != "cn-hangzhou."+inst.ID {
		t.Fatalf("NodeClaims %+v, want one with provider ID cn-hangzhou.%s", claims.Items, inst.ID)
	}

	// The pods go; Karpenter consolidates the empty node and the instance is released.
	var d = deployment(ns, "ecs-web", labels, 2, "1")
	if err := c.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, func(context.Context) error {
		if n := len(ecs.Instances()); n != 0 {
			return fmt.Errorf("%d instances still running after the pods went", n)
		}
		return nil
	})
}

// joinInstances plays the part of each launched instance's kubelet: it registers a kwok node with
// the instance's provider ID, capacity and Karpenter's unregistered taint, as a node joining ACK
// would, and deletes nodes whose instance was released.
func joinInstances(t *testing.T, c client.Client, ecs *alifake.ECS) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		joined := map[string]bool{}
		for ctx.Err() == nil {
			live := map[string]bool{}
			for _, inst := range ecs.Instances() {
				live[inst.ID] = true
				if joined[inst.ID] {
					continue
				}
				cores := map[string]string{"ecs.c7.xlarge": "4", "ecs.c7.2xlarge": "8"}[inst.Type]
				mem := map[string]string{"ecs.c7.xlarge": "8Gi", "ecs.c7.2xlarge": "16Gi"}[inst.Type]
				node := testbed.KwokNode(inst.ID, corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse(cores), corev1.ResourceMemory: resource.MustParse(mem), corev1.ResourcePods: resource.MustParse("110"),
				})
				node.Spec.ProviderID = "cn-hangzhou." + inst.ID
				node.Spec.Taints = []corev1.Taint{karpv1.UnregisteredNoExecuteTaint}
				node.Labels[corev1.LabelTopologyZone] = inst.Zone
				if err := c.Create(ctx, node); err == nil {
					joined[inst.ID] = true
				}
			}
			for id := range joined {
				if !live[id] {
					_ = c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: id}})
					delete(joined, id)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	return func() { cancel(); wg.Wait() }
}
