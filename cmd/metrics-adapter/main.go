// Command metrics-adapter serves custom.metrics.k8s.io and external.metrics.k8s.io for
// Lockstep: ingress QPS and latency and application request metrics, from memory.
package main

import (
	"fmt"
	"os"
	"time"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"

	metricsadapter "github.com/lockstep-dev/lockstep/metrics-adapter"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "metrics-adapter:", err)
		os.Exit(1)
	}
}

func run() error {
	logs.InitLogs()
	defer logs.FlushLogs()
	base := &basecmd.AdapterBase{Name: "lockstep-metrics-adapter"}
	configPath := base.Flags().String("config", "", "configuration file (YAML): scrape interval, rate window, staleness limit, ingress controllers, profiles")
	// Each HPA asks for its own path every 15 s, so with the library's 10 s cache nearly every
	// call cost a SubjectAccessReview round trip. Two minutes keeps them rare; the flag
	// --authorization-webhook-cache-authorized-ttl still overrides it.
	base.Authorization.AllowCacheTTL = 2 * time.Minute
	logs.AddFlags(base.Flags())
	if err := base.Flags().Parse(os.Args[1:]); err != nil {
		return fmt.Errorf("parsing flags: %w", err)
	}
	cfg, err := metricsadapter.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	ctx := genericapiserver.SetupSignalContext()
	return metricsadapter.Run(ctx, base, metricsadapter.Options{Config: cfg, Log: klog.Background()})
}
