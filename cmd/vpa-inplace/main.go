// Command vpa-inplace runs Lockstep's VerticalPodAutoscaler recommender and in-place updater.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/internal/leaderelect"
	vpainplace "github.com/lockstep-dev/lockstep/vpa-inplace"
	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vpa-inplace:", err)
		os.Exit(1)
	}
}

// cli is what the command line sets: vpa-inplace's options and the values turned into them.
type cli struct {
	opts            vpainplace.Options
	virtualSelector string
	recommend       bool
	qps             float64
	burst           int
	zap             zap.Options
}

// bindFlags registers every flag on fs. The chart passes each one an operator may need
// (TestChartPassesEveryOperatorFlag).
func bindFlags(fs *flag.FlagSet) *cli {
	c := &cli{opts: vpainplace.Options{
		LeaderElectionTiming: leaderelect.Defaults(),
		Recommender:          recommender.DefaultConfig(),
		Resizer:              resizer.DefaultConfig(),
	}}
	opts := &c.opts
	rc, rs := &opts.Recommender, &opts.Resizer
	// --kubeconfig (for running outside a cluster) is registered by controller-runtime.
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 disables)")
	fs.StringVar(&opts.PprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles (0 disables)")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader so that only one replica acts")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (the pod's namespace when empty)")
	opts.LeaderElectionTiming.BindFlags(fs)
	fs.StringVar(&opts.RecommenderName, "recommender-name", vpainplace.DefaultRecommenderName, "handle VPAs whose spec.recommenders names this recommender")
	fs.BoolVar(&c.recommend, "recommender", true, "run the recommender; false runs only the in-place updater on recommendations another recommender writes for VPAs naming --recommender-name")
	fs.BoolVar(&opts.HandleUnnamed, "handle-unnamed", false, "also handle VPAs that name no recommender (leave off where upstream VPA's recommender runs)")
	fs.DurationVar(&rc.HalfLife, "half-life", rc.HalfLife, "how fast old usage loses weight: a sample counts half after this long (upstream VPA: 24h; fast-moving web workloads want less)")
	fs.Float64Var(&rc.TargetPercentile, "target-percentile", rc.TargetPercentile, "usage percentile (0-1] the target is set to")
	fs.Float64Var(&rc.LowerPercentile, "lower-bound-percentile", rc.LowerPercentile, "usage percentile of the lower bound")
	fs.Float64Var(&rc.UpperPercentile, "upper-bound-percentile", rc.UpperPercentile, "usage percentile of the upper bound")
	fs.Float64Var(&rc.SafetyMargin, "safety-margin", rc.SafetyMargin, "fraction added on top of every percentile")
	fs.Int64Var(&rc.PodMinCPUMillis, "pod-min-cpu-millicores", rc.PodMinCPUMillis, "smallest CPU recommendation for a whole pod (shared by its containers)")
	fs.Int64Var(&rc.PodMinMemoryBytes, "pod-min-memory-bytes", rc.PodMinMemoryBytes, "smallest memory recommendation for a whole pod (shared by its containers)")
	fs.DurationVar(&rc.MemoryAggregationInterval, "memory-aggregation-interval", rc.MemoryAggregationInterval, "window whose peak memory usage is one sample")
	fs.Float64Var(&rc.OOMBumpUpRatio, "oom-bump-up-ratio", rc.OOMBumpUpRatio, "memory after an OOM kill is at least this times what the container had")
	fs.Int64Var(&rc.OOMMinBumpUpBytes, "oom-min-bump-up-bytes", rc.OOMMinBumpUpBytes, "memory after an OOM kill is at least this much more than what the container had")
	fs.DurationVar(&opts.RecommendInterval, "recommender-interval", 15*time.Second, "how often usage is read from metrics.k8s.io")
	fs.DurationVar(&opts.CheckpointInterval, "checkpoint-interval", time.Minute, "how often usage histories are saved to VerticalPodAutoscalerCheckpoints")
	fs.Float64Var(&rs.Hysteresis, "hysteresis", rs.Hysteresis, "relative change of a request below which a pod is left alone")
	fs.DurationVar(&rs.DownscaleCooldown, "downscale-cooldown", rs.DownscaleCooldown, "how long after resizing a pod a decrease waits (increases never wait)")
	fs.DurationVar(&rs.DeferredBackoff, "deferred-backoff", rs.DeferredBackoff, "how long a resize the kubelet deferred is left alone before a changed target is sent")
	fs.Float64Var(&rs.MemoryHeadroom, "memory-headroom", rs.MemoryHeadroom, "a memory limit is lowered only to current usage plus this fraction")
	fs.IntVar(&opts.MaxPerWorkload, "max-resizes-per-workload", 10, "resizes in flight per workload (a PodDisruptionBudget lowers it to its disruptionsAllowed)")
	fs.IntVar(&opts.MaxInFlight, "max-resizes-in-flight", 200, "resizes in flight across all workloads")
	fs.IntVar(&opts.Workers, "workers", 8, "VPAs reconciled in parallel")
	fs.DurationVar(&opts.Resync, "resync", 30*time.Second, "how often each VPA is looked at without any event")
	fs.StringVar(&c.virtualSelector, "virtual-node-selector", "type=virtual-kubelet", "label selector of serverless virtual nodes, whose pods are not resized in place (empty: none)")
	fs.StringVar(&opts.VirtualNodeTaintKey, "virtual-node-taint-key", "virtual-kubelet.io/provider", "taint key that marks serverless virtual nodes (empty: none)")
	fs.Float64Var(&c.qps, "kube-api-qps", 100, "queries per second to the API server")
	fs.IntVar(&c.burst, "kube-api-burst", 200, "burst of queries to the API server")
	c.zap.BindFlags(fs)
	return c
}

func run() error {
	c := bindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&c.zap)))
	opts, rc := c.opts, &c.opts.Recommender
	virtualSelector, recommend, qps, burst := c.virtualSelector, &c.recommend, &c.qps, &c.burst

	sel, err := labels.Parse(virtualSelector)
	if err != nil {
		return fmt.Errorf("--virtual-node-selector %q: %w", virtualSelector, err)
	}
	if virtualSelector == "" {
		sel = labels.Nothing()
	}
	opts.VirtualNodeSelector = sel
	opts.RecommenderDisabled = !*recommend
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("recommender flags: %w", err)
	}
	t := opts.LeaderElectionTiming
	if err := leaderelect.Validate(t.LeaseDuration, t.RenewDeadline, t.RetryPeriod); err != nil {
		return fmt.Errorf("--leader-elect-*: %w", err)
	}
	for name, v := range map[string]int{"--max-resizes-per-workload": opts.MaxPerWorkload, "--max-resizes-in-flight": opts.MaxInFlight, "--workers": opts.Workers} {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	if opts.RecommendInterval <= 0 || opts.CheckpointInterval <= 0 || opts.Resync <= 0 {
		return fmt.Errorf("--recommender-interval, --checkpoint-interval and --resync must be positive")
	}
	if *qps <= 0 || *burst <= 0 {
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	mgr, err := vpainplace.New(cfg, opts)
	if err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
