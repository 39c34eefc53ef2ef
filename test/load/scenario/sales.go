package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"

	"github.com/lockstep-dev/lockstep/test/components"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/loadgen"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// The sales event's namespaces: Lockstep's recipe in one, the baseline in the other.
const (
	LockstepNamespace = "sale-lockstep"
	BaselineNamespace = "sale-baseline"
)

// Prices estimate each side's cost, in illustrative figures: a node at 0.40 an hour for as long
// as it exists, and a core a pod requests on serverless capacity at 0.08 an hour, by the second
// (memory is not priced).
var Prices = timeline.Prices{NodeHour: 0.40, CoreHour: 0.05, ServerlessCoreHour: 0.08}

// SalesService is the checkout pods' capacity in the sales event: 10 ms of CPU a request, 8
// served at once, 100 waiting at most, so a pod with half a core serves 50 requests per second.
var SalesService = demoapi.Config{Work: 10 * time.Millisecond, CPU: 0.5, Concurrency: 8, QueueLimit: 100}

// salesEvent is the sales event in any cluster: Lockstep's recipe against the baseline with the
// same load and a 250 ms P99 SLO; Lockstep's CronHPAs raise the floors warmUpLead before the
// step.
func salesEvent(rc *rest.Config, p Plumbing, schedule loadgen.Schedule, warmUpLead time.Duration) Config {
	return Config{
		Rest: rc, Plumbing: p,
		Schedule:   schedule,
		WarmUpLead: warmUpLead,
		SLO:        250 * time.Millisecond,
		Sides: []Side{
			{Name: "lockstep", Namespace: LockstepNamespace, Policy: sales.Lockstep},
			{Name: "baseline", Namespace: BaselineNamespace, Policy: sales.Baseline},
		},
		Tail: 5 * time.Second,
	}
}

// SalesEvent is the sales event on a test bed, as the load tests and the demo play it: every
// pod backed by a process (Local), checkout's capacity SalesService, and each side on its own
// pool of 4-core kwok nodes that take 20 s to boot.
func SalesEvent(env *testbed.Env, caddy, dir string, podCIDR netip.Prefix, schedule loadgen.Schedule, warmUpLead time.Duration) Config {
	cfg := salesEvent(env.Config, &Local{Env: env, Caddy: caddy, Dir: dir, PodCIDR: podCIDR, Service: SalesService}, schedule, warmUpLead)
	cfg.Nodes = &Nodes{BootDelay: 20 * time.Second, InstanceType: "c-4x-amd64-linux"}
	return cfg
}

// InClusterSalesEvent is the sales event in a real cluster (the kind load test): the pods run
// the images (InCluster), on the cluster's own nodes.
func InClusterSalesEvent(rc *rest.Config, images Images, schedule loadgen.Schedule, warmUpLead time.Duration) Config {
	return salesEvent(rc, &InCluster{Images: images, Service: SalesService}, schedule, warmUpLead)
}

// StartLockstep runs Lockstep's components for the sales event on env, from repo's config/crd
// and bin/: cronhpa (in this process), node-autoscaler (pods spill to the virtual node after
// 5 s and move back 5 s after their node is Ready), vpa-inplace (usage read every 5 s, weighed
// over minutes: the event lasts minutes), and the metrics adapter reading namespace's gateway
// pods through its caddy profile and its checkout pods through http-app. The bed stops them.
func StartLockstep(ctx context.Context, env *testbed.Env, repo, namespace string) error {
	if err := components.InstallCRDs(ctx, env, repo); err != nil {
		return err
	}
	if err := components.StartCronHPA(ctx, env); err != nil {
		return err
	}
	if err := components.StartNodeAutoscaler(env, repo,
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--spill-budget=5s", "--move-back-after=5s"); err != nil {
		return err
	}
	if err := components.StartVPAInplace(env, repo,
		"--recommender-interval=5s", "--half-life=5m", "--resync=5s"); err != nil {
		return err
	}
	cs, err := env.Clientset()
	if err != nil {
		return err
	}
	adapterConfig := `scrapeInterval: 2s
ingress:
- profile: caddy
  namespace: ` + namespace + `
  selector: app=gateway
  port: "` + strconv.Itoa(proxy.AdminPort) + `"
`
	_, _, err = framework.StartMetricsAdapter(ctx, env, cs, framework.MetricsAdapter{
		Name: "lockstep-metrics-adapter", Namespace: "lockstep-system",
		Binary: filepath.Join(repo, "bin", "metrics-adapter"), Config: adapterConfig,
	})
	return err
}

// Report summarizes a run, prints the sides' figures side by side to w and writes the
// timeline as name.json and name.png into dir, returning the summary and the PNG's path.
func Report(w io.Writer, tl *timeline.Timeline, dir, name string) (timeline.Summary, string, error) {
	if tl == nil {
		return timeline.Summary{}, "", errors.New("no timeline")
	}
	sum, err := timeline.Summarize(tl, Prices)
	if err != nil {
		return sum, "", err
	}
	if err := timeline.PrintSummary(w, sum, Tiers, tl.SLOMillis); err != nil {
		return sum, "", err
	}
	if err := timeline.WriteJSON(filepath.Join(dir, name+".json"), tl, sum); err != nil {
		return sum, "", err
	}
	png := filepath.Join(dir, name+".png")
	if err := timeline.WritePNG(png, tl); err != nil {
		return sum, "", fmt.Errorf("plotting: %w", err)
	}
	return sum, png, nil
}
