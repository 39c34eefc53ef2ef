package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// TestSpillWhileNodesBootThenMoveBack is the scenario: nodes take 60 s to boot, pods may
// wait 5 s. The pods run on the virtual node within seconds; placeholders hold their room so
// Karpenter neither forgets the launches nor consolidates the new nodes; once the nodes are Ready
// the pods move back, and the workload's ready pods never drop below its replicas meanwhile
// (a PodDisruptionBudget allowing one disruption guards the evictions).
func TestSpillWhileNodesBootThenMoveBack(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	addVirtualNode(t, c, "virtual-kubelet-spill")
	addPool(t, c, "boot60", 60*time.Second, "64")
	a := startAutoscaler(t, "node-autoscaler", ns, "--spill-budget=5s", "--move-back-after=5s")
	cleanupPool(t, c, "boot60")
	dumpOnFailure(t, c, ns, "node-autoscaler")

	const replicas = 6
	labels := map[string]string{"app": "web"}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	if err := c.Create(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	if err := c.Create(context.Background(), deployment(ns, "web", labels, replicas, "1")); err != nil {
		t.Fatal(err)
	}

	// Spill: every replica Running and Ready on the virtual node well before any node boots.
	framework.Eventually(t, 40*time.Second, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns, labels)
		if err != nil {
			return err
		}
		onVirtual := 0
		for _, p := range pods {
			if ready(&p) && p.Spec.NodeName == "virtual-kubelet-spill" {
				onVirtual++
			}
		}
		if onVirtual < replicas {
			return fmt.Errorf("%d of %d pods ready on the virtual node", onVirtual, replicas)
		}
		return nil
	})
	spillTime := time.Since(created)
	t.Logf("all %d pods Ready on the virtual node %s after the Deployment was created", replicas, spillTime.Round(100*time.Millisecond))
	if spillTime > 30*time.Second {
		t.Errorf("spilling took %s; nodes boot in 60 s, so the pods should not have waited for them", spillTime)
	}
	checkSpilledPods(t, c, ns, labels)
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"action": "spill"}); n < replicas {
		t.Errorf("spill decisions counted: %v, want at least %d", n, replicas)
	}
	expectEvent(t, c, ns, "Spilled")

	// Holds: one placeholder per spilled pod, and the launches Karpenter made for the pods stay.
	framework.Eventually(t, 20*time.Second, func(ctx context.Context) error {
		var holds corev1.PodList
		if err := c.List(ctx, &holds, client.InNamespace(ns), client.HasLabels{spill.HoldForLabel}); err != nil {
			return err
		}
		if len(holds.Items) != replicas {
			return fmt.Errorf("%d placeholders, want %d", len(holds.Items), replicas)
		}
		return nil
	})
	// Karpenter launches nodes for the placeholders (the spilled pods' room).
	var claims map[string]bool
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if claims = nodeClaimNames(t, c); len(claims) == 0 {
			return fmt.Errorf("no NodeClaim launched for the placeholders")
		}
		return nil
	})
	t.Logf("NodeClaims launched: %v", claims)

	// From now on the workload's ready pods must never drop below its replicas, and what an HPA
	// counts (the ready pods its target's selector matches) never rise above them.
	stopWatch := watchMinReady(c, ns, labels, replicas)
	stopHPAView := watchHPAView(c, ns, labels, "web")

	// Move back: every replica on a real node, nothing left spilled or held.
	moveStart := time.Now()
	waitMovedBack(t, c, ns, labels, replicas, "virtual-kubelet-spill")
	minReady, samples := stopWatch()
	checkHPAView(t, stopHPAView(), replicas)
	t.Logf("moved back %s after the spill (nodes boot in 60 s); ready pods never fell below %d over %d samples", time.Since(moveStart).Round(100*time.Millisecond), minReady, samples)
	if minReady < replicas {
		t.Errorf("the workload's ready pods fell to %d during the move back, below its %d replicas", minReady, replicas)
	}
	if n := a.metric(t, "lockstep_node_autoscaler_move_back_total", map[string]string{"step": "evicted"}); n < replicas {
		t.Errorf("move-back evictions counted: %v, want %d", n, replicas)
	}
	// The nodes launched for the pods were kept: none was consolidated away while the pods were
	// on serverless capacity.
	now := nodeClaimNames(t, c)
	for name := range claims {
		if !now[name] {
			t.Errorf("NodeClaim %s launched for the spilled pods was removed before they moved back", name)
		}
	}
}

