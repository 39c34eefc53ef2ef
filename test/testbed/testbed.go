package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options says which components the test bed runs and how.
type Options struct {
	// BinRoot holds the <component>-<version> binary directories; DefaultRoot() when empty.
	BinRoot string
	// Dir is the working directory (certificates, kubeconfigs, etcd data, logs). When empty a
	// temporary directory is created and removed by Stop.
	Dir string

	// ControllerManager runs kube-controller-manager with every default controller, HPA included.
	ControllerManager bool
	// Scheduler runs kube-scheduler.
	Scheduler bool
	// Kwok runs kwok; implied when Nodes > 0.
	Kwok bool
	// Nodes is how many fake nodes to create and wait Ready for.
	Nodes int
	// KwokPodCIDR is the range kwok gives its pods addresses from; 10.244.0.0/16 when empty. A
	// loopback range (127.64.0.0/16) lets each kwok pod be backed by a real server on its own
	// address (the load harness); EndpointSlices refuse loopback addresses, though.
	KwokPodCIDR string
	// NodeCapacity is each fake node's capacity; 32 CPU, 128Gi memory, 110 pods when nil.
	NodeCapacity corev1.ResourceList
	// ExtraStages are additional kwok Stage YAML documents, applied with the built-in ones.
	ExtraStages []string
	// IdealResize applies every in-place resize of a kwok pod at once, whatever its node holds
	// (a kwok stage). Off by default: the bed answers resizes as a kubelet does, Deferred when
	// the node's other pods leave no room (applied once room frees, by priority then age) and
	// Infeasible when the pod would exceed the node's allocatable.
	IdealResize bool
	// MetricsServer runs metrics-server (implies Kwok): kwok emulates each node's kubelet
	// resource metrics from the pods' usage annotations (UsageCPUAnnotation,
	// UsageMemoryAnnotation) and metrics.k8s.io serves them, as `kubectl top` reads them.
	MetricsServer bool

	// RealNodes is how many real nodes to run (0 or 1): a kubelet with containerd, runc and a
	// CNI bridge, whose pods really run. It needs root and `make testbed`; one real node runs
	// on a machine at a time, so a second test bed waits for the first (RealNodeWait).
	RealNodes int
	// RealNodeImages are OCI image archives imported into the real node's containerd at start
	// (Env.ImportImages imports more later).
	RealNodeImages []string
	// RealNodeWait bounds the wait for another test bed's real node; 30 minutes when zero.
	RealNodeWait time.Duration

	// HPASyncPeriod is the HPA controller's sync period; 15s (the Kubernetes default) when zero.
	HPASyncPeriod time.Duration

	// Extra flags appended to each component's command line (later flags win).
	APIServerFlags, ControllerManagerFlags, SchedulerFlags []string

	// StartTimeout bounds the whole start-up; 2 minutes when zero.
	StartTimeout time.Duration
}

// Env is a running test bed. Its zero value is not usable; get one from Start.
type Env struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// Dir is the working directory; LogDir holds one <component>.log per process.
	Dir, LogDir string
	// APIServerURL is https://127.0.0.1:<port>.
	APIServerURL string
	// CA is the cluster CA: it signs the API server's certificate and client certificates, and
	// can sign serving certificates for webhooks and aggregated API servers under test.
	CA *Authority
	// FrontProxyCA signs the client certificate the aggregator presents to aggregated servers.
	FrontProxyCA *Authority
	// RealNodeStartup is how long the real node took from its first step (cgroups, bridge) to
	// Ready, images imported; zero without one.
	RealNodeStartup time.Duration

	opts    Options
	ownDir  bool
	pki     *pki
	procs   []*process
	etcdURL string
	// kwokServerPort is where kwok serves the emulated kubelet endpoints (MetricsServer).
	kwokServerPort int
	realNode       *realNode
	resizes        *resizeChecker
	stopOnce       bool
}

