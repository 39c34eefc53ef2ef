package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/components"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
	"github.com/lockstep-dev/lockstep/vpa-inplace/controller"
)

// What the updater's decisions depend on survives a leader change: two vpa-inplace processes
// (updaters only, recommendations written by the test) hand over between a start-up boost and
// its revert, and again between a resize and a decrease its cooldown must hold back.
func TestStateSurvivesLeaderChange(t *testing.T) {
	c := setup(t)
	env := framework.Env(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	flags := []string{"--leader-elect=true", "--leader-election-namespace=" + ns, "--recommender=false",
		"--recommender-name=failover", "--resync=2s", "--downscale-cooldown=30s",
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms"}
	start := func(name string) *testbed.Process {
		t.Helper()
		p, err := components.RunVPAInplace(env, "../..", name, flags...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	stop := func(p *testbed.Process) {
		t.Helper()
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	a := start("vpa-inplace-failover-a")
	create(t, c, vpaFor(ns, "failover", vpav1.UpdateModeInPlace, func(v *vpav1.VerticalPodAutoscaler) {
		v.Spec.Recommenders = []*vpav1.VerticalPodAutoscalerRecommenderSelector{{Name: "failover"}}
		v.Spec.StartupBoost = &vpav1.StartupBoost{CPU: &vpav1.GenericStartupBoost{Type: vpav1.FactorStartupBoostType, Factor: ptr.To[int32](3), DurationSeconds: ptr.To[int32](20)}}
	}))
	recommend(t, c, ns, "failover", "100m")
	create(t, c, deployment(ns, "failover", 1, "100m", "200Mi", nil))

	// The first leader boosts the new pod.
	waitCPU(t, c, ns, "failover", 300, time.Minute)
	if st := podState(t, c, ns, "failover"); !st.Boost.Active {
		t.Fatalf("state on the boosted pod %+v, want an active boost", st)
	}
	// A leader change between boost and revert: the new leader reverts once Ready has held.
	stop(a)
	b := start("vpa-inplace-failover-b")
	waitCPU(t, c, ns, "failover", 100, 90*time.Second)
	if st := podState(t, c, ns, "failover"); st.Boost.Active || st.Boost.Start == "" {
		t.Fatalf("state after the revert %+v, want the boost recorded and inactive", st)
	}
	// It grows the pod; after another leader change the next leader honours the cooldown.
	recommend(t, c, ns, "failover", "400m")
	waitCPU(t, c, ns, "failover", 400, time.Minute)
	grown := time.Now()
	stop(b)
	start("vpa-inplace-failover-c")
	recommend(t, c, ns, "failover", "100m")
	framework.Consistently(t, time.Until(grown.Add(25*time.Second)), func(ctx context.Context) error {
		return cpuIs(ctx, c, ns, "failover", 400)
	})
	// Then it does act: the decrease goes through once the cooldown is over.
	waitCPU(t, c, ns, "failover", 100, time.Minute)
}

// recommend writes the VPA's CPU target (the test plays the recommender).
func recommend(t *testing.T, c client.Client, ns, name, cpu string) {
	t.Helper()
	rec := vpav1.RecommendedPodResources{ContainerRecommendations: []vpav1.RecommendedContainerResources{{ContainerName: "app", Target: rl(cpu, "128Mi")}}}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"recommendation": rec}})
	if err != nil {
		t.Fatal(err)
	}
	v := &vpav1.VerticalPodAutoscaler{}
	v.Namespace, v.Name = ns, name
	if err := c.Status().Patch(context.Background(), v, client.RawPatch(types.MergePatchType, body)); err != nil {
		t.Fatal(err)
	}
}

// waitCPU waits until the Deployment's one running pod asks for and reports milli CPU.
func waitCPU(t *testing.T, c client.Client, ns, app string, milli int64, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, timeout, func(ctx context.Context) error { return cpuIs(ctx, c, ns, app, milli) })
}

func cpuIs(ctx context.Context, c client.Client, ns, app string, milli int64) error {
	pods, err := runningPods(ctx, c, ns, app)
	if err != nil {
		return err
	}
	if len(pods) != 1 {
		return fmt.Errorf("%d running pods, want 1", len(pods))
	}
	if got, reported := cpuRequest(&pods[0]), statusCPURequest(&pods[0]); got != milli || reported != milli {
		return fmt.Errorf("pod asks for %dm and reports %dm, want %dm", got, reported, milli)
	}
	return nil
}

// stateView is what the test reads of the updater's state annotation.
type stateView struct {
	Boost struct {
		Start  string `json:"start"`
		Active bool   `json:"active"`
	} `json:"boost"`
}

// podState reads the updater's state annotation of the Deployment's one running pod.
func podState(t *testing.T, c client.Client, ns, app string) stateView {
	t.Helper()
	var st stateView
	pods, err := runningPods(context.Background(), c, ns, app)
	if err != nil || len(pods) != 1 {
		t.Fatalf("%d running pods (err %v), want 1", len(pods), err)
	}
	if err := json.Unmarshal([]byte(pods[0].Annotations[controller.StateAnnotation]), &st); err != nil {
		t.Fatalf("state annotation %q: %v", pods[0].Annotations[controller.StateAnnotation], err)
	}
	return st
}