// checkSpilledPods checks the spilled label, time and deletion cost on the workload's pods.
func checkSpilledPods(t *testing.T, c client.Client, ns string, labels map[string]string) {
	t.Helper()
	pods, err := workloadPods(context.Background(), c, ns, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Labels[spill.SpilledLabel] != "true" || p.Annotations[spill.PodDeletionCostAnnotation] != spill.SpilledDeletionCost || p.Annotations[spill.SpilledAtAnnotation] == "" {
			t.Errorf("spilled pod %s lacks the spilled label, the spill time or the low deletion cost: labels %v annotations %v", p.Name, p.Labels, p.Annotations)
		}
	}
}

// checkHPAView: an HPA would never have counted more ready pods than the replicas, and every
// released pod served through its own EndpointSlice.
func checkHPAView(t *testing.T, view hpaView, replicas int) {
	t.Helper()
	t.Logf("what the HPA counts: at most %d ready pods over %d samples; %d released pods seen, kept in the Service by their own EndpointSlice in %d of %d samples",
		view.mostCounted, view.samples, len(view.released), view.releasedServed, view.releasedSamples)
	if view.mostCounted > replicas {
		t.Errorf("an HPA on this Deployment would have counted %d ready pods during the move back, above its %d replicas", view.mostCounted, replicas)
	}
	if len(view.released) == 0 || view.releasedServed != view.releasedSamples {
		t.Errorf("released pods seen %d; in their Service's EndpointSlices in %d of %d samples, want all", len(view.released), view.releasedServed, view.releasedSamples)
	}
}

// hpaView is what watchHPAView saw.
type hpaView struct {
	mostCounted, samples            int
	released                        map[string]bool
	releasedSamples, releasedServed int
}

// watchHPAView samples, every 50 ms until the returned function is called, what an HPA on the
// workload counts (its ready pods that selector matches as they are labelled now), and whether
// each released pod that still serves is in an EndpointSlice of the Service, ready.
func watchHPAView(c client.Client, ns string, selector map[string]string, service string) func() hpaView {
	var mu sync.Mutex
	v := hpaView{released: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// Pods, then slices, then pods again: a released pod counts only if it served in both
			// reads (its slices are created before the release and deleted after the eviction).
			var pods, again corev1.PodList
			var slices discoveryv1.EndpointSliceList
			if c.List(ctx, &pods, client.InNamespace(ns)) == nil && c.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}) == nil &&
				c.List(ctx, &again, client.InNamespace(ns)) == nil {
				stillServing := map[string]bool{}
				for _, p := range again.Items {
					stillServing[p.Name] = p.DeletionTimestamp == nil && ready(&p)
				}
				inSlices := map[string]bool{}
				for _, s := range slices.Items {
					for _, e := range s.Endpoints {
						if e.Conditions.Ready != nil && *e.Conditions.Ready && len(e.Addresses) > 0 {
							inSlices[e.Addresses[0]] = true
						}
					}
				}
				counted := 0
				mu.Lock()
				for _, p := range pods.Items {
					if p.DeletionTimestamp != nil || !ready(&p) {
						continue
					}
					if selects(selector, p.Labels) {
						counted++
					}
					if p.Annotations[spill.ReleasedLabelAnnotation] != "" && stillServing[p.Name] {
						v.released[p.Name] = true
						v.releasedSamples++
						if inSlices[p.Status.PodIP] {
							v.releasedServed++
						}
					}
				}
				v.mostCounted, v.samples = max(v.mostCounted, counted), v.samples+1
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() hpaView {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return v
	}
}

// watchMinReady samples the workload's ready pods every 50 ms until the returned function is
// called, which reports the fewest seen and the number of samples.
func watchMinReady(c client.Client, ns string, labels map[string]string, start int) func() (int, int) {
	var mu sync.Mutex
	minReady, samples := start, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pods, err := workloadPods(ctx, c, ns, labels)
			if err == nil {
				n := 0
				for _, p := range pods {
					if ready(&p) && p.DeletionTimestamp == nil {
						n++
					}
				}
				mu.Lock()
				minReady, samples = min(minReady, n), samples+1
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return minReady, samples
	}
}

