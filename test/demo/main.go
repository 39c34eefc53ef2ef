// Command demo plays the sales event on a local cluster under real load, twice at once: one shop
// scaled by Lockstep's in-step recipe, the same shop on CPU-utilisation HPAs only, with the same
// requests sent to both. The cluster is the test bed (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok nodes, metrics-server); every pod of the shops is a real process on its
// own loopback address (Caddy for the gateway, the demo API for checkout). It prints a live view,
// then both sides' figures side by side, writes the timeline as JSON and PNG, and keeps the
// cluster up until Ctrl-C. `make demo` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/test/load/scenario"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err == nil {
		err = run(o)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// options are the demo's flags.
type options struct {
	root, repo, out, kubeconfigOut string
	podCIDR                        netip.Prefix
	load                           scenario.Load
	hpaSync                        time.Duration
	// keep leaves the cluster up after the sale until Ctrl-C.
	keep bool
}

// parseFlags reads the flags and refuses values the sale cannot be played with.
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.root, "root", "", "test bed binaries (bin/testbed by default)")
	fs.StringVar(&o.repo, "repo", ".", "the repository root (config/crd and the binaries in bin/)")
	fs.StringVar(&o.out, "out", "bin", "directory for the timeline: demo.json and demo.png")
	fs.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "also write the cluster's admin kubeconfig here")
	cidr := fs.String("pod-cidr", "127.67.0.0/16", "loopback range the shops' pods take their addresses from")
	o.load.Bind(fs, scenario.DefaultLoad)
	fs.DurationVar(&o.hpaSync, "hpa-sync", 5*time.Second, "the HPA controller's sync period (clusters run 15 s; shorter compresses time)")
	fs.BoolVar(&o.keep, "keep", true, "keep the cluster up after the sale until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.podCIDR, err = netip.ParsePrefix(*cidr); err != nil || !o.podCIDR.Addr().IsLoopback() {
		return o, fmt.Errorf("--pod-cidr %q: want a loopback range such as 127.67.0.0/16", *cidr)
	}
	if err := o.load.Validate(); err != nil {
		return o, err
	}
	if o.hpaSync < time.Second {
		return o, fmt.Errorf("--hpa-sync %s: want 1s or more", o.hpaSync)
	}
	return o, nil
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Println("starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok, metrics-server)...")
	env, err := testbed.Start(ctx, testbed.Options{
		BinRoot: o.root, ControllerManager: true, Scheduler: true, Kwok: true, Nodes: 1,
		KwokPodCIDR: o.podCIDR.String(), MetricsServer: true, HPASyncPeriod: o.hpaSync,
	})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := env.Kubeconfig
	if o.kubeconfigOut != "" {
		if err := copyFile(env.Kubeconfig, o.kubeconfigOut); err != nil {
			return err
		}
		kubeconfig, _ = filepath.Abs(o.kubeconfigOut)
	}
	png, err := play(ctx, env, o, os.Stdout)
	if ctx.Err() != nil {
		fmt.Println("\nstopped before the sale ended")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nThe plot: %s (the timeline's figures are in demo.json beside it).\n", png)
	if !o.keep {
		return nil
	}
	fmt.Printf(`
The cluster stays up (the load and the pods' processes have stopped):
  export KUBECONFIG=%s
  kubectl get cronhpa,hpa,vpa,deploy -n %s
  kubectl get hpa,deploy -n %s
  kubectl get nodepools,nodeclaims,nodes
Component logs: %s. Ctrl-C stops everything.
`, kubeconfig, scenario.LockstepNamespace, scenario.BaselineNamespace, env.LogDir)
	<-ctx.Done()
	fmt.Println("\nstopping the demo")
	return nil
}

// play starts Lockstep's components on env, plays the sale with its live view on out, prints
// the figures and writes the timeline into o.out. It returns the plot's path.
func play(ctx context.Context, env *testbed.Env, o options, out io.Writer) (string, error) {
	caddy, err := testbed.BinaryPath(o.root, "caddy")
	if err != nil {
		return "", err
	}
	if err := scenario.StartLockstep(ctx, env, o.repo, scenario.LockstepNamespace); err != nil {
		return "", err
	}
	harnessLog, err := os.Create(filepath.Join(env.LogDir, "load-harness.log"))
	if err != nil {
		return "", fmt.Errorf("creating the harness's log: %w", err)
	}
	defer harnessLog.Close()
	cfg := scenario.SalesEvent(env, caddy, filepath.Join(env.LogDir, "proxies"), o.podCIDR, o.load.Schedule(), o.load.WarmUpLead)
	cfg.Out, cfg.Log = out, zap.New(zap.WriteTo(harnessLog))
	intro(out, o, cfg)
	tl, err := scenario.Run(ctx, cfg)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(out, "\nThe sale, side by side (times count from the moment the sale's load arrived):")
	_, png, err := scenario.Report(out, tl, o.out, "demo")
	return png, err
}

// intro tells a newcomer what is about to happen and how to read the live view.
func intro(out io.Writer, o options, cfg scenario.Config) {
	l := o.load
	fmt.Fprintf(out, `
A flash sale, played twice at once with the same requests:
  %-14s Lockstep: both tiers' HPAs scale on the ingress requests per second to checkout
                 (metrics adapter), checkout also on its P99 latency; CronHPAs raise the floors
                 %s before the sale; node-autoscaler spills pods onto a serverless virtual node
                 while nodes boot and moves them back; vpa-inplace resizes checkout pods in place.
  %-14s the baseline: the same shop on CPU-utilisation HPAs only.
Each pod is a real process: Caddy for gateway, the demo API for checkout (50 requests per second
on half a core; past that, requests queue and latency climbs). Each shop's nodes take %s to boot.
Load per shop: %.0f req/s for %s, a ramp to %.0f over %s, the sale at %.0f req/s for %s, then %.0f for %s.
Time is compressed: HPAs sync every %s (clusters run 15 s).

Live view every 5 s, a line per shop: pods answering/replicas the HPA wants; one second's requests
answered, failed, and their P99 latency (SLO %s); the shop's nodes Ready/launched, and its pods on
serverless capacity.

Creating both shops and waiting for their first pods (their first nodes boot too)...
`, cfg.Sides[0].Namespace, l.WarmUpLead, cfg.Sides[1].Namespace, cfg.Nodes.BootDelay,
		l.Rate, l.Before, 2*l.Rate, l.Ramp, l.Factor*l.Rate, l.Sale, l.Rate, l.After, o.hpaSync, cfg.SLO)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", to, err)
	}
	return nil
}
