package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{ControllerManager: true, Scheduler: true, Nodes: 3, HPASyncPeriod: hpaSyncPeriod})
}

// lines collects what the demo prints, for the failure message.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// checkSalesEvent plays the scenario with the given timings and checks what each tier does:
// the cron floors come up at the warm-up, checkout follows the ingress QPS past them during the
// flood, and everything comes back down after the sale; and where the pods run: on the serverless
// virtual node while the shop's nodes boot, then on those nodes. slack is added to every wait.
func checkSalesEvent(t *testing.T, timing scenarioOptions, slack time.Duration) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lines{}
	done := make(chan error, 1)
	timing.zone, timing.repo = "Asia/Shanghai", filepath.Join("..", "..")
	timing.kubeconfig, timing.out = env.Kubeconfig, out
	go func() { done <- play(ctx, env, timing) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})
	replicas := func(name string, ok func(int32) bool, what string) func(context.Context) error {
		return func(ctx context.Context) error {
			d, err := cs.AppsV1().Deployments("sale").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Spec.Replicas == nil || !ok(*d.Spec.Replicas) {
				return fmt.Errorf("%s has %v replicas, want %s", name, d.Spec.Replicas, what)
			}
			return nil
		}
	}
	is := func(n int32) func(int32) bool { return func(v int32) bool { return v == n } }
	// Where the pods run: spilled onto the virtual node before the first shop node is Ready.
	placed := func(want func(virtual, shop int) error) func(context.Context) error {
		return func(ctx context.Context) error {
			pods, err := cs.CoreV1().Pods("sale").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			virtual, shop := 0, 0
			for _, p := range pods.Items {
				switch {
				case p.DeletionTimestamp != nil || p.Labels["node-autoscaler.lockstep.dev/hold-for"] != "" || p.Spec.NodeName == "":
				case p.Spec.NodeName == virtualNode:
					virtual++
				default:
					shop++
				}
			}
			return want(virtual, shop)
		}
	}
	framework.Eventually(t, timing.bootDelay, placed(func(virtual, _ int) error {
		if virtual < 4 {
			return fmt.Errorf("%d pods on the virtual node, want the 4 initial ones while the nodes boot", virtual)
		}
		return nil
	}))
	// Warm-up: both tiers raised on schedule, before any extra traffic.
	framework.Eventually(t, timing.warmUpIn+30*time.Second, replicas("ingress-gateway", is(8), "8 after the warm-up"))
	framework.Eventually(t, 20*time.Second, replicas("checkout", is(12), "the floor of 12 after the warm-up"))
	// The flood: 1,800 req/s at 100 per pod takes checkout past its floor.
	framework.Eventually(t, timing.floodAfter+40*time.Second+slack, replicas("checkout", func(v int32) bool { return v >= 16 }, "16 or more in the flood"))
	// After the sale: floors down, traffic down, the HPA returns checkout to 2.
	framework.Eventually(t, timing.saleLength+slack, replicas("ingress-gateway", is(2), "2 after the sale"))
	framework.Eventually(t, 90*time.Second+5*slack, replicas("checkout", is(2), "2 after the sale"))
	// In the end every pod runs on the shop's nodes: moved back, or removed first on scale-in.
	framework.Eventually(t, time.Minute+slack, placed(func(virtual, shop int) error {
		if virtual != 0 || shop != 4 {
			return fmt.Errorf("%d pods on the virtual node and %d on the shop's nodes, want 0 and 4", virtual, shop)
		}
		return nil
	}))
	for _, want := range []string{"on serverless", "placement"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo did not print %q", want)
		}
	}
	if !strings.Contains(out.String(), "1800 req/s at the ingress") {
		t.Errorf("the demo did not print the flood")
	}
}
