package timeline

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
)

var tiers = []Tier{{Name: "ingress", Workload: "gateway"}, {Name: "service", Workload: "checkout"}}

func pod(name, app, node string, phase corev1.PodPhase, cpu string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
		}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func deploy(name string, replicas int32) appsv1.Deployment {
	return appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
	}}
}

func hpa(name string, desired int32) autoscalingv2.HorizontalPodAutoscaler {
	return autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: desired}}
}

func node(name string, ready bool, labels map[string]string) corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}}}
}

func TestObserve(t *testing.T) {
	gone := pod("checkout-gone", "checkout", "n1", corev1.PodRunning, "500m")
	gone.DeletionTimestamp = &metav1.Time{}
	// Released from its ReplicaSet by node-autoscaler, still serving from the virtual node.
	moving := pod("checkout-b", "checkout", "vk", corev1.PodRunning, "500m")
	moving.Annotations = map[string]string{spill.MovingBackAnnotation: "2026-12-01T10:00:00Z", spill.ReleasedLabelAnnotation: "app=checkout"}
	delete(moving.Labels, "app") // taken off by the release; it still serves checkout
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	readyFor := func(p corev1.Pod, d time.Duration) corev1.Pod {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-d))}}
		return p
	}
	c := Cluster{
		Now:         now,
		Deployments: []appsv1.Deployment{deploy("gateway", 2), deploy("checkout", 4)},
		HPAs:        []autoscalingv2.HorizontalPodAutoscaler{hpa("gateway", 2), hpa("checkout", 5)},
		Pods: []corev1.Pod{
			pod("gateway-a", "gateway", "n1", corev1.PodRunning, "250m"),
			pod("gateway-b", "gateway", "n2", corev1.PodRunning, "250m"),
			// Ready long enough with nothing serving it: unserved; one just Ready is starting.
			readyFor(pod("checkout-a", "checkout", "n1", corev1.PodRunning, "500m"), UnservedGrace),
			readyFor(pod("checkout-e", "checkout", "n2", corev1.PodRunning, "500m"), time.Second),
			moving,
			pod("checkout-c", "checkout", "", corev1.PodPending, "500m"),
			pod("checkout-d", "checkout", "n2", corev1.PodSucceeded, "500m"),
			pod("batch", "batch", "n1", corev1.PodRunning, "2"),
			gone,
		},
		Nodes:  []corev1.Node{node("n1", true, nil), node("n2", false, nil), node("vk", true, map[string]string{VirtualNodeLabel: VirtualNodeValue})},
		Backed: map[string]bool{"gateway-a": true, "gateway-b": true, "checkout-b": true, "checkout-gone": true},
	}
	got := Observe(7, tiers, c, Load{Rate: 100, Sent: 100, OK: 97, Failed: 1, Errors: 1, Dropped: 1, P50: 1500 * time.Microsecond, P99: 250 * time.Millisecond})
	want := Sample{
		Second: 7,
		Tiers: map[string]TierSample{
			"ingress": {Desired: 2, Replicas: 2, Running: 2, Backed: 2, CPURequest: 0.5},
			"service": {Desired: 5, Replicas: 4, Running: 3, Backed: 1, Unserved: 1, Pending: 1, Serverless: 1, MovingBack: 1, CPURequest: 1, ServerlessCPURequest: 0.5},
		},
		Nodes: 2, NodesReady: 1,
		Load: Load{Rate: 100, Sent: 100, OK: 97, Failed: 1, Errors: 1, Dropped: 1, P50: 1500 * time.Microsecond, P99: 250 * time.Millisecond},
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("Observe:\n got %s\nwant %s", gb, wb)
	}

	// An HPA that has decided nothing yet (no metrics) leaves the Deployment's replicas.
	c.HPAs[1].Status.DesiredReplicas = 0
	if got := Observe(8, tiers, c, Load{}); got.Tiers["service"].Desired != 4 {
		t.Fatalf("an HPA without a decision: desired %d, want the Deployment's 4", got.Tiers["service"].Desired)
	}

	// A tier whose Deployment is missing counts no pods and no replicas.
	empty := Observe(0, tiers, Cluster{Pods: c.Pods}, Load{})
	if empty.Tiers["service"] != (TierSample{}) {
		t.Fatalf("without its Deployment: %+v", empty.Tiers["service"])
	}
}

// sample is a side's second with each tier's desired and backed replicas.
func sample(second int, gwDesired, gwBacked, coDesired, coBacked int32, p99 float64) Sample {
	return Sample{Second: second, Load: Load{P99: time.Duration(p99 * float64(time.Millisecond))}, Tiers: map[string]TierSample{
		"ingress": {Desired: gwDesired, Backed: int(gwBacked), CPURequest: 0.25 * float64(gwBacked)},
		"service": {Desired: coDesired, Backed: int(coBacked), CPURequest: 0.5 * float64(coBacked)},
	}}
}

