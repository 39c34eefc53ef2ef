// Package test runs the Alibaba Cloud provider against the signature-checking ECS fake
// (internal/alibabacloud/alifake) and a real API server holding its ECSNodeClasses: the class
// controller resolving selectors into conditions, and the CloudProvider launching, falling back
// on stock-outs, listing, drifting, deleting, riding out throttling and failing clearly on a
// revoked key.
package test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud/alifake"
	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud"
	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud/apis/v1alpha1"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	framework.Main(m, testbed.Options{})
}

const (
	region             = "cn-hangzhou"
	keyID, keySecret   = "LTAI5tLockstepTest", "lockstep-test-secret"
	zoneH, zoneI       = "cn-hangzhou-h", "cn-hangzhou-i"
	image, otherImage  = "aliyun_3_x64_20G_alibase_20261101.vhd", "aliyun_3_x64_20G_alibase_20261125.vhd"
	smallType, bigType = "ecs.c7.large", "ecs.c7.2xlarge"
)

type fixture struct {
	kube  client.Client
	fake  *alifake.Server
	ecs   *alifake.ECS
	api   alibabacloud.API
	clock *clocktesting.FakeClock
	cp    *alibabacloud.CloudProvider
	ctl   *alibabacloud.NodeClassController
	rec   *events.FakeRecorder
	// endpoint is the fake's host:port.
	endpoint string
}

var crdInstalled bool

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := framework.Env(t)
	if !crdInstalled {
		if err := framework.InstallCRDs(context.Background(), env.Config, filepath.Join("..", "..", "..", "config", "crd", "node-autoscaler", "karpenter.lockstep.dev_ecsnodeclasses.yaml")); err != nil {
			t.Fatal(err)
		}
		crdInstalled = true
	}
	kube, err := client.New(env.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{kube: kube, fake: alifake.New(), clock: clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))}
	f.fake.AddKey(keyID, keySecret, "")
	f.ecs = alifake.NewECS(f.fake, f.clock,
		[]alifake.InstanceType{
			{ID: smallType, Family: "ecs.c7", Arch: "X86", Cores: 2, MemoryGiB: 4, Price: 0.4, SpotPrice: 0.08},
			{ID: bigType, Family: "ecs.c7", Arch: "X86", Cores: 8, MemoryGiB: 16, Price: 1.6, SpotPrice: 0.3},
			{ID: "ecs.g8y.large", Family: "ecs.g8y", Arch: "ARM", Cores: 2, MemoryGiB: 8, Price: 0.35, SpotPrice: 0.07},
		},
		[]string{zoneH, zoneI},
		[]alifake.VSwitch{{ID: "vsw-h", VPCID: "vpc-1", ZoneID: zoneH}, {ID: "vsw-i", VPCID: "vpc-1", ZoneID: zoneI}, {ID: "vsw-other", VPCID: "vpc-2", ZoneID: zoneH}},
		[]alifake.SecurityGroup{{ID: "sg-nodes", Tags: map[string]string{"role": "nodes"}}, {ID: "sg-extra", Tags: map[string]string{"role": "extra"}}},
		image, otherImage)
	srv := httptest.NewServer(f.fake)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	f.endpoint = u.Host
	f.api, err = alibabacloud.NewAPI(alibabacloud.ClientConfig{Region: region, Endpoint: u.Host, Scheme: "http", Clock: f.clock},
		credentials.NewStaticAKCredentialsProvider(keyID, keySecret))
	if err != nil {
		t.Fatal(err)
	}
	f.cp = alibabacloud.NewCloudProvider(kube, f.api, alibabacloud.NewCatalog(f.api, f.clock, alibabacloud.CatalogConfig{}), region, "shop")
	f.rec = events.NewFakeRecorder(100)
	f.ctl = &alibabacloud.NodeClassController{Client: kube, API: f.api, Recorder: f.rec}
	return f
}

// nodeClass creates an ECSNodeClass (named after the test) and resolves it once.
func (f *fixture) nodeClass(t *testing.T, spec v1alpha1.ECSNodeClassSpec) *v1alpha1.ECSNodeClass {
	t.Helper()
	nc := &v1alpha1.ECSNodeClass{ObjectMeta: metav1.ObjectMeta{Name: strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))}, Spec: spec}
	if err := f.kube.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.kube.Delete(context.Background(), nc) })
	return f.resolve(t, nc.Name)
}

func (f *fixture) resolve(t *testing.T, name string) *v1alpha1.ECSNodeClass {
	t.Helper()
	if _, err := f.ctl.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}); err != nil {
		t.Fatal(err)
	}
	nc := &v1alpha1.ECSNodeClass{}
	if err := f.kube.Get(context.Background(), types.NamespacedName{Name: name}, nc); err != nil {
		t.Fatal(err)
	}
	return nc
}

