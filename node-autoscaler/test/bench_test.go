package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// Bench scale, as the issue asks: 1,000 existing nodes, 50 instance types, 1,000 pending pods for
// the decision time, 500 for the time to Running with and without spill; nodes boot in 60 s.
const spillLabelKey = spill.SpilledLabel

const (
	benchNodes       = 1000
	benchTypes       = 50
	benchDecidePods  = 1000
	benchRunningPods = 500
	benchBoot        = 60 * time.Second
)

// BenchmarkProvisioning measures, on the test bed with bin/node-autoscaler (kwok provider):
//   - decide: 1,000 pending pods created → Karpenter's last NodeClaim for them created (the set of
//     launches stable for 10 s), with 1,000 existing full nodes and 50 instance types;
//   - running, no spill: the first 500 of those pods Running (they wait for the 60 s boot);
//   - running, spill: 500 new pods created → all Running on the virtual node (budget 0 s);
//   - move-back: from then until all 500 are ready on the pool's nodes with none left spilled
//     (up to 100 moves in flight).
func BenchmarkProvisioning(b *testing.B) {
	for b.Loop() {
		benchProvisioning(b)
	}
}

func benchProvisioning(b *testing.B) {
	c := setup(b)
	env := framework.Env(b)
	ctx := context.Background()
	start := time.Now()
	// Existing nodes are full for these pods: 100m CPU each.
	if err := env.AddNodes(ctx, "existing-", benchNodes, corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("110"),
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d existing nodes Ready in %s", benchNodes, time.Since(start).Round(time.Second))
	addVirtualNode(b, c, "virtual-kubelet-bench")
	types := benchInstanceTypes()

	// Without spill: the decision time and the baseline time to Running.
	cs := framework.Clientset(b)
	ns := framework.Namespace(b, cs)
	addPool(b, c, "bench-nospill", benchBoot, "100000", types...)
	a := startAutoscaler(b, "node-autoscaler-bench-nospill", ns, "--spill=false", "--log-level=info")
	labels := map[string]string{"app": "flood"}
	created := time.Now()
	if err := c.Create(ctx, deployment(ns, "flood", labels, benchDecidePods, "500m")); err != nil {
		b.Fatal(err)
	}
	decided, claims := waitLaunchesSettle(b, c, "bench-nospill", created)
	running := waitRunning(b, c, ns, labels, benchRunningPods, "", created, benchBoot+3*time.Minute)
	b.Logf("no spill: %d pods → %d NodeClaims decided in %s; %d pods Running after %s", benchDecidePods, claims, decided.Round(10*time.Millisecond), benchRunningPods, running.Round(10*time.Millisecond))
	b.ReportMetric(decided.Seconds(), "decide-s")
	b.ReportMetric(float64(claims), "nodeclaims")
	b.ReportMetric(running.Seconds(), "running-nospill-s")
	// Clear the first case away (its pods, then its nodes, while its autoscaler still runs), so
	// that the second case's pods have only the virtual node and new launches.
	if err := c.Delete(ctx, deployment(ns, "flood", labels, benchDecidePods, "500m")); err != nil {
		b.Fatal(err)
	}
	deletePoolAndWait(b, c, "bench-nospill")
	if err := a.proc.Stop(); err != nil {
		b.Logf("stopping the autoscaler: %v", err)
	}

	// With spill: 500 new pods, budget 0 s, onto the virtual node.
	ns2 := framework.Namespace(b, cs)
	addPool(b, c, "bench-spill", benchBoot, "100000", types...)
	startAutoscaler(b, "node-autoscaler-bench-spill", ns2, "--spill-budget=0s", "--move-back-after=0s",
		"--max-moves-in-flight=100", "--max-moves-per-workload=100", "--log-level=info")
	created = time.Now()
	if err := c.Create(ctx, deployment(ns2, "flood", labels, benchRunningPods, "500m")); err != nil {
		b.Fatal(err)
	}
	stages := watchStages(b, c, ns2, labels, benchRunningPods, "virtual-kubelet-bench", created)
	spilled := waitRunning(b, c, ns2, labels, benchRunningPods, "virtual-kubelet-bench", created, 5*time.Minute)
	b.Logf("spill: %d pods Running on the virtual node after %s (no spill: %s); stages: %v", benchRunningPods, spilled.Round(10*time.Millisecond), running.Round(10*time.Millisecond), stages())
	b.ReportMetric(spilled.Seconds(), "running-spill-s")

	// Move-back: from all Running on the virtual node to all ready on the pool's nodes (booting
	// 60 s from their launch), nothing left spilled, 100 moves in flight at most.
	movedFrom := time.Now()
	framework.Eventually(b, 10*time.Minute, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns2, labels)
		if err != nil {
			return err
		}
		onReal, spilledLeft := 0, 0
		for _, p := range pods {
			if p.Labels[spillLabelKey] != "" {
				spilledLeft++
			}
			if ready(&p) && p.Spec.NodeName != "" && p.Spec.NodeName != "virtual-kubelet-bench" {
				onReal++
			}
		}
		if onReal < benchRunningPods || spilledLeft > 0 {
			return fmt.Errorf("%d of %d pods ready on the pool's nodes, %d still spilled", onReal, benchRunningPods, spilledLeft)
		}
		return nil
	})
	moved := time.Since(movedFrom)
	b.Logf("move-back: %d pods on the pool's nodes %s after they all ran on the virtual node (%s after creation)", benchRunningPods, moved.Round(10*time.Millisecond), time.Since(created).Round(10*time.Millisecond))
	b.ReportMetric(moved.Seconds(), "moveback-s")
}

