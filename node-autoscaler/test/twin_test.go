package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// TestSpreadWorkloadMovesBack: a Deployment spread over zones (maxSkew 1) spills onto a virtual
// node of one zone while nodes boot. Its placeholders hold room only in the zones where a
// replacement keeps the skew, so every pod moves back within the spread, each spilled once (no
// respill loop), and with --max-moves-per-workload=1 never more than one pod is released at a
// time, though the placeholders become ready together.
func TestSpreadWorkloadMovesBack(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	addZonalVirtualNode(t, c, "virtual-kubelet-zonal", "test-zone-a")
	addPool(t, c, "zonal", 15*time.Second, "64", "c-4x-amd64-linux")
	a := startAutoscaler(t, "node-autoscaler-zonal", ns, "--spill-budget=1s", "--default-boot-time=15s",
		"--move-back-after=5s", "--max-moves-per-workload=1")
	cleanupPool(t, c, "zonal")
	dumpOnFailure(t, c, ns, "node-autoscaler-zonal")

	const replicas = 3
	labels := map[string]string{"app": "spread"}
	dep := deployment(ns, "spread", labels, replicas, "1")
	dep.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
	}}
	stopReleased := watchMaxReleased(c, ns, labels)
	if err := c.Create(context.Background(), dep); err != nil {
		t.Fatal(err)
	}
	waitMovedBack(t, c, ns, labels, replicas, "virtual-kubelet-zonal")
	if most, samples := stopReleased(); most > 1 {
		t.Errorf("%d pods were released at once (over %d samples), bound 1", most, samples)
	}
	pods, err := workloadPods(context.Background(), c, ns, labels)
	if err != nil {
		t.Fatal(err)
	}
	// The spread holds as kube-scheduler counts it: over the zones of the nodes there are.
	zones := map[string]int{}
	var nodes corev1.NodeList
	if err := c.List(context.Background(), &nodes); err != nil {
		t.Fatal(err)
	}
	zoneOf := map[string]string{}
	for _, n := range nodes.Items {
		if z, ok := n.Labels[corev1.LabelTopologyZone]; ok {
			zoneOf[n.Name], zones[z] = z, 0
		}
	}
	for _, p := range pods {
		zones[zoneOf[p.Spec.NodeName]]++
	}
	most, fewest := 0, replicas
	for _, n := range zones {
		most, fewest = max(most, n), min(fewest, n)
	}
	if most-fewest > 1 {
		t.Errorf("pods by zone %v: skew %d, the Deployment allows 1", zones, most-fewest)
	}
	t.Logf("moved back; pods by zone %v", zones)
	if n := a.metric(t, "lockstep_node_autoscaler_spill_decisions_total", map[string]string{"action": "spill"}); n != replicas {
		t.Errorf("%v spill decisions, want %d: a replacement that did not fit its placeholder's room spilled again", n, replicas)
	}
}

