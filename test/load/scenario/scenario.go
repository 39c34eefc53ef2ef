// Package scenario plays the sales event under real load, two sides at once: Lockstep's recipe
// in one namespace and the baseline (CPU-utilisation HPAs only) in another, with the same
// workloads (test/scenarios/sales) and the same load. The load generator sends each side's
// requests to its ingress tier, as a cloud load balancer in front of an ingress controller, with
// the service's in-cluster name as the Host. Where the pods serve is the Plumbing: on the test
// bed (Local) every Running kwok pod is backed by a real process (Caddy for the ingress tier,
// the demo API for the service tier); in a real cluster (InCluster, the kind load test) the pods
// run those images. Run returns the timeline of both sides; the caller starts Lockstep's
// components first.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/load/backing"
	"github.com/lockstep-dev/lockstep/test/load/loadgen"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
)

// The scenario's workloads, as test/scenarios/sales names them.
const (
	gateway  = "gateway"
	checkout = "checkout"
)

// Tiers are the workloads the timeline follows on each side.
var Tiers = []timeline.Tier{{Name: "ingress", Workload: gateway}, {Name: "service", Workload: checkout}}

// Side is one namespace of the run and how it scales.
type Side struct {
	Name      string
	Namespace string
	Policy    sales.Policy
}

// Config is one run.
type Config struct {
	// Rest reaches the cluster's API server.
	Rest *rest.Config
	// Plumbing runs and reaches the sides' pods: Local on the test bed, InCluster elsewhere.
	Plumbing Plumbing
	// Schedule is the load each side gets; it must have a "step" phase.
	Schedule loadgen.Schedule
	// WarmUpLead is how long before the step Lockstep's CronHPAs raise the floors; they lower
	// them when the step ends.
	WarmUpLead time.Duration
	// SLO is the P99 the service tier should keep.
	SLO time.Duration
	// Sides run at once, each in its own namespace (created if missing).
	Sides []Side
	// Tail is how long sampling goes on after the load ends.
	Tail time.Duration
	// Out receives a live line per side every LiveEvery (default 5 s); nil for none.
	Out       io.Writer
	LiveEvery time.Duration
	// Log receives the plumbing's notes (backends' starts, stops, failures) and sampling errors.
	Log logr.Logger
	// ReadyTimeout bounds the wait for each side's first pods to answer (default 2 min).
	ReadyTimeout time.Duration
	// Clock times the run (default: the real clock).
	Clock clock.WithTicker
	// Nodes, when set, gives each side its own node pool and adds the virtual node; the bed's
	// own nodes are then not used by the scenario. node-autoscaler must be running.
	Nodes *Nodes
}

func (c *Config) validate() error {
	var errs []error
	if c.Rest == nil || c.Plumbing == nil {
		errs = append(errs, errors.New("a cluster and its plumbing are required"))
	} else if err := c.Plumbing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Schedule.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, _, ok := stepSpan(c.Schedule); !ok {
		errs = append(errs, fmt.Errorf("the schedule has no %q phase", timeline.StepPhase))
	}
	if c.Nodes != nil && (c.Nodes.BootDelay < 0 || c.Nodes.InstanceType == "") {
		errs = append(errs, errors.New("node pools need an instance type and a boot delay of zero or more"))
	}
	if len(c.Sides) == 0 {
		errs = append(errs, errors.New("no sides"))
	}
	seen := map[string]bool{}
	for _, s := range c.Sides {
		if s.Name == "" || s.Namespace == "" || seen[s.Namespace] {
			errs = append(errs, fmt.Errorf("side %q: a name and a namespace of its own are required", s.Name))
		}
		seen[s.Namespace] = true
	}
	return errors.Join(errs...)
}

// stepSpan is the step phase's start and end from the schedule's start.
func stepSpan(s loadgen.Schedule) (from, to time.Duration, ok bool) {
	var at time.Duration
	for _, p := range s {
		if p.Name == timeline.StepPhase {
			return at, at + p.Duration, true
		}
		at += p.Duration
	}
	return 0, 0, false
}

// phases are the schedule's phases in whole seconds.
func phases(s loadgen.Schedule) []timeline.Phase {
	var out []timeline.Phase
	var at time.Duration
	for _, p := range s {
		out = append(out, timeline.Phase{Name: p.Name, From: int(at / time.Second), To: int((at + p.Duration) / time.Second)})
		at += p.Duration
	}
	return out
}

