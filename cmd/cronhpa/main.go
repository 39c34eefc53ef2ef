// Command cronhpa runs the Lockstep CronHorizontalPodAutoscaler controller and its webhook.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/cronhpa"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cronhpa:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts cronhpa.Options
	// --kubeconfig (for running outside a cluster) is registered by controller-runtime.
	var timezone string
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 disables)")
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles (0 disables)")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader so that only one replica acts")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (the pod's namespace when empty)")
	flag.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", cronhpa.DefaultLeaseDuration, "how long a standby waits after the leader's last renewal before taking over (a crashed leader is replaced within about this plus the retry period)")
	flag.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", cronhpa.DefaultRenewDeadline, "how long the leader keeps trying to renew before it stops acting")
	flag.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", cronhpa.DefaultRetryPeriod, "how often the leader renews and standbys try to take over")
	flag.IntVar(&opts.WebhookPort, "webhook-port", 9443, "port of the validating webhook (0 disables it)")
	flag.StringVar(&opts.WebhookCertDir, "webhook-cert-dir", "", "directory with tls.crt and tls.key for the webhook")
	flag.StringVar(&timezone, "default-timezone", envOr("TZ", "UTC"), "IANA time zone for objects without spec.timezone (default: $TZ, else UTC)")
	flag.DurationVar(&opts.StartingDeadline, "starting-deadline", 5*time.Minute, "how late a scheduled time may still run after downtime; older times are recorded as Missed")
	flag.IntVar(&opts.Workers, "workers", 4, "objects reconciled in parallel")
	qps := flag.Float64("kube-api-qps", 100, "queries per second to the API server (each run costs about three)")
	burst := flag.Int("kube-api-burst", 200, "burst of queries to the API server")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return fmt.Errorf("--default-timezone %q: %w", timezone, err)
	}
	opts.DefaultLocation = loc
	if opts.StartingDeadline <= 0 {
		return fmt.Errorf("--starting-deadline must be positive, got %s", opts.StartingDeadline)
	}
	if opts.Workers <= 0 {
		return fmt.Errorf("--workers must be positive, got %d", opts.Workers)
	}
	if err := cronhpa.ValidateLeaderElection(opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod); err != nil {
		return fmt.Errorf("--leader-elect-*: %w", err)
	}
	if *qps <= 0 || *burst <= 0 {
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	mgr, err := cronhpa.New(cfg, opts)
	if err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