// Start brings up the test bed described by opts and returns when every component it started
// is healthy (and, with Nodes > 0, every node is Ready). On error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	var hostErr error
	if opts.RealNodes > 0 {
		hostErr = checkRealNodeHost(opts)
	}
	if err := errors.Join(checkBinaries(opts), hostErr); err != nil {
		return nil, err
	}
	env := &Env{opts: opts, Dir: opts.Dir}
	if opts.RealNodes > 0 {
		// The wait for another bed's real node does not count against the start-up timeout.
		lock, err := lockRealNode(ctx, opts.RealNodeWait)
		if err != nil {
			return nil, err
		}
		env.realNode = &realNode{lock: lock}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	if env.Dir == "" {
		sweepStaleDirs()
		if env.Dir, err = os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-"); err != nil {
			return nil, fmt.Errorf("creating test bed directory: %w", err)
		}
		env.ownDir = true
	}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()
	env.LogDir = filepath.Join(env.Dir, "logs")
	if err := os.MkdirAll(env.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	if env.pki, err = newPKI(env.Dir); err != nil {
		return nil, err
	}
	env.CA, env.FrontProxyCA = env.pki.ca, env.pki.frontProxyCA
	if err := env.startComponents(ctx); err != nil {
		return nil, err
	}
	if opts.Nodes > 0 {
		if err := env.AddNodes(ctx, "kwok-node-", opts.Nodes, opts.NodeCapacity); err != nil {
			return nil, err
		}
	}
	if opts.MetricsServer {
		if err := env.startMetricsServer(ctx); err != nil {
			return nil, err
		}
	}
	if opts.RealNodes > 0 {
		start := time.Now()
		if err := env.startRealNode(ctx); err != nil {
			return nil, err
		}
		env.RealNodeStartup = time.Since(start)
	}
	return env, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Nodes > 0 || o.MetricsServer {
		o.Kwok = true
	}
	if o.RealNodes < 0 || o.RealNodes > 1 {
		return o, fmt.Errorf("RealNodes must be 0 or 1 (one real node per machine), got %d", o.RealNodes)
	}
	if o.KwokPodCIDR == "" {
		o.KwokPodCIDR = "10.244.0.0/16"
	}
	if _, err := netip.ParsePrefix(o.KwokPodCIDR); err != nil {
		return o, fmt.Errorf("KwokPodCIDR: %w", err)
	}
	if o.RealNodeWait == 0 {
		o.RealNodeWait = 30 * time.Minute
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.HPASyncPeriod == 0 {
		o.HPASyncPeriod = 15 * time.Second
	}
	if o.BinRoot == "" {
		root, err := DefaultRoot()
		if err != nil {
			return o, err
		}
		o.BinRoot = root
	}
	return o, nil
}

// startComponents starts the processes in dependency order, each healthy before the next.
func (e *Env) startComponents(ctx context.Context) error {
	if err := e.startEtcd(ctx); err != nil {
		return err
	}
	if err := e.startAPIServer(ctx); err != nil {
		return err
	}
	if e.opts.ControllerManager {
		if err := e.startControllerManager(ctx); err != nil {
			return err
		}
	}
	if e.opts.Scheduler {
		if err := e.startScheduler(ctx); err != nil {
			return err
		}
	}
	if e.opts.Kwok {
		return e.startKwok()
	}
	return nil
}

func checkBinaries(opts Options) error {
	need := []string{"etcd", "kube-apiserver"}
	if opts.ControllerManager {
		need = append(need, "kube-controller-manager")
	}
	if opts.Scheduler {
		need = append(need, "kube-scheduler")
	}
	if opts.Kwok {
		need = append(need, "kwok")
	}
	if opts.MetricsServer {
		need = append(need, "metrics-server")
	}
	var errs []error
	for _, name := range need {
		if _, err := lookupBinary(opts.BinRoot, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UserConfig returns a client configuration authenticated as id through a certificate signed by
// the cluster CA, for tests that need an identity other than admin (RBAC checks).
func (e *Env) UserConfig(id Identity) (*rest.Config, error) {
	return identityConfig(e.CA, e.APIServerURL, id)
}

// Clientset returns a typed admin client.
func (e *Env) Clientset() (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, fmt.Errorf("building clientset: %w", err)
	}
	return cs, nil
}

// LogPath returns the log file of a component (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok, metrics-server).
func (e *Env) LogPath(component string) string {
	return filepath.Join(e.LogDir, component+".log")
}

// Pids returns the process IDs of every component the test bed started, by name.
func (e *Env) Pids() map[string]int {
	pids := make(map[string]int, len(e.procs))
	for _, p := range e.procs {
		pids[p.name] = p.cmd.Process.Pid
	}
	return pids
}

// Stop ends every process the test bed started, newest first, and removes the working directory
// if Start created it. It is safe to call more than once.
func (e *Env) Stop() error {
	if e == nil || e.stopOnce {
		return nil
	}
	e.stopOnce = true
	var errs []error
	if e.resizes != nil {
		e.resizes.stop()
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		if err := e.procs[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.realNode != nil {
		if err := e.realNode.stop(); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up the real node: %w", err))
		}
	}
	if e.ownDir {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", e.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// defaultNodeCapacity is roomy enough that tests are limited by replicas, not by node size.
func defaultNodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// Options returns the options the test bed was started with, defaults filled in.
func (e *Env) Options() Options { return e.opts }

// KeepDir makes Stop leave the working directory (certificates, logs) in place for inspection.
func (e *Env) KeepDir() { e.ownDir = false }
