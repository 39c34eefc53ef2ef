package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// TestWithinBudgetWaitsForNode: nodes boot in 5 s and the namespace allows a minute, so the pods
// wait for Karpenter's node instead of spilling.
func TestWithinBudgetWaitsForNode(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	var nsObj corev1.Namespace
	if err := c.Get(context.Background(), client.ObjectKey{Name: ns}, &nsObj); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(nsObj.DeepCopy())
	nsObj.Annotations = map[string]string{spill.BudgetAnnotation: "1m"}
	if err := c.Patch(context.Background(), &nsObj, patch); err != nil {
		t.Fatal(err)
	}
	addVirtualNode(t, c, "virtual-kubelet-budget")
	addPool(t, c, "boot5", 5*time.Second, "64")
	a := startAutoscaler(t, "node-autoscaler-budget", ns, "--spill-budget=1s", "--default-boot-time=5s")
	cleanupPool(t, c, "boot5")

	labels := map[string]string{"app": "api"}
	if err := c.Create(context.Background(), deployment(ns, "api", labels, 3, "1")); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		pods, err := workloadPods(ctx, c, ns, labels)
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			if p.Labels[spill.SpilledLabel] != "" || p.Spec.NodeName == "virtual-kubelet-budget" {
				t.Fatalf("pod %s spilled although its namespace allows a minute and nodes boot in 5 s", p.Name)
			}
			if ready(&p) {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d of 3 pods ready on Karpenter's node", n)
		}
		return nil
	})
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"action": "wait", "reason": spill.ReasonWithinBudget}); n == 0 {
		t.Error("no wait decision counted")
	}
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"action": "spill"}); n != 0 {
		t.Errorf("%v spill decisions counted, want none", n)
	}
}

// TestPodsThatMustNotSpill: an opted-out pod, a pod with a host port and a DaemonSet-like pod stay
// pending while nodes boot; the host-port pod's event says why it cannot spill; a plain pod beside
// them spills.
func TestPodsThatMustNotSpill(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	addVirtualNode(t, c, "virtual-kubelet-nospill")
	addPool(t, c, "boot90", 90*time.Second, "64")
	a := startAutoscaler(t, "node-autoscaler-nospill", ns, "--spill-budget=2s", "--move-back=false")
	cleanupPool(t, c, "boot90")

	pods := map[string]func(*corev1.Pod){
		"opted-out": func(p *corev1.Pod) { p.Annotations = map[string]string{spill.SpillAnnotation: "false"} },
		"host-port": func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		},
		"plain": func(*corev1.Pod) {},
	}
	for name, mod := range pods {
		d := deployment(ns, name, nil, 1, "1")
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"pod": name}}, Spec: d.Spec.Template.Spec}
		mod(p)
		if err := c.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plain"}, &p); err != nil {
			return err
		}
		if !ready(&p) || p.Spec.NodeName != "virtual-kubelet-nospill" {
			return fmt.Errorf("plain pod not ready on the virtual node (node %q)", p.Spec.NodeName)
		}
		return nil
	})
	expectEvent(t, c, ns, "SpillImpossible")
	framework.Consistently(t, 5*time.Second, func(ctx context.Context) error {
		for _, name := range []string{"opted-out", "host-port"} {
			var p corev1.Pod
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
				return err
			}
			if p.Spec.NodeName != "" || p.Labels[spill.SpilledLabel] != "" || len(p.Spec.Tolerations) > 2 {
				return fmt.Errorf("pod %s was spilled or placed: node %q labels %v", name, p.Spec.NodeName, p.Labels)
			}
		}
		return nil
	})
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"action": "cannot_spill", "reason": spill.ReasonHostPort}); n == 0 {
		t.Error("no cannot_spill/HostPort decision counted")
	}
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"reason": spill.ReasonOptedOut}); n == 0 {
		t.Error("no OptedOut decision counted")
	}
}

// TestHoldIsBounded: with move-back off and a 20 s hold, the placeholder keeps the new node only
// for the hold's length; then it goes and Karpenter consolidates the node it no longer needs
// (the spilled pod stays on serverless capacity).
func TestHoldIsBounded(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	addVirtualNode(t, c, "virtual-kubelet-hold")
	addPool(t, c, "boot10", 10*time.Second, "64")
	startAutoscaler(t, "node-autoscaler-hold", ns, "--spill-budget=1s", "--default-boot-time=10s", "--move-back=false", "--hold-duration=25s")
	cleanupPool(t, c, "boot10")

	labels := map[string]string{"app": "batch"}
	if err := c.Create(context.Background(), deployment(ns, "batch", labels, 2, "1")); err != nil {
		t.Fatal(err)
	}
	// The holds land on Karpenter's node, which stays while they hold.
	var node string
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		var holds corev1.PodList
		if err := c.List(ctx, &holds, client.InNamespace(ns), client.HasLabels{spill.HoldForLabel}); err != nil {
			return err
		}
		for _, h := range holds.Items {
			if h.Status.Phase == corev1.PodRunning {
				node = h.Spec.NodeName
				return nil
			}
		}
		return fmt.Errorf("no placeholder running yet (%d placeholders)", len(holds.Items))
	})
	spilledAt := time.Now()
	t.Logf("placeholder runs on %s", node)
	// Then the holds expire and the node, now empty, is consolidated.
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		var holds corev1.PodList
		if err := c.List(ctx, &holds, client.InNamespace(ns), client.HasLabels{spill.HoldForLabel}); err != nil {
			return err
		}
		var n corev1.Node
		err := c.Get(ctx, client.ObjectKey{Name: node}, &n)
		if len(holds.Items) == 0 && err != nil && client.IgnoreNotFound(err) == nil {
			return nil
		}
		return fmt.Errorf("%d placeholders left, node %s still there (%w)", len(holds.Items), node, err)
	})
	if held := time.Since(spilledAt); held < 10*time.Second {
		t.Errorf("the node went after %s, before the hold ended", held)
	}
	pods, err := workloadPods(context.Background(), c, ns, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if !ready(&p) || p.Spec.NodeName != "virtual-kubelet-hold" {
			t.Errorf("pod %s should stay ready on the virtual node with move-back off (node %q)", p.Name, p.Spec.NodeName)
		}
	}
	expectEvent(t, c, ns, "HoldExpired")
}