func TestSummarize(t *testing.T) {
	// The step runs from second 2 to second 6.
	phases := []Phase{{Name: "baseline", From: 0, To: 2}, {Name: StepPhase, From: 2, To: 6}, {Name: "back", From: 6, To: 8}}
	lockstep := Side{Name: "lockstep", StepLoad: Load{Sent: 400, OK: 399, Dropped: 1, P99: 180 * time.Millisecond}, Events: []Event{
		{Second: 2, Reason: EventResized, What: "service checkout-a resized 1 cores"},
		{Second: 3, Reason: "started", What: "service checkout-c started"},
		{Second: 6, Reason: EventMovedBack, What: "checkout-b evicted from serverless capacity"},
		{Second: 7, Reason: EventResized, What: "service checkout-a resized 0.5 cores"},
	}, Samples: []Sample{
		// Floors raised ahead: the ingress tier is at its peak before the step.
		sample(0, 4, 4, 8, 8, 20), sample(1, 4, 4, 8, 8, 20),
		sample(2, 4, 4, 8, 8, 90), sample(3, 4, 4, 10, 8, 300), sample(4, 4, 4, 10, 10, 100), sample(5, 4, 4, 10, 10, 50),
		sample(6, 4, 4, 10, 10, 20), sample(7, 2, 2, 2, 2, 20),
	}}
	lockstep.Samples[1].Tiers["service"] = TierSample{Desired: 8, Backed: 8, Serverless: 3, CPURequest: 2.5, ServerlessCPURequest: 1.5}
	baseline := Side{Name: "baseline", StepLoad: Load{Sent: 400, OK: 300, Failed: 50, Errors: 50, P99: 2 * time.Second}, Samples: []Sample{
		sample(0, 2, 2, 2, 2, 20), sample(1, 2, 2, 2, 2, 20),
		sample(2, 2, 2, 2, 2, 900), sample(3, 2, 2, 2, 2, 2000), sample(4, 2, 2, 6, 2, 2000), sample(5, 2, 2, 9, 3, 1500),
		sample(6, 2, 2, 9, 5, 400), sample(7, 2, 2, 9, 9, 30),
	}}
	tl := &Timeline{Tiers: tiers, Phases: phases, SLOMillis: 250, Sides: []Side{lockstep, baseline}}
	sum, err := Summarize(tl, Prices{CoreHour: 3600, ServerlessCoreHour: 7200})
	if err != nil {
		t.Fatal(err)
	}
	if sum.StepFrom != 2 || sum.StepTo != 6 || len(sum.Sides) != 2 {
		t.Fatalf("summary: %+v", sum)
	}
	ls, bl := sum.Sides[0], sum.Sides[1]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"lockstep peaks", ls.Peak, map[string]int32{"ingress": 4, "service": 10}},
		{"lockstep decided", ls.DecidedAfter, map[string]int{"ingress": 0, "service": 1}},
		{"lockstep all decided", ls.AllDecidedAfter, 1},
		{"lockstep served", ls.ServedAfter, 2},
		{"lockstep over SLO", ls.OverSLOSec, 1},
		{"lockstep step", [3]any{ls.StepSent, ls.StepBad, ls.StepP99Ms}, [3]any{400, 1, 180.0}},
		{"lockstep serverless", [2]int{ls.ServerlessPodSeconds, ls.ServerlessPeak}, [2]int{3, 3}},
		{"lockstep moved back and resized", [2]int{ls.MovedBack, ls.Resizes}, [2]int{1, 2}},
		{"baseline moved back and resized", [2]int{bl.MovedBack, bl.Resizes}, [2]int{0, 0}},
		// Cores on nodes: 1 core of gateways for 7 s + 0.5 at the end, checkout's halves.
		{"lockstep cost", ls.Cost, ls.CoreSeconds + 2*ls.ServerlessCoreSeconds},
		{"lockstep serverless cores", ls.ServerlessCoreSeconds, 1.5},
		// The baseline's service tier decides late and is served only after the step.
		{"baseline decided", bl.DecidedAfter, map[string]int{"ingress": 0, "service": 3}},
		{"baseline served", bl.ServedAfter, 5},
		{"baseline over SLO", bl.OverSLOSec, 4},
		{"baseline bad", bl.StepBad, 100},
	} {
		gb, _ := json.Marshal(c.got)
		wb, _ := json.Marshal(c.want)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s: got %s, want %s", c.name, gb, wb)
		}
	}

	// With a node price, nodes are what a side pays for on nodes: 2 nodes for 8 samples.
	for i := range lockstep.Samples {
		lockstep.Samples[i].Nodes = 2
	}
	sum, err = Summarize(&Timeline{Tiers: tiers, Phases: phases, Sides: []Side{lockstep}}, Prices{NodeHour: 3600, CoreHour: 1e9, ServerlessCoreHour: 7200})
	if err != nil || sum.Sides[0].NodeSeconds != 16 || sum.Sides[0].Cost != 16+2*1.5 {
		t.Fatalf("priced by node: %+v, %v", sum.Sides[0], err)
	}

	// Pods answering before the HPA decided its peak (a pod moving back and its replacement both
	// serve) do not count as served: the peak was decided at second 4, served at second 5.
	early := Side{Name: "early", Samples: []Sample{
		sample(2, 2, 2, 8, 8, 0), sample(3, 2, 2, 8, 10, 0), sample(4, 2, 2, 10, 9, 0), sample(5, 2, 2, 10, 10, 0),
	}}
	sum, err = Summarize(&Timeline{Tiers: tiers, Phases: phases, Sides: []Side{early}}, Prices{})
	if err != nil || sum.Sides[0].AllDecidedAfter != 2 || sum.Sides[0].ServedAfter != 3 {
		t.Fatalf("served before decided: %+v, %v", sum.Sides[0], err)
	}

	// A tier that never reaches its peak's pods within the run.
	never := Side{Name: "never", Samples: []Sample{sample(2, 2, 2, 9, 3, 0), sample(5, 2, 2, 9, 4, 0)}}
	sum, err = Summarize(&Timeline{Tiers: tiers, Phases: phases, Sides: []Side{never}}, Prices{})
	if err != nil || sum.Sides[0].ServedAfter != -1 {
		t.Fatalf("never served: %+v, %v", sum, err)
	}

	if _, err := Summarize(&Timeline{Phases: phases[:1]}, Prices{}); err == nil {
		t.Fatal("a load without a step phase was summarized")
	}
}