func goodSpec() v1alpha1.ECSNodeClassSpec {
	return v1alpha1.ECSNodeClassSpec{
		VSwitchSelectorTerms:       []v1alpha1.VSwitchSelectorTerm{{VPCID: "vpc-1"}},
		SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"role": "nodes"}}},
		ImageID:                    image,
		UserData:                   "#!/bin/sh\necho join\n",
		Tags:                       map[string]string{"team": "shop"},
	}
}

func claim(nc, name string, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodeClaim {
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{karpv1.NodePoolLabelKey: "default"}},
		Spec: karpv1.NodeClaimSpec{
			NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.GroupVersion.Group, Kind: "ECSNodeClass", Name: nc},
			Requirements: reqs,
			Resources:    karpv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
		},
	}
}

func onDemand() karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}}
}

func amd64() karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.ArchitectureAmd64}}
}

func TestNodeClassResolves(t *testing.T) {
	f := newFixture(t)
	nc := f.nodeClass(t, goodSpec())
	if !nc.StatusConditions().Root().IsTrue() {
		t.Fatalf("class not Ready: %+v", nc.Status.Conditions)
	}
	if len(nc.Status.VSwitches) != 2 || nc.Status.ImageID != image || len(nc.Status.SecurityGroups) != 1 || nc.Status.SecurityGroups[0] != "sg-nodes" {
		t.Errorf("resolved status %+v", nc.Status)
	}
	if ev := drain(f.rec); !strings.Contains(ev, "NodeClassReady") {
		t.Errorf("events %q lack NodeClassReady", ev)
	}
}

// A class that can never launch says why in its conditions and an event.
func TestNodeClassCannotLaunch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*v1alpha1.ECSNodeClassSpec)
		setup   func(*fixture)
		cond    string
		message string
	}{
		{"no matching vSwitch", func(s *v1alpha1.ECSNodeClassSpec) {
			s.VSwitchSelectorTerms = []v1alpha1.VSwitchSelectorTerm{{VPCID: "vpc-9"}}
		}, nil,
			v1alpha1.ConditionVSwitchesReady, "matches no vSwitch"},
		{"no matching security group", func(s *v1alpha1.ECSNodeClassSpec) {
			s.SecurityGroupSelectorTerms = []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"role": "db"}}}
		}, nil, v1alpha1.ConditionSecurityGroupsReady, "matches no security group"},
		{"unknown image", func(s *v1alpha1.ECSNodeClassSpec) { s.ImageID = "m-unknown" }, nil, v1alpha1.ConditionImageReady, "not available"},
		{"missing permission", nil, func(f *fixture) { f.fake.Refuse(alifake.Forbidden) }, v1alpha1.ConditionVSwitchesReady, "Forbidden.RAM"},
		{"revoked key", nil, func(f *fixture) { f.fake.RemoveKey(keyID) }, v1alpha1.ConditionImageReady, "InvalidAccessKeyId.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			spec := goodSpec()
			if tc.mod != nil {
				tc.mod(&spec)
			}
			if tc.setup != nil {
				tc.setup(f)
			}
			nc := f.nodeClass(t, spec)
			ready := nc.StatusConditions().Root()
			if ready.IsTrue() {
				t.Fatal("class Ready although it cannot launch")
			}
			c := nc.StatusConditions().Get(tc.cond)
			if c == nil || c.IsTrue() || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("condition %s = %+v, want False mentioning %q", tc.cond, c, tc.message)
			}
			if strings.Contains(c.Message, keySecret) || strings.Contains(c.Message, "Signature=") {
				t.Fatalf("condition message leaks a credential: %s", c.Message)
			}
			if ev := drain(f.rec); !strings.Contains(ev, "NodeClassNotReady") || !strings.Contains(ev, tc.message) {
				t.Errorf("events %q lack NodeClassNotReady with %q", ev, tc.message)
			}
			// Karpenter gets a NodeClassNotReady error, and nothing is launched.
			_, err := f.cp.Create(context.Background(), claim(nc.Name, "c1", onDemand()))
			if !cloudprovider.IsNodeClassNotReadyError(err) {
				t.Errorf("Create = %v, want NodeClassNotReady", err)
			}
			if n := len(f.ecs.Instances()); n != 0 {
				t.Errorf("%d instances launched", n)
			}
		})
	}
}

