package scenario_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/load/loadgen"
	"github.com/lockstep-dev/lockstep/test/load/scenario"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// podCIDR is this package's own loopback range, apart from other packages' tests.
const podCIDR = "127.66.0.0/16"

// repo is the repository's root, for config/crd and bin/.
var repo = filepath.Join("..", "..", "..")

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{
		ControllerManager: true, Scheduler: true, Kwok: true, Nodes: 3, KwokPodCIDR: podCIDR,
		MetricsServer: true, HPASyncPeriod: hpaSyncPeriod,
	})
}

// run is one length of the sales event.
type run struct {
	// name names the JSON and PNG files written.
	name     string
	schedule loadgen.Schedule
	// warmUpLead is how long before the step the CronHPAs raise the floors.
	warmUpLead time.Duration
}

// playSalesEvent plays the sales event on both sides at once, writes its timeline (JSON and PNG)
// and checks the behaviour, not figures: every request was sent on both sides, Lockstep's HPAs
// read their metrics through the adapter, its CronHPAs raised the floors before the step, its
// service tier had its peak's pods answering during the step, pods spilled to serverless
// capacity moved back, vpa-inplace resized checkout pods in place, and it failed fewer requests
// with a lower P99 than the baseline, which scales on CPU only and lags.
func playSalesEvent(t *testing.T, r run) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caddy, err := testbed.BinaryPath("", "caddy")
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.StartLockstep(ctx, env, repo, scenario.LockstepNamespace); err != nil {
		t.Fatal(err)
	}

	var live bytes.Buffer
	cfg := scenario.SalesEvent(env, caddy, t.TempDir(), netip.MustParsePrefix(podCIDR), r.schedule, r.warmUpLead)
	cfg.Out, cfg.Log = &live, testr.New(t)
	tl, err := scenario.Run(ctx, cfg)
	t.Logf("live view:\n%s", live.String())
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("LOCKSTEP_LOAD_OUT")
	if dir == "" {
		dir = env.LogDir
	}
	var table bytes.Buffer
	sum, png, err := scenario.Report(&table, tl, dir, r.name)
	t.Logf("summary:\n%s", table.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timeline: %s and its JSON beside it", png)

	expected := int(cfg.Schedule.Expected())
	for _, s := range tl.Sides {
		sent := 0
		for _, smp := range s.Samples {
			sent += smp.Sent
		}
		if sent < expected*9/10 {
			t.Errorf("side %s: the timeline holds %d requests sent, the schedule %d", s.Name, sent, expected)
		}
	}
	checkSides(t, tl, sum)
	// Lockstep's HPAs read their metrics through the adapter (no FailedGet... condition).
	for _, name := range []string{"gateway", "checkout"} {
		hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(scenario.LockstepNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hpa.Status.CurrentMetrics) == 0 {
			t.Errorf("lockstep HPA %s has no current metrics: %+v", name, hpa.Status.Conditions)
		}
	}
}

// checkSides compares Lockstep's side (first) with the baseline's (second).
func checkSides(t *testing.T, tl *timeline.Timeline, sum timeline.Summary) {
	t.Helper()
	ls, bl := sum.Sides[0], sum.Sides[1]
	if ls.Peak["service"] < 5 || ls.ServedAfter < 0 {
		t.Errorf("lockstep's service tier: peak %d replicas, served after %d s; want at least 5, served during the step", ls.Peak["service"], ls.ServedAfter)
	}
	if ls.StepBad >= bl.StepBad || ls.StepP99Ms >= bl.StepP99Ms {
		t.Errorf("lockstep failed %d requests with P99 %.0f ms during the step, the baseline %d with %.0f ms: want fewer and faster",
			ls.StepBad, ls.StepP99Ms, bl.StepBad, bl.StepP99Ms)
	}
	if floor := floorBeforeStep(tl.Sides[0], sum.StepFrom); floor < 8 {
		t.Errorf("lockstep's checkout HPA wanted %d replicas just before the step; its CronHPA's warm-up floor is 8", floor)
	}
	if ls.ServerlessPodSeconds == 0 || ls.MovedBack == 0 {
		t.Errorf("lockstep: %d serverless pod-seconds, %d pods moved back; want pods spilled while nodes booted, then moved back", ls.ServerlessPodSeconds, ls.MovedBack)
	}
	if ls.Resizes == 0 || bl.Resizes != 0 || bl.ServerlessPodSeconds != 0 {
		t.Errorf("in-place resizes: lockstep %d (want some), baseline %d (want none); baseline serverless pod-seconds %d (want none)", ls.Resizes, bl.Resizes, bl.ServerlessPodSeconds)
	}
}

// floorBeforeStep is what a side's checkout HPA wanted in the second before the step.
func floorBeforeStep(s timeline.Side, stepFrom int) int32 {
	for _, smp := range s.Samples {
		if smp.Second == stepFrom-1 {
			return smp.Tiers["service"].Desired
		}
	}
	return 0
}

// TestInClusterObjectsAreValid has the API server validate (a server-side dry run) the workloads,
// Services and ConfigMap the kind load test creates for each side, which cannot run here.
func TestInClusterObjectsAreValid(t *testing.T) {
	c, err := client.New(framework.Env(t).Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := &scenario.InCluster{Images: scenario.Images{Caddy: "caddy:2.11", DemoAPI: "ghcr.io/lockstep-dev/demo-api:kind"}, Service: scenario.SalesService}
	for _, policy := range []sales.Policy{sales.Lockstep, sales.Baseline} {
		ns := "kind-" + string(policy)
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		objs, err := sales.Objects(policy, ns, sales.Times{WarmUp: time.Now(), SaleEnd: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		prepared, err := p.Prepare(scenario.Side{Name: string(policy), Namespace: ns, Policy: policy}, objs)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, o := range prepared {
			switch o.GetKind() {
			case "Deployment", "Service", "ConfigMap":
				if err := c.Create(ctx, o, client.DryRunAll); err != nil {
					t.Errorf("%s: %s %s: %v", policy, o.GetKind(), o.GetName(), err)
				}
				checked++
			}
		}
		if checked != 6 {
			t.Errorf("%s: %d objects checked, want 2 Deployments, 3 Services and a ConfigMap", policy, checked)
		}
	}
}