// TestHoldNotRunningIsReported: a placeholder no node can be launched for (the pool's CPU limit
// is 0) is reported once, with why, after --hold-start-timeout.
func TestHoldNotRunningIsReported(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	addVirtualNode(t, c, "virtual-kubelet-stuck")
	addPool(t, c, "nolimit", 10*time.Second, "0")
	a := startAutoscaler(t, "node-autoscaler-stuck", ns, "--spill-budget=1s", "--default-boot-time=10s", "--hold-start-timeout=5s")
	cleanupPool(t, c, "nolimit")
	labels := map[string]string{"app": "stuck"}
	if err := c.Create(context.Background(), deployment(ns, "stuck", labels, 1, "1")); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == spill.MoveReasonHoldStuck && e.Type == corev1.EventTypeWarning {
				if e.InvolvedObject.Kind != "Pod" || !strings.Contains(e.Message, "not scheduled") {
					return fmt.Errorf("event on %s %s: %q", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no %s event yet", spill.MoveReasonHoldStuck)
	})
	var holds corev1.PodList
	if err := c.List(context.Background(), &holds, client.InNamespace(ns), client.HasLabels{spill.HoldForLabel}); err != nil || len(holds.Items) != 1 {
		t.Fatalf("%d placeholders (%v), want 1", len(holds.Items), err)
	}
	if holds.Items[0].Annotations[spill.HoldNotRunningAnnotation] == "" {
		t.Errorf("placeholder not marked as reported: %v", holds.Items[0].Annotations)
	}
	// Once: one event for the pod, never repeated (other namespaces' leftovers may count in
	// the process's metric, so the metric is only checked to have counted it).
	framework.Consistently(t, 6*time.Second, func(ctx context.Context) error {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		n := 0
		for _, e := range events.Items {
			if e.Reason == spill.MoveReasonHoldStuck {
				n += max(int(e.Count), 1)
			}
		}
		if n != 1 {
			return fmt.Errorf("%d %s events, want 1", n, spill.MoveReasonHoldStuck)
		}
		return nil
	})
	if n := a.metric(t, "lockstep_node_autoscaler_holds_total", map[string]string{"event": "not_running"}); n < 1 {
		t.Errorf("%v placeholders counted not running, want at least this one", n)
	}
}

// addZonalVirtualNode is addVirtualNode in one zone, as ACK's virtual nodes are.
func addZonalVirtualNode(t testing.TB, c client.Client, name, zone string) {
	t.Helper()
	addVirtualNode(t, c, name)
	var n corev1.Node
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	n.Labels[corev1.LabelTopologyZone] = zone
	if err := c.Update(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
}

// watchMaxReleased samples, every 20 ms, how many of the workload's pods are released (moving
// back) and not yet terminating, until the returned function is called, which reports the most
// seen and the number of samples.
func watchMaxReleased(c client.Client, ns string, labels map[string]string) func() (int, int) {
	var mu sync.Mutex
	most, samples := 0, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if pods, err := workloadPods(ctx, c, ns, labels); err == nil {
				n := 0
				for _, p := range pods {
					if p.Annotations[spill.MovingBackAnnotation] != "" && p.DeletionTimestamp == nil {
						n++
					}
				}
				mu.Lock()
				most, samples = max(most, n), samples+1
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return most, samples
	}
}

// The API server takes the placeholder of a pod that uses every placement rule a placeholder
// copies (a server-side dry run): its constraints are valid pod spec, whatever the pod holds.
func TestPlaceholderOfEveryRuleIsValid(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	labels := map[string]string{"app": "rules", "pod-template-hash": "abc"}
	own := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rules"}}
	term := corev1.PodAffinityTerm{LabelSelector: own, TopologyKey: corev1.LabelHostname, MatchLabelKeys: []string{"pod-template-hash"}}
	pod := deployment(ns, "rules", labels, 1, "1").Spec.Template
	pod.Spec.Affinity = &corev1.Affinity{
		PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 10, PodAffinityTerm: term}}},
		PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution:  []corev1.PodAffinityTerm{term},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 50, PodAffinityTerm: term}},
		},
	}
	pod.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
		{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: own, MatchLabelKeys: []string{"pod-template-hash"}},
		{MaxSkew: 2, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: own},
		{MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: own},
	}
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, HostPort: 18081}}
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "key"}}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rules-1", UID: "uid-1", Labels: labels}, Spec: pod.Spec}
	cfg := spill.DefaultConfig()
	if err := c.Create(context.Background(), spill.HoldPriorityClass(cfg)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	hold := spill.Placeholder(p, cfg, time.Now())
	hold.Spec.Containers[0].Image = spill.FallbackHoldImage
	hold.OwnerReferences = nil // the dry run has no such pod to own it
	if err := c.Create(context.Background(), hold, client.DryRunAll); err != nil {
		t.Fatalf("the API server refuses the placeholder: %v", err)
	}
}