func TestOutput(t *testing.T) {
	tl := &Timeline{Tiers: tiers, Phases: []Phase{{Name: StepPhase, From: 0, To: 1}}, SLOMillis: 250, Sides: []Side{
		{Name: "lockstep", Samples: []Sample{sample(0, 2, 2, 4, 4, 20)}},
		{Name: "baseline", Samples: []Sample{sample(0, 2, 2, 2, 1, 900)}},
	}}
	sum, err := Summarize(tl, Prices{CoreHour: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintSummary(&out, sum, tiers, 250); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lockstep", "baseline", "service HPA decided its peak", "already there (4 replicas)", "never", "seconds over the 250 ms SLO"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}
	path := filepath.Join(t.TempDir(), "timeline.json")
	if err := WriteJSON(path, tl, sum); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Summary  Summary  `json:"summary"`
		Timeline Timeline `json:"timeline"`
	}
	if err := json.Unmarshal(b, &back); err != nil || len(back.Timeline.Sides) != 2 || back.Summary.Sides[1].ServedAfter != -1 {
		t.Fatalf("read back: %+v, %v", back, err)
	}
}

// A slow sampling round leaves a second without a sample: Join fills it from the latest sample
// before it, so per-second sums count every second once, each with its own load.
func TestJoin(t *testing.T) {
	samples := []Sample{sample(3, 2, 2, 4, 4, 0), sample(0, 2, 2, 2, 2, 0), sample(1, 2, 2, 3, 3, 0), sample(1, 2, 2, 9, 9, 0)}
	loads := map[int]Load{0: {Sent: 10}, 1: {Sent: 11}, 2: {Sent: 12}, 3: {Sent: 13}}
	got := Join(samples, loads)
	if len(got) != 4 {
		t.Fatalf("%d samples, want one for each of seconds 0 to 3", len(got))
	}
	for i, want := range []struct {
		desired int32
		sent    int
	}{{2, 10}, {9, 11}, {9, 12}, {4, 13}} {
		if got[i].Second != i || got[i].Tiers["service"].Desired != want.desired || got[i].Sent != want.sent {
			t.Errorf("second %d: %+v, want desired %d and %d sent", i, got[i], want.desired, want.sent)
		}
	}
	if Join(nil, loads) != nil {
		t.Error("no samples joined into some")
	}
}

// A side that could not be read in some round has figures too small to report.
func TestSummarizeRefusesUnservedPods(t *testing.T) {
	smp := sample(3, 2, 2, 2, 2, 0)
	ts := smp.Tiers["service"]
	ts.Unserved = 1
	smp.Tiers["service"] = ts
	tl := &Timeline{Tiers: tiers, Phases: []Phase{{Name: StepPhase, From: 0, To: 4}},
		Sides: []Side{{Name: "lockstep", Samples: []Sample{sample(2, 2, 2, 2, 2, 0), smp}}}}
	if _, err := Summarize(tl, Prices{}); err == nil || !strings.Contains(err.Error(), "1 pod-seconds Ready with nothing serving them (first at second 3)") {
		t.Fatalf("err %v", err)
	}
}

func TestSummarizeRefusesMissedSamples(t *testing.T) {
	tl := &Timeline{Tiers: tiers, Phases: []Phase{{Name: StepPhase, From: 0, To: 1}},
		Sides: []Side{{Name: "lockstep", SampleErrors: 2, Samples: []Sample{sample(0, 2, 2, 2, 2, 0)}}}}
	if _, err := Summarize(tl, Prices{}); err == nil || !strings.Contains(err.Error(), "2 sampling rounds failed") {
		t.Fatalf("err %v", err)
	}
}
