// Package test runs bin/node-autoscaler (Karpenter core with the kwok provider, and Lockstep's
// spill and move-back controllers) against the test bed: a real API server, kube-controller-manager
// (Deployments, ReplicaSets, garbage collection, node lifecycle), kube-scheduler and kwok, which
// runs the nodes Karpenter launches and a serverless virtual node.
package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	kwokv1alpha1 "sigs.k8s.io/karpenter/kwok/apis/v1alpha1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	framework.Main(m, testbed.Options{ControllerManager: true, Scheduler: true, Kwok: true})
}

// Virtual node as ACK's virtual-kubelet on ECI shows itself (the defaults of the flags).
const (
	virtualLabelKey, virtualLabelValue = "type", "virtual-kubelet"
	virtualTaintKey, virtualTaintValue = "virtual-kubelet.io/provider", "alibabacloud"
)

var crdsInstalled bool

// setup installs the CRDs once per package and returns a client that knows Karpenter's types.
func setup(t testing.TB) client.Client {
	t.Helper()
	env := framework.Env(t)
	if !crdsInstalled {
		files, err := filepath.Glob("../../config/crd/karpenter*/*.yaml")
		if err != nil || len(files) != 5 {
			t.Fatalf("want the 5 Karpenter CRDs under config/crd (make generate), found %v (%v)", files, err)
		}
		if err := framework.InstallCRDs(context.Background(), env.Config, files...); err != nil {
			t.Fatal(err)
		}
		crdsInstalled = true
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// addVirtualNode creates a kwok node that looks like ACK's virtual node (label, taint) with room
// for many pods, and waits until it is Ready.
func addVirtualNode(t testing.TB, c client.Client, name string) {
	t.Helper()
	node := testbed.KwokNode(name, corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1000"), corev1.ResourceMemory: resource.MustParse("4Ti"), corev1.ResourcePods: resource.MustParse("5000"),
	})
	node.Labels[virtualLabelKey] = virtualLabelValue
	node.Spec.Taints = []corev1.Taint{{Key: virtualTaintKey, Value: virtualTaintValue, Effect: corev1.TaintEffectNoSchedule}}
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), node) })
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		var n corev1.Node
		if err := c.Get(ctx, client.ObjectKeyFromObject(node), &n); err != nil {
			return err
		}
		if !testbed.NodeReady(&n) {
			return fmt.Errorf("virtual node %s not Ready", name)
		}
		return nil
	})
}

// addPool creates a KWOKNodeClass whose nodes register after bootDelay and a NodePool of
// on-demand kwok instance types (4 and 8 CPUs when none are given) that consolidates empty or
// underused nodes at once.
func addPool(t testing.TB, c client.Client, name string, bootDelay time.Duration, cpuLimit string, types ...string) {
	t.Helper()
	ctx := context.Background()
	if len(types) == 0 {
		types = []string{"c-4x-amd64-linux", "c-8x-amd64-linux"}
	}
	nc := &kwokv1alpha1.KWOKNodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       kwokv1alpha1.KWOKNodeClassSpec{NodeRegistrationDelay: metav1.Duration{Duration: bootDelay}},
	}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), nc) })
	np := &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{
				Spec: karpv1.NodeClaimTemplateSpec{
					NodeClassRef: &karpv1.NodeClassReference{Group: "karpenter.kwok.sh", Kind: "KWOKNodeClass", Name: name},
					Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
						{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
						{Key: corev1.LabelInstanceTypeStable, Operator: corev1.NodeSelectorOpIn, Values: types},
					},
					ExpireAfter: karpv1.MustParseNillableDuration("Never"),
				},
			},
			Disruption: karpv1.Disruption{
				ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized,
				ConsolidateAfter:    karpv1.MustParseNillableDuration("0s"),
			},
			Limits: karpv1.Limits{corev1.ResourceCPU: resource.MustParse(cpuLimit)},
		},
	}
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), np) })
}

// autoscaler is one bin/node-autoscaler process.
type autoscaler struct {
	proc    *testbed.Process
	metrics string
}

// startAutoscaler runs bin/node-autoscaler with the kwok provider, quick batching, leader election
// in leaseNS, and extra flags.
func startAutoscaler(t testing.TB, name, leaseNS string, extra ...string) *autoscaler {
	t.Helper()
	env := framework.Env(t)
	mport, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hport, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--kubeconfig=" + env.Kubeconfig, "--cloud-provider=kwok",
		"--leader-election-namespace=" + leaseNS, "--leader-election-name=" + name,
		"--metrics-port=" + strconv.Itoa(mport), "--health-probe-port=" + strconv.Itoa(hport),
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--log-level=debug",
	}, extra...)
	p, err := env.Run(name, filepath.Join("..", "..", "bin", "node-autoscaler"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	a := &autoscaler{proc: p, metrics: "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"}
	framework.Eventually(t, time.Minute, func(context.Context) error {
		if p.Exited() {
			t.Fatalf("%s exited during start-up; see %s", name, env.LogPath(name))
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(hport) + "/readyz") //nolint:noctx // loopback probe
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	return a
}

// metric sums the series of a counter or gauge whose labels include want.
func (a *autoscaler) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(a.metrics) //nolint:noctx // loopback
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, m := range families[name].GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}