// Launch the cheapest fitting offering; fall back to the other zone, then to another type, on
// stock-outs; then list, get, drift and delete it.
func TestLaunchFallbackDriftDelete(t *testing.T) {
	f := newFixture(t)
	nc := f.nodeClass(t, goodSpec())
	ctx := context.Background()

	// Cheapest on-demand amd64 fit for 1 CPU: ecs.c7.large (0.4/h); zone h is out of it.
	f.ecs.SetStock(zoneH, smallType, false)
	got, err := f.cp.Create(ctx, claim(nc.Name, "c1", onDemand(), amd64()))
	if err != nil {
		t.Fatal(err)
	}
	insts := f.ecs.Instances()
	if len(insts) != 1 || insts[0].Type != smallType || insts[0].Zone != zoneI || insts[0].Spot {
		t.Fatalf("launched %+v, want one on-demand %s in %s", insts, smallType, zoneI)
	}
	checkLaunched(t, insts[0], got)

	// Both zones out of the small type: the next cheapest fitting type.
	f.ecs.SetStock(zoneI, smallType, false)
	got2, err := f.cp.Create(ctx, claim(nc.Name, "c2", onDemand(), amd64()))
	if err != nil {
		t.Fatal(err)
	}
	if got2.Labels[corev1.LabelInstanceTypeStable] != bigType {
		t.Errorf("fallback launched %s, want %s", got2.Labels[corev1.LabelInstanceTypeStable], bigType)
	}
	// Everything out: insufficient capacity, and nothing more launched.
	f.ecs.SetStock(zoneH, bigType, false)
	f.ecs.SetStock(zoneI, bigType, false)
	if _, err := f.cp.Create(ctx, claim(nc.Name, "c3", onDemand(), amd64())); !cloudprovider.IsInsufficientCapacityError(err) {
		t.Errorf("Create with no stock = %v, want InsufficientCapacity", err)
	}
	if n := len(f.ecs.Instances()); n != 2 {
		t.Errorf("%d instances, want 2", n)
	}

	checkRetryListGet(t, f, nc.Name, got)
	checkDriftAndDelete(t, f, nc.Name, got)
}

// checkLaunched checks the instance's tags and image and the NodeClaim handed back.
func checkLaunched(t *testing.T, inst alifake.Instance, got *karpv1.NodeClaim) {
	t.Helper()
	if inst.Tags[alibabacloud.TagCluster] != "shop" || inst.Tags[alibabacloud.TagNodeClaim] != "c1" || inst.Tags["team"] != "shop" || inst.Image != image || inst.UserData == "" {
		t.Errorf("instance launched with %+v", inst)
	}
	if got.Status.ProviderID != region+"."+inst.ID || got.Labels[corev1.LabelTopologyZone] != zoneI || got.Labels[corev1.LabelInstanceTypeStable] != smallType ||
		got.Labels[karpv1.CapacityTypeLabelKey] != karpv1.CapacityTypeOnDemand || got.Status.Allocatable.Cpu().Cmp(resource.MustParse("2")) >= 0 {
		t.Errorf("NodeClaim back: labels %v, provider ID %s, allocatable %v", got.Labels, got.Status.ProviderID, got.Status.Allocatable)
	}
}

// checkRetryListGet: a retried Create of the same NodeClaim launches nothing new; List and Get
// find the instances.
func checkRetryListGet(t *testing.T, f *fixture, class string, got *karpv1.NodeClaim) {
	t.Helper()
	ctx := context.Background()
	// A retried Create of the same NodeClaim does not launch a second instance, even when the
	// cheapest offering is now another one (zone h has the small type again): it finds the
	// instance the first Create launched.
	f.ecs.SetStock(zoneI, smallType, true)
	f.ecs.SetStock(zoneH, smallType, true)
	f.clock.Step(4 * time.Minute) // the stock-out memory lapses
	again, err := f.cp.Create(ctx, claim(class, "c1", onDemand(), amd64()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.ecs.Instances()); n != 2 || again.Status.ProviderID != got.Status.ProviderID || again.Labels[corev1.LabelTopologyZone] != zoneI {
		t.Errorf("a retried Create: %d instances, provider ID %s in %s, want 2 and %s in %s", n, again.Status.ProviderID, again.Labels[corev1.LabelTopologyZone], got.Status.ProviderID, zoneI)
	}
	f.ecs.SetStock(zoneH, smallType, false)

	list, err := f.cp.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d NodeClaims, %v", len(list), err)
	}
	one, err := f.cp.Get(ctx, got.Status.ProviderID)
	if err != nil || one.Name != "c1" || one.Labels[corev1.LabelInstanceTypeStable] != smallType {
		t.Fatalf("Get = %+v, %v", one, err)
	}
}

