package scenario_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/test/components"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/loadgen"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/load/scenario"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// podCIDR is this package's own loopback range, apart from other packages' tests.
const podCIDR = "127.66.0.0/16"

// repo is the repository's root, for config/crd and bin/metrics-adapter.
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
// read their metrics through the adapter, its service tier had its peak's pods answering during
// the step, and it failed fewer requests with a lower P99 than the baseline, which scales on CPU
// only and lags.
func playSalesEvent(t *testing.T, r run) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caddy, err := testbed.BinaryPath("", "caddy")
	if err != nil {
		t.Fatal(err)
	}
	const lockstepNS, baselineNS = "sale-lockstep", "sale-baseline"
	startLockstep(ctx, t, lockstepNS)

	var live bytes.Buffer
	cfg := scenario.Config{
		Env: env, Caddy: caddy, Dir: t.TempDir(), PodCIDR: netip.MustParsePrefix(podCIDR),
		Schedule:   r.schedule,
		WarmUpLead: r.warmUpLead,
		// 10 ms of CPU a request: a checkout pod with half a core serves 50 req/s.
		Service: demoapi.Config{Work: 10 * time.Millisecond, CPU: 0.5, Concurrency: 8, QueueLimit: 100},
		SLO:     250 * time.Millisecond,
		Sides: []scenario.Side{
			{Name: "lockstep", Namespace: lockstepNS, Policy: sales.Lockstep},
			{Name: "baseline", Namespace: baselineNS, Policy: sales.Baseline},
		},
		// Each side's nodes have 4 cores and take 20 s to boot.
		Nodes: &scenario.Nodes{BootDelay: 20 * time.Second, InstanceType: "c-4x-amd64-linux"},
		Tail:  5 * time.Second,
		Out:   &live,
		Log:   testr.New(t),
	}
	tl, err := scenario.Run(ctx, cfg)
	t.Logf("live view:\n%s", live.String())
	if err != nil {
		t.Fatal(err)
	}
	sum := report(t, r.name, tl)

	expected := int(cfg.Schedule.Expected())
	for _, s := range tl.Sides {
		sent := 0
		for _, smp := range s.Samples {
			sent += smp.Sent
		}
		// Samples are taken once a second; a slow round can skip one, so allow a few.
		if sent < expected*9/10 {
			t.Errorf("side %s: the timeline holds %d requests sent, the schedule %d", s.Name, sent, expected)
		}
	}
	ls, bl := sum.Sides[0], sum.Sides[1]
	if ls.Peak["service"] < 5 || ls.ServedAfter < 0 {
		t.Errorf("lockstep's service tier: peak %d replicas, served after %d s; want at least 5, served during the step", ls.Peak["service"], ls.ServedAfter)
	}
	if ls.StepBad >= bl.StepBad || ls.StepP99Ms >= bl.StepP99Ms {
		t.Errorf("lockstep failed %d requests with P99 %.0f ms during the step, the baseline %d with %.0f ms: want fewer and faster",
			ls.StepBad, ls.StepP99Ms, bl.StepBad, bl.StepP99Ms)
	}
	// Lockstep's HPAs read their metrics through the adapter (no FailedGet... condition).
	for _, name := range []string{"gateway", "checkout"} {
		hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(lockstepNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hpa.Status.CurrentMetrics) == 0 {
			t.Errorf("lockstep HPA %s has no current metrics: %+v", name, hpa.Status.Conditions)
		}
	}
}

// startLockstep runs Lockstep's components for the scenario: cronhpa, node-autoscaler, and the
// metrics adapter reading the gateway pods of namespace through its caddy profile (and service
// pods through http-app, by their annotations).
func startLockstep(ctx context.Context, t *testing.T, namespace string) {
	t.Helper()
	env := framework.Env(t)
	if err := components.InstallCRDs(ctx, env, repo); err != nil {
		t.Fatal(err)
	}
	if err := components.StartCronHPA(ctx, env); err != nil {
		t.Fatal(err)
	}
	// Nodes for pending pods; Lockstep's pods spill to the virtual node after 5 s and move back
	// 5 s after their node is Ready.
	if err := components.StartNodeAutoscaler(env, repo,
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--spill-budget=5s", "--move-back-after=5s"); err != nil {
		t.Fatal(err)
	}
	adapterConfig := `scrapeInterval: 2s
ingress:
- profile: caddy
  namespace: ` + namespace + `
  selector: app=gateway
  port: "` + strconv.Itoa(proxy.AdminPort) + `"
`
	if _, _, err := framework.StartMetricsAdapter(ctx, env, framework.Clientset(t), framework.MetricsAdapter{
		Name: "lockstep-metrics-adapter", Namespace: "lockstep-system",
		Binary: filepath.Join(repo, "bin", "metrics-adapter"), Config: adapterConfig,
	}); err != nil {
		t.Fatal(err)
	}
}

// report summarizes the run, logs the summary and writes the timeline as name.json and
// name.png into LOCKSTEP_LOAD_OUT, or the bed's log directory.
func report(t *testing.T, name string, tl *timeline.Timeline) timeline.Summary {
	t.Helper()
	// An 8-core node at 0.40 an hour; a serverless core at 0.08 an hour.
	sum, err := timeline.Summarize(tl, timeline.Prices{NodeHour: 0.40, CoreHour: 0.05, ServerlessCoreHour: 0.08})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := timeline.PrintSummary(&table, sum, scenario.Tiers, tl.SLOMillis); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", table.String())
	dir := os.Getenv("LOCKSTEP_LOAD_OUT")
	if dir == "" {
		dir = framework.Env(t).LogDir
	}
	if err := timeline.WriteJSON(filepath.Join(dir, name+".json"), tl, sum); err != nil {
		t.Fatal(err)
	}
	if err := timeline.WritePNG(filepath.Join(dir, name+".png"), tl); err != nil {
		t.Fatal(err)
	}
	t.Logf("timeline: %s.json and %s.png in %s", name, name, dir)
	return sum
}
