// Command loadtest plays the sales event inside a cluster as the kind load test's Job: the same
// scenario code as `make demo` and the test bed's load tests (package scenario), with the
// cluster's own pods (scenario.InCluster). It prints the live view and the side-by-side figures,
// then the timeline (JSON and PNG) as log lines that test/kind/kind-load-test.sh gathers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/test/kind"
	"github.com/lockstep-dev/lockstep/test/load/scenario"
)

// name names the timeline's files.
const name = "kind-load-test"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run() error {
	var load scenario.Load
	var images scenario.Images
	fs := flag.CommandLine
	load.Bind(fs, scenario.DefaultLoad)
	fs.StringVar(&images.Caddy, "caddy-image", "caddy:2.11", "image of the gateway pods")
	fs.StringVar(&images.DemoAPI, "demo-api-image", "ghcr.io/lockstep-dev/demo-api:kind", "image of the checkout pods")
	flag.Parse()
	if err := load.Validate(); err != nil {
		return err
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("this runs as a Job in the cluster: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := scenario.InClusterSalesEvent(rc, images, load.Schedule(), load.WarmUpLead)
	cfg.Out, cfg.Log = os.Stdout, zap.New(zap.WriteTo(os.Stderr))
	tl, err := scenario.Run(ctx, cfg)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", name)
	if err != nil {
		return err
	}
	fmt.Println("\nThe sale, side by side (times count from the moment the sale's load arrived):")
	if _, _, err := scenario.Report(os.Stdout, tl, dir, name); err != nil {
		return err
	}
	for _, file := range []string{name + ".json", name + ".png"} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if err := kind.WriteFile(os.Stdout, file, data); err != nil {
			return err
		}
	}
	return nil
}