// side is a side while it runs.
type side struct {
	Side
	reach  Reach
	gen    *loadgen.Generator
	result *loadgen.Result
	genErr error
	// samples without the load, one a second, filled in with the generator's windows at the end.
	mu      sync.Mutex
	samples []timeline.Sample
	// sampleErrors counts the rounds that could not read the side (the sampler's own count).
	sampleErrors int
}

// Run plays the scenario and returns its timeline. Lockstep's components (cronhpa, the metrics
// adapter reading the ingress pods through its caddy profile, vpa-inplace, and metrics-server for
// the baseline's CPU HPAs and the VPA's usage) must be running.
func Run(ctx context.Context, cfg Config) (*timeline.Timeline, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if cfg.LiveEvery <= 0 {
		cfg.LiveEvery = 5 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	clk := cfg.Clock
	cs, err := kubernetes.NewForConfig(cfg.Rest)
	if err != nil {
		return nil, fmt.Errorf("creating a clientset: %w", err)
	}
	c, err := client.New(cfg.Rest, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	if closer, ok := cfg.Plumbing.(io.Closer); ok {
		defer closer.Close()
	}
	runCtx, stopPlumbing := context.WithCancel(ctx)
	var sides []*side
	defer func() {
		stopPlumbing()
		for _, sd := range sides {
			if sd.reach.Done != nil {
				<-sd.reach.Done
			}
		}
	}()
	if cfg.Nodes != nil {
		for _, o := range nodeObjects(*cfg.Nodes, cfg.Sides) {
			if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
			}
		}
	}
	for _, s := range cfg.Sides {
		sd, err := prepare(runCtx, cfg, cs, c, s)
		if err != nil {
			return nil, err
		}
		sides = append(sides, sd)
	}
	for _, sd := range sides {
		if err := waitAnswering(ctx, clk, cs, sd, cfg.ReadyTimeout); err != nil {
			return nil, err
		}
	}

	start, err := startAt(ctx, cfg, c, sides)
	if err != nil {
		return nil, err
	}
	if err := play(ctx, cfg, cs, sides, start); err != nil {
		return nil, err
	}
	return assemble(ctx, cfg, cs, sides, start)
}

// movedBack lists the pods node-autoscaler moved back from serverless capacity in namespace
// since start, as events at their second from start.
func movedBack(ctx context.Context, cs kubernetes.Interface, namespace string, start time.Time) ([]timeline.Event, error) {
	// Pods spilled while the first nodes booted and moved back before the load are set-up.
	events, err := eventsSince(ctx, cs, namespace, timeline.EventMovedBack, start)
	if err != nil {
		return nil, fmt.Errorf("listing the pods moved back: %w", err)
	}
	var out []timeline.Event
	seen := map[string]bool{}
	for _, e := range events {
		// One pod moves back once; a repeated event for it is not another move.
		uid := string(e.InvolvedObject.UID)
		if seen[uid] {
			continue
		}
		seen[uid] = true
		out = append(out, timelineEvent(e, start, timeline.EventMovedBack))
	}
	return out, nil
}

// startAt creates Lockstep's CronHPAs, timed from the load's start, and waits for that start.
// It is set a little ahead so that creating them (through cronhpa's webhook) cannot delay the
// load: the CronHPAs' jobs, the samples and the load's seconds all count from one instant.
func startAt(ctx context.Context, cfg Config, c client.Client, sides []*side) (time.Time, error) {
	clk := cfg.Clock
	start := clk.Now().Add(startLead).Truncate(time.Second)
	stepFrom, stepTo, _ := stepSpan(cfg.Schedule)
	times := sales.Times{WarmUp: start.Add(stepFrom - cfg.WarmUpLead), SaleEnd: start.Add(stepTo)}
	for _, sd := range sides {
		if err := apply(ctx, c, sd, cfg, times, true); err != nil {
			return start, err
		}
	}
	if late := clk.Since(start); late > 0 {
		return start, fmt.Errorf("creating the CronHPAs took past the load's start (%s late)", late)
	}
	select {
	case <-ctx.Done():
		return start, ctx.Err()
	case <-clk.After(start.Sub(clk.Now())):
	}
	return start, nil
}

// play sends every side's load at once and samples the sides until Tail after it ends.
func play(ctx context.Context, cfg Config, cs kubernetes.Interface, sides []*side, start time.Time) error {
	var load sync.WaitGroup
	for _, sd := range sides {
		load.Add(1)
		go func() {
			defer load.Done()
			sd.result, sd.genErr = sd.gen.Run(ctx)
		}()
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sample(sampleCtx, cfg, cs, sides, start)
	}()
	load.Wait()
	select {
	case <-ctx.Done():
	case <-cfg.Clock.After(cfg.Tail):
	}
	stopSampling()
	<-sampled
	for _, sd := range sides {
		if sd.genErr != nil {
			return fmt.Errorf("side %s: load: %w", sd.Name, sd.genErr)
		}
	}
	return ctx.Err()
}

// prepare creates a side's namespace and objects (all but the CronHPAs, which wait for the
// load's start), starts its plumbing and makes its load generator.
func prepare(ctx context.Context, cfg Config, cs kubernetes.Interface, c client.Client, s Side) (*side, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", s.Namespace, err)
	}
	sd := &side{Side: s}
	// The CronHPAs are left out here; these times only pass validation.
	now := cfg.Clock.Now()
	if err := apply(ctx, c, sd, cfg, sales.Times{WarmUp: now, SaleEnd: now.Add(time.Hour)}, false); err != nil {
		return nil, err
	}
	reach, err := cfg.Plumbing.Start(ctx, cs, s, cfg.Log.WithValues("side", s.Name))
	if err != nil {
		return nil, fmt.Errorf("side %s: %w", s.Name, err)
	}
	sd.reach = reach
	sd.gen = &loadgen.Generator{
		Schedule: cfg.Schedule,
		Host:     backing.ServiceName(checkout, s.Namespace),
		Target:   reach.Target,
		Allowed:  reach.Allowed,
	}
	return sd, nil
}