// waitMovedBack waits until every replica is ready on a real node with nothing left spilled or
// held.
func waitMovedBack(t *testing.T, c client.Client, ns string, labels map[string]string, replicas int, virtualNode string) {
	t.Helper()
	framework.Eventually(t, 3*time.Minute, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns, labels)
		if err != nil {
			return err
		}
		onReal, spilled := 0, 0
		for _, p := range pods {
			if p.Labels[spill.SpilledLabel] != "" {
				spilled++
			}
			if ready(&p) && p.Spec.NodeName != "" && p.Spec.NodeName != virtualNode {
				onReal++
			}
		}
		var holds corev1.PodList
		if err := c.List(ctx, &holds, client.InNamespace(ns), client.HasLabels{spill.HoldForLabel}); err != nil {
			return err
		}
		if onReal != replicas || spilled != 0 || len(holds.Items) != 0 {
			return fmt.Errorf("%d of %d pods ready on real nodes, %d still spilled, %d placeholders left", onReal, replicas, spilled, len(holds.Items))
		}
		return nil
	})
}

// deployment is a Deployment of pods requesting cpu each.
func deployment(ns, name string, labels map[string]string, replicas int32, cpu string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "app", Image: "registry.example/app:1",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("256Mi"),
						}},
					}},
					TerminationGracePeriodSeconds: ptr.To[int64](0),
				},
			},
		},
	}
}

// workloadPods lists the workload's pods: those labels select, and those released to move back
// that they selected before the release took a label off (spill.ReleasedLabelAnnotation).
func workloadPods(ctx context.Context, c client.Client, ns string, labels map[string]string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		have := map[string]string{}
		for k, v := range p.Labels {
			have[k] = v
		}
		if k, v, ok := strings.Cut(p.Annotations[spill.ReleasedLabelAnnotation], "="); ok {
			have[k] = v
		}
		if selects(labels, have) {
			out = append(out, p)
		}
	}
	return out, nil
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeClaimNames(t testing.TB, c client.Client) map[string]bool {
	t.Helper()
	var list karpv1.NodeClaimList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, nc := range list.Items {
		if nc.DeletionTimestamp == nil {
			out[nc.Name] = true
		}
	}
	return out
}

// expectEvent waits for an event with reason in ns.
func expectEvent(t testing.TB, c client.Client, ns, reason string) {
	t.Helper()
	framework.Eventually(t, 20*time.Second, func(ctx context.Context) error {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event in %s", reason, ns)
	})
}

// cleanupPool deletes the NodePool and waits for its NodeClaims to go while the autoscaler still
// runs (registered after startAutoscaler, so it runs before the process stops).
func cleanupPool(t testing.TB, c client.Client, pool string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.Delete(ctx, &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: pool}})
		for ctx.Err() == nil {
			var list karpv1.NodeClaimList
			if err := c.List(ctx, &list, client.MatchingLabels{karpv1.NodePoolLabelKey: pool}); err == nil && len(list.Items) == 0 {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("NodeClaims of pool %s still present after a minute", pool)
	})
}

// dumpOnFailure logs, when the test has failed, where the namespace's pods and placeholders are,
// the NodeClaims and nodes, and the spill controllers' log lines: what a move-back that stalled
// in CI needs to be understood. Registered after cleanupPool, it runs before the pool goes.
func dumpOnFailure(t *testing.T, c client.Client, ns, autoscaler string) {
	t.Helper()
	logPath := framework.Env(t).LogPath(autoscaler)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx := context.Background()
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Logf("listing pods: %v", err)
		}
		for _, p := range pods.Items {
			owner := "-"
			if ref := metav1.GetControllerOf(&p); ref != nil {
				owner = ref.Kind + "/" + ref.Name
			}
			t.Logf("pod %s: node=%q nominated=%q phase=%s ready=%t deleting=%t controller=%s labels=%v annotations=%v",
				p.Name, p.Spec.NodeName, p.Status.NominatedNodeName, p.Status.Phase, ready(&p), p.DeletionTimestamp != nil, owner, p.Labels, p.Annotations)
		}
		var claims karpv1.NodeClaimList
		if err := c.List(ctx, &claims); err != nil {
			t.Logf("listing NodeClaims: %v", err)
		}
		for _, nc := range claims.Items {
			conds := []string{}
			for _, cond := range nc.Status.Conditions {
				conds = append(conds, cond.Type+"="+string(cond.Status))
			}
			t.Logf("NodeClaim %s: node=%q deleting=%t conditions=%v", nc.Name, nc.Status.NodeName, nc.DeletionTimestamp != nil, conds)
		}
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			t.Logf("listing nodes: %v", err)
		}
		for _, n := range nodes.Items {
			t.Logf("node %s: ready=%t unschedulable=%t taints=%v", n.Name, testbed.NodeReady(&n), n.Spec.Unschedulable, n.Spec.Taints)
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Logf("reading %s: %v", logPath, err)
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "lockstep.") {
				t.Log(line)
			}
		}
	})
}