// watchStages records, in the background, when all want pods of the workload existed, had been
// found unschedulable, were spilled (labelled), were bound to node, and were Running; the
// returned function stops it and reports the times since created.
func watchStages(b *testing.B, c client.Client, ns string, labels map[string]string, want int, node string, created time.Time) func() map[string]time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	got := map[string]time.Duration{}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pods, err := workloadPods(ctx, c, ns, labels)
			if err == nil {
				counts := map[string]int{"created": len(pods)}
				for _, p := range pods {
					if p.Spec.NodeName != "" || !ready(&p) && len(p.Status.Conditions) > 0 {
						counts["seen-by-scheduler"]++
					}
					if p.Labels[spillLabelKey] != "" {
						counts["spilled"]++
					}
					if p.Spec.NodeName == node {
						counts["bound"]++
					}
					if p.Status.Phase == corev1.PodRunning {
						counts["running"]++
					}
				}
				for stage, n := range counts {
					if _, ok := got[stage]; !ok && n >= want {
						got[stage] = time.Since(created).Round(100 * time.Millisecond)
					}
				}
				if len(got) == 5 {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() map[string]time.Duration {
		cancel()
		<-done
		return got
	}
}

// deletePoolAndWait deletes a NodePool and waits until Karpenter has removed its NodeClaims.
func deletePoolAndWait(b *testing.B, c client.Client, pool string) {
	b.Helper()
	if err := c.Delete(context.Background(), &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: pool}}); err != nil {
		b.Fatal(err)
	}
	framework.Eventually(b, 5*time.Minute, func(ctx context.Context) error {
		var list karpv1.NodeClaimList
		if err := c.List(ctx, &list, client.MatchingLabels{karpv1.NodePoolLabelKey: pool}); err != nil {
			return err
		}
		if len(list.Items) > 0 {
			return fmt.Errorf("%d NodeClaims of %s left", len(list.Items), pool)
		}
		return nil
	})
}

// benchInstanceTypes is 50 of the kwok provider's Linux instance types.
func benchInstanceTypes() []string {
	var out []string
	for _, family := range []string{"c", "s", "m"} {
		for _, size := range []string{"1x", "2x", "4x", "8x", "16x", "32x", "48x", "64x", "96x"} {
			for _, arch := range []string{"amd64", "arm64"} {
				if len(out) < benchTypes {
					out = append(out, fmt.Sprintf("%s-%s-%s-linux", family, size, arch))
				}
			}
		}
	}
	return out
}

// waitLaunchesSettle waits until the pool's NodeClaims stop changing for 10 s and returns the
// time from created to the last NodeClaim's creation, and their count.
func waitLaunchesSettle(b *testing.B, c client.Client, pool string, created time.Time) (time.Duration, int) {
	b.Helper()
	var last time.Time
	count, stableSince := -1, time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		var list karpv1.NodeClaimList
		if err := c.List(context.Background(), &list, client.MatchingLabels{karpv1.NodePoolLabelKey: pool}); err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != count {
			count, stableSince = len(list.Items), time.Now()
		}
		for _, nc := range list.Items {
			if nc.CreationTimestamp.After(last) {
				last = nc.CreationTimestamp.Time
			}
		}
		if count > 0 && time.Since(stableSince) > 10*time.Second {
			// creationTimestamp has whole seconds: round the start the same way.
			return last.Sub(created.Truncate(time.Second)), count
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("NodeClaims of %s did not settle in 5 minutes (%d so far)", pool, count)
	return 0, 0
}

// waitRunning waits until want pods of the workload are Running (on node, when set) and returns
// the time since created.
func waitRunning(b *testing.B, c client.Client, ns string, labels map[string]string, want int, node string, created time.Time, timeout time.Duration) time.Duration {
	b.Helper()
	var got time.Duration
	framework.Eventually(b, timeout, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns, labels)
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && (node == "" || p.Spec.NodeName == node) {
				n++
			}
		}
		if n < want {
			return fmt.Errorf("%d of %d pods Running", n, want)
		}
		got = time.Since(created)
		return nil
	})
	return got
}