// startLead is how far ahead of now the load's start is set.
const startLead = 5 * time.Second

// apply creates a side's objects: the CronHPAs only when crons is set, everything else,
// prepared by the plumbing, otherwise. With node pools, the Deployments' pods go to the side's
// own nodes.
func apply(ctx context.Context, c client.Client, sd *side, cfg Config, times sales.Times, crons bool) error {
	all, err := sales.Objects(sd.Policy, sd.Namespace, times)
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, o := range all {
		if (o.GetKind() == "CronHorizontalPodAutoscaler") != crons {
			continue
		}
		if cfg.Nodes != nil {
			if err := placeOnSide(o, sd.Side); err != nil {
				return err
			}
		}
		objs = append(objs, o)
	}
	if !crons {
		if objs, err = cfg.Plumbing.Prepare(sd.Side, objs); err != nil {
			return fmt.Errorf("side %s: %w", sd.Name, err)
		}
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("side %s: creating %s %s: %w", sd.Name, o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// waitAnswering waits until a side's first pods of every tier answer.
func waitAnswering(ctx context.Context, clk clock.Clock, cs kubernetes.Interface, sd *side, timeout time.Duration) error {
	deadline := clk.Now().Add(timeout)
	for {
		ready := map[string]int{}
		pods, err := cs.CoreV1().Pods(sd.Namespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			for name := range sd.reach.Answering(pods.Items) {
				for _, t := range Tiers {
					if strings.HasPrefix(name, t.Workload+"-") {
						ready[t.Workload]++
					}
				}
			}
		}
		if ready[gateway] > 0 && ready[checkout] > 0 {
			return nil
		}
		if clk.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("side %s: listing its pods: %w", sd.Name, err)
			}
			return fmt.Errorf("side %s: pods answering after %s: %v (want every tier)", sd.Name, timeout, ready)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clk.After(200 * time.Millisecond):
		}
	}
}

// sample reads each side's cluster state every second until ctx ends, printing a live line
// every cfg.LiveEvery.
func sample(ctx context.Context, cfg Config, cs kubernetes.Interface, sides []*side, start time.Time) {
	tick := cfg.Clock.NewTicker(time.Second)
	defer tick.Stop()
	for {
		second := int(cfg.Clock.Since(start) / time.Second)
		var lines []string
		nodes, nodesErr := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		for _, sd := range sides {
			cl, err := sideCluster(ctx, cfg, cs, sd.Namespace, sd.Name, nodes, nodesErr)
			if err != nil {
				if ctx.Err() == nil {
					cfg.Log.Error(err, "sampling", "side", sd.Name)
					sd.sampleErrors++
				}
				continue
			}
			cl.Backed, cl.Now = sd.reach.Answering(cl.Pods), cfg.Clock.Now()
			smp := timeline.Observe(second, Tiers, cl, timeline.Load{})
			sd.mu.Lock()
			sd.samples = append(sd.samples, smp)
			sd.mu.Unlock()
			// The live view shows a second 3 s back: its answers are in unless they queued longer.
			w, _ := sd.gen.Live(second - 3)
			lines = append(lines, live(sd.Name, smp, w))
		}
		if cfg.Out != nil && second%max(1, int(cfg.LiveEvery/time.Second)) == 0 {
			for i, l := range lines {
				at := ""
				if i == 0 {
					at = "t+" + strconv.Itoa(second) + "s"
				}
				fmt.Fprintf(cfg.Out, "%-7s %s\n", at, l)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
	}
}

// sideCluster reads one side's cluster state for a sampling round. Every failure fails the
// round, which Summarize then refuses: the nodes' listing, the side's objects, and pointing
// metrics-server at the side's new nodes (a node it cannot read leaves the CPU HPAs without
// their pods' usage, which is not what the side's scaling would see in a cluster).
func sideCluster(ctx context.Context, cfg Config, cs kubernetes.Interface, namespace, name string, nodes *corev1.NodeList, nodesErr error) (timeline.Cluster, error) {
	if nodesErr != nil {
		return timeline.Cluster{}, fmt.Errorf("listing nodes: %w", nodesErr)
	}
	cl, err := timeline.Gather(ctx, cs, namespace, nodes.Items)
	if err != nil {
		return cl, err
	}
	if cfg.Nodes != nil {
		cl.Nodes = sideNodes(cl.Nodes, name)
		if err := measureNodes(ctx, cs, cl.Nodes); err != nil {
			return cl, err
		}
	}
	return cl, nil
}

// live is a side's line in the live view: pods answering of those its HPAs want, the load of
// window w, nodes Ready of those launched, and pods on serverless capacity.
func live(name string, s timeline.Sample, w loadgen.Window) string {
	in, svc := s.Tiers["ingress"], s.Tiers["service"]
	return fmt.Sprintf("%-9s gateway %2d/%-2d checkout %2d/%-2d | %4d req/s OK %4d failed p99 %5d ms | nodes %d/%d serverless %d",
		name, in.Backed, in.Desired, svc.Backed, svc.Desired, w.OK, w.Failed+w.Errors+w.Dropped, w.P99.Milliseconds(),
		s.NodesReady, s.Nodes, in.Serverless+svc.Serverless)
}

// assemble joins the samples with the generator's windows and the pods moved back into the
// timeline.
func assemble(ctx context.Context, cfg Config, cs kubernetes.Interface, sides []*side, start time.Time) (*timeline.Timeline, error) {
	tl := &timeline.Timeline{Start: start, Tiers: Tiers, Phases: phases(cfg.Schedule), SLOMillis: float64(cfg.SLO.Milliseconds())}
	stepFrom, stepTo, _ := stepSpan(cfg.Schedule)
	for _, sd := range sides {
		moved, err := movedBack(ctx, cs, sd.Namespace, start)
		if err != nil {
			return nil, fmt.Errorf("side %s: %w", sd.Name, err)
		}
		out := timeline.Side{Name: sd.Name, Namespace: sd.Namespace}
		step := sd.result.Between(int(stepFrom/time.Second), int(stepTo/time.Second))
		out.StepLoad = loadOf(step)
		loads := map[int]timeline.Load{}
		for _, w := range sd.result.Windows {
			loads[w.Second] = loadOf(w)
		}
		out.Samples, out.SampleErrors = timeline.Join(sd.samples, loads), sd.sampleErrors
		events, err := sd.reach.Events(ctx, start)
		if err != nil {
			return nil, fmt.Errorf("side %s: %w", sd.Name, err)
		}
		out.Events = append(events, moved...)
		sort.SliceStable(out.Events, func(i, j int) bool { return out.Events[i].Second < out.Events[j].Second })
		tl.Sides = append(tl.Sides, out)
	}
	return tl, nil
}

func loadOf(w loadgen.Window) timeline.Load {
	return timeline.Load{Rate: w.Rate, Sent: w.Sent, OK: w.OK, Failed: w.Failed, Errors: w.Errors, Dropped: w.Dropped, P50: w.P50, P99: w.P99}
}