// checkDriftAndDelete: the class changes image → drift; Delete releases, then reports not found.
func checkDriftAndDelete(t *testing.T, f *fixture, class string, got *karpv1.NodeClaim) {
	t.Helper()
	ctx := context.Background()
	// Drift: the class now resolves to another image.
	got.Spec.NodeClassRef = claim(class, "c1").Spec.NodeClassRef
	if reason, err := f.cp.IsDrifted(ctx, got); err != nil || reason != "" {
		t.Fatalf("IsDrifted before any change = %q, %v", reason, err)
	}
	var cur v1alpha1.ECSNodeClass
	if err := f.kube.Get(ctx, types.NamespacedName{Name: class}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.ImageID = otherImage
	if err := f.kube.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	f.resolve(t, class)
	if reason, err := f.cp.IsDrifted(ctx, got); err != nil || reason != alibabacloud.DriftImage {
		t.Errorf("IsDrifted after the image changed = %q, %v; want %s", reason, err, alibabacloud.DriftImage)
	}

	// Delete: released, then NotFound on the next call and on Get.
	if err := f.cp.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := f.cp.Delete(ctx, got); !cloudprovider.IsNodeClaimNotFoundError(err) {
		t.Errorf("second Delete = %v, want NodeClaimNotFound", err)
	}
	if _, err := f.cp.Get(ctx, got.Status.ProviderID); !cloudprovider.IsNodeClaimNotFoundError(err) {
		t.Errorf("Get after delete = %v, want NodeClaimNotFound", err)
	}
}

// Spot is chosen when allowed (cheaper); the ARM type only for arm64.
func TestSpotAndArchitecture(t *testing.T) {
	f := newFixture(t)
	nc := f.nodeClass(t, goodSpec())
	got, err := f.cp.Create(context.Background(), claim(nc.Name, "s1", amd64()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[karpv1.CapacityTypeLabelKey] != karpv1.CapacityTypeSpot || got.Labels[corev1.LabelInstanceTypeStable] != smallType {
		t.Errorf("launched %v, want spot %s", got.Labels, smallType)
	}
	arm, err := f.cp.Create(context.Background(), claim(nc.Name, "a1", onDemand(),
		karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.ArchitectureArm64}}))
	if err != nil {
		t.Fatal(err)
	}
	if arm.Labels[corev1.LabelInstanceTypeStable] != "ecs.g8y.large" || arm.Labels[corev1.LabelArchStable] != karpv1.ArchitectureArm64 {
		t.Errorf("arm64 launch %v", arm.Labels)
	}
}

// Throttled calls are retried with backoff on the injected clock; a call throttled past the
// retries fails as throttled, and Get never reports a running instance as gone because of it.
func TestThrottling(t *testing.T) {
	f := newFixture(t)
	nc := f.nodeClass(t, goodSpec())
	ctx := context.Background()
	got, err := f.cp.Create(ctx, claim(nc.Name, "t1", onDemand(), amd64()))
	if err != nil {
		t.Fatal(err)
	}
	f.fake.Throttle(2)
	done := make(chan error, 1)
	go func() { _, err := f.cp.Get(ctx, got.Status.ProviderID); done <- err }()
	for _, wait := range []time.Duration{time.Second, 2 * time.Second} {
		waitForWaiter(t, f.clock)
		f.clock.Step(wait)
	}
	if err := <-done; err != nil {
		t.Fatalf("Get through two throttled answers: %v", err)
	}
	f.fake.Throttle(10)
	go func() { _, err := f.cp.Get(ctx, got.Status.ProviderID); done <- err }()
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		waitForWaiter(t, f.clock)
		f.clock.Step(wait)
	}
	err = <-done
	if !errors.Is(err, alibabacloud.ErrThrottled) || cloudprovider.IsNodeClaimNotFoundError(err) {
		t.Fatalf("Get throttled past the retries = %v, want a throttling error (not NotFound)", err)
	}
	f.fake.Throttle(0)
}

// A revoked key fails calls with the API's code, never a NotFound that would make Karpenter give
// up a running instance, and never with the secret in the message.
func TestRevokedKey(t *testing.T) {
	f := newFixture(t)
	nc := f.nodeClass(t, goodSpec())
	got, err := f.cp.Create(context.Background(), claim(nc.Name, "r1", onDemand(), amd64()))
	if err != nil {
		t.Fatal(err)
	}
	f.fake.RemoveKey(keyID)
	_, err = f.cp.Get(context.Background(), got.Status.ProviderID)
	if err == nil || cloudprovider.IsNodeClaimNotFoundError(err) || !strings.Contains(err.Error(), "InvalidAccessKeyId.NotFound") || strings.Contains(err.Error(), keySecret) {
		t.Fatalf("Get with a revoked key = %v", err)
	}
	if _, err := f.cp.List(context.Background()); err == nil {
		t.Fatal("List with a revoked key succeeded")
	}
}

func waitForWaiter(t *testing.T, c *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("no retry is waiting on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func drain(r *events.FakeRecorder) string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}
