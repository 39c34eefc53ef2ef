// Command testbed builds and runs the Lockstep test bed: a real Kubernetes control plane on
// loopback with kwok nodes.
//
//	testbed build                 build the pinned binaries into bin/testbed (what `make testbed` runs)
//	testbed up [--nodes 5] ...    start a cluster and keep it up until Ctrl-C or `testbed down`
//	testbed down                  stop the cluster started by `testbed up`
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lockstep-dev/lockstep/test/testbed"
	"github.com/lockstep-dev/lockstep/test/testbed/build"
)

const usage = `usage: testbed <build|up|down> [flags]
  build   build etcd, Kubernetes and kwok at the pinned versions (skips what exists)
  up      start a local cluster; prints the KUBECONFIG line; stays up until Ctrl-C or 'down'
  down    stop the cluster started by 'up'
Run 'testbed <command> -h' for the command's flags.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "build":
		err = runBuild(ctx, os.Args[2:])
	case "up":
		err = runUp(ctx, os.Args[2:])
	case "down":
		err = runDown(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Println(usage)
	default:
		fmt.Fprintf(os.Stderr, "testbed: unknown command %q\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
}

func defaultRoot() string {
	root, err := testbed.DefaultRoot()
	if err != nil {
		return filepath.Join("bin", "testbed")
	}
	return root
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	root := fs.String("root", defaultRoot(), "directory that receives <component>-<version>/ binary directories")
	align := fs.String("align-with", ".", "directory of a Go module whose dependency versions the components' wrapper modules require, so the packages they share compile once (empty: the components' own versions)")
	_ = fs.Parse(args)
	b := &build.Builder{Root: *root, Out: os.Stdout}
	if *align != "" {
		list, err := build.ModuleList(ctx, *align, os.Environ())
		if err != nil {
			return fmt.Errorf("reading the build list to align with: %w", err)
		}
		b.Align = list
	}
	return b.All(ctx)
}

// state is what `up` records so that `down` can find it.
type state struct {
	PID        int    `json:"pid"`
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
}

func statePath() string { return filepath.Join(os.TempDir(), "lockstep-testbed-up.json") }

func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	opts := testbed.Options{}
	fs.StringVar(&opts.BinRoot, "root", defaultRoot(), "directory holding the binaries built by 'testbed build'")
	fs.IntVar(&opts.Nodes, "nodes", 3, "number of kwok nodes")
	fs.BoolVar(&opts.ControllerManager, "controller-manager", true, "run kube-controller-manager")
	fs.BoolVar(&opts.Scheduler, "scheduler", true, "run kube-scheduler")
	fs.BoolVar(&opts.Kwok, "kwok", true, "run kwok (implied by --nodes > 0)")
	fs.BoolVar(&opts.MetricsServer, "metrics-server", false, "run metrics-server on kwok's emulated pod usage (metrics.k8s.io)")
	fs.DurationVar(&opts.HPASyncPeriod, "hpa-sync-period", 15*time.Second, "HPA controller sync period")
	fs.IntVar(&opts.RealNodes, "real-nodes", 0, "real kubelet nodes (0 or 1; needs root and 'make testbed'): pods on it really run")
	images := fs.String("images", "", "with --real-nodes, a comma-separated list of OCI image archives (e.g. bin/images/*.tar) to import into the node's containerd")
	kubeconfigOut := fs.String("kubeconfig-out", "", "also copy the admin kubeconfig to this path")
	_ = fs.Parse(args)
	if opts.Nodes < 0 {
		return fmt.Errorf("--nodes must be 0 or more, got %d", opts.Nodes)
	}
	if opts.RealNodes < 0 || opts.RealNodes > 1 {
		return fmt.Errorf("--real-nodes must be 0 or 1, got %d", opts.RealNodes)
	}
	if *images != "" {
		if opts.RealNodes == 0 {
			return errors.New("--images needs --real-nodes 1")
		}
		for _, img := range strings.Split(*images, ",") {
			if _, err := os.Stat(img); err != nil {
				return fmt.Errorf("--images: %w", err)
			}
			opts.RealNodeImages = append(opts.RealNodeImages, img)
		}
	}

	if existing, err := readState(); err == nil && syscall.Kill(existing.PID, 0) == nil {
		return fmt.Errorf("a test bed is already up (pid %d, KUBECONFIG=%s); run 'testbed down' first", existing.PID, existing.Kubeconfig)
	}
	start := time.Now()
	env, err := testbed.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := env.Kubeconfig
	if *kubeconfigOut != "" {
		data, err := os.ReadFile(env.Kubeconfig)
		if err != nil {
			return fmt.Errorf("reading kubeconfig: %w", err)
		}
		if err := os.WriteFile(*kubeconfigOut, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", *kubeconfigOut, err)
		}
		kubeconfig, _ = filepath.Abs(*kubeconfigOut)
	}
	st := state{PID: os.Getpid(), Kubeconfig: kubeconfig, Server: env.APIServerURL}
	if err := writeState(st); err != nil {
		return err
	}
	defer os.Remove(statePath())

	fmt.Printf("test bed up in %s: %s, %d kwok nodes, %d real nodes; logs in %s\n", time.Since(start).Round(10*time.Millisecond), env.APIServerURL, opts.Nodes, opts.RealNodes, env.LogDir)
	fmt.Printf("export KUBECONFIG=%s\n", kubeconfig)
	fmt.Println("stop with Ctrl-C or 'go run ./test/testbed/cmd/testbed down'")
	<-ctx.Done()
	fmt.Println("stopping test bed")
	return env.Stop()
}

func readState() (state, error) {
	var st state
	data, err := os.ReadFile(statePath())
	if err != nil {
		return st, fmt.Errorf("reading %s: %w", statePath(), err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("parsing %s: %w", statePath(), err)
	}
	return st, nil
}

func writeState(st state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := os.WriteFile(statePath(), data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", statePath(), err)
	}
	return nil
}

func runDown(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the test bed to stop")
	_ = fs.Parse(args)
	st, err := readState()
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no test bed is up")
		return nil
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			_ = os.Remove(statePath())
			fmt.Println("no test bed is up")
			return nil
		}
		return fmt.Errorf("signalling pid %d: %w", st.PID, err)
	}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		if syscall.Kill(st.PID, 0) != nil {
			fmt.Println("test bed stopped")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("test bed (pid %d) still running after %s", st.PID, *timeout)
}
