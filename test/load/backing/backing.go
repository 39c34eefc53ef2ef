// Package backing makes the load scenario's pods real on kwok nodes. kwok gives every pod its
// own loopback address (the test bed's KwokPodCIDR, e.g. 127.64.0.0/16) but runs nothing; a
// Runner starts a real server on that address when a scenario pod is Running and stops it when
// the pod stops running or goes away: a Caddy for an ingress pod, a demo API for a service pod.
// It also publishes each Service's backed pods in the harness's DNS (package dns), as cluster
// DNS does for a headless Service, since EndpointSlices refuse loopback addresses.
package backing

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/test/load/dns"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// RoleLabel marks a scenario pod with the Starter that backs it ("ingress", "service").
const RoleLabel = "load.lockstep.dev/role"

// Backend is what runs for one pod.
type Backend interface {
	// SetCPU tells the backend its pod's CPU in cores (the limit, or the request without one),
	// at start and after every in-place resize.
	SetCPU(cores float64) error
	// Stop ends the backend and frees its address.
	Stop() error
}

// UsageMeter is a Backend that measures the CPU it used (core-seconds so far). The Runner
// reports its rate as the pod's CPU usage (kwok's usage annotation, read by metrics-server), so
// CPU-utilisation HPAs and VPA recommendations see the load.
type UsageMeter interface {
	CPUSeconds() float64
}

// Starter starts the backend of a Running pod at its address (pod.Status.PodIP, on loopback)
// and returns once it answers there.
type Starter func(ctx context.Context, pod *corev1.Pod, addr netip.Addr, cpu float64) (Backend, error)

// Options configure a Runner.
type Options struct {
	// Namespace holds the scenario's pods and Services.
	Namespace string
	// Starters by role (RoleLabel's value). A pod whose role has none is not backed.
	Starters map[string]Starter
	// DNS receives <service>.<namespace>.svc.cluster.local for every Service of Namespace with
	// a selector: the addresses of its backed pods.
	DNS *dns.Server
	// Prefix is the range pod addresses must be in; a pod elsewhere is never backed. It must
	// be on loopback.
	Prefix netip.Prefix
	// StartTimeout bounds one backend's start (default 30 s).
	StartTimeout time.Duration
	// Log receives starts, stops and failures.
	Log logr.Logger
	// Clock stamps events, times usage and drains (default: the real clock).
	Clock clock.Clock
	// DrainDelay is how long a backend keeps serving after its pod went (default 2 s; negative:
	// none). The pod leaves DNS first, as a pod leaves its Service's endpoints and then runs
	// its preStop delay, so the proxy's cached lookups (1 s) never send it requests after it
	// stopped.
	DrainDelay time.Duration
	// UsageInterval is how often pods' CPU usage is reported (default 5 s).
	UsageInterval time.Duration
}

// Runner keeps one backend per Running scenario pod.
type Runner struct {
	cs       kubernetes.Interface
	opts     Options
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	kick     chan struct{}
	start    func(context.Context) bool
	shutdown func()

	draining sync.WaitGroup // backends of pods that went, serving out their drain delay

	mu      sync.Mutex
	backing map[types.UID]*backed
	// drainingAt holds the draining backends by address: kwok may give a gone pod's address to
	// a new pod at once, and the new backend must wait for the old one to let it go.
	drainingAt map[netip.Addr]*backed
	events     []Event
}

// backed is one pod's backend, starting or running.
type backed struct {
	name    string
	addr    netip.Addr
	labels  labels.Set
	cpu     float64
	backend Backend // nil while starting
	failed  error   // every start attempt failed: not tried again for this pod

	// While draining: cut ends the drain early (once), stopped is closed when it stopped.
	cut     sync.Once
	stopNow chan struct{}
	stopped chan struct{}

	// The last usage sample: CPU seconds at a time, and the usage reported.
	sampledAt  time.Time
	cpuSeconds float64
	reported   string
}

// Event records a backend starting or stopping, for the scenario's timeline.
type Event struct {
	Time   time.Time
	Pod    string
	Role   string
	Action string // ActionStarted, ActionStopped, ActionFailed, ActionRetried or ActionResized
	Detail string
}

// What an Event records.
const (
	ActionStarted = "started"
	ActionStopped = "stopped"
	ActionFailed  = "failed"
	// ActionRetried is a failed start that is tried again.
	ActionRetried = "retried"
	// ActionResized is a backend following an in-place resize of its pod's CPU.
	ActionResized = "resized"
)

// maxEvents bounds the events a Runner keeps (the oldest go first).
const maxEvents = 10_000

// New returns a Runner over cs; Run starts it.
func New(cs kubernetes.Interface, opts Options) (*Runner, error) {
	if opts.Namespace == "" || opts.DNS == nil {
		return nil, fmt.Errorf("backing: a namespace and a DNS server are required")
	}
	if !opts.Prefix.IsValid() || !opts.Prefix.Addr().IsLoopback() {
		return nil, fmt.Errorf("backing: pod range %s is not on loopback", opts.Prefix)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.UsageInterval <= 0 {
		opts.UsageInterval = 5 * time.Second
	}
	if opts.DrainDelay == 0 {
		opts.DrainDelay = 2 * time.Second
	}
	r := &Runner{cs: cs, opts: opts, kick: make(chan struct{}, 1), backing: map[types.UID]*backed{}, drainingAt: map[netip.Addr]*backed{}}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(opts.Namespace))
	podInf := factory.Core().V1().Pods()
	svcInf := factory.Core().V1().Services()
	r.pods, r.services = podInf.Lister(), svcInf.Lister()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.wake() },
		UpdateFunc: func(any, any) { r.wake() },
		DeleteFunc: func(any) { r.wake() },
	}
	if _, err := podInf.Informer().AddEventHandler(handler); err != nil {
		return nil, fmt.Errorf("backing: watching pods: %w", err)
	}
	if _, err := svcInf.Informer().AddEventHandler(handler); err != nil {
		return nil, fmt.Errorf("backing: watching services: %w", err)
	}
	r.start = func(ctx context.Context) bool {
		factory.Start(ctx.Done())
		for _, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return false
			}
		}
		return true
	}
	r.shutdown = factory.Shutdown
	return r, nil
}

func (r *Runner) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run backs pods until ctx ends, then stops every backend.
func (r *Runner) Run(ctx context.Context) error {
	defer r.shutdown()
	if !r.start(ctx) {
		return fmt.Errorf("backing: caches did not sync: %w", ctx.Err())
	}
	var starts sync.WaitGroup
	defer func() {
		starts.Wait()
		r.draining.Wait()
		r.stopAll()
	}()
	tick := time.NewTicker(time.Second) // also retries DNS updates; events are the fast path
	defer tick.Stop()
	usage := time.NewTicker(r.opts.UsageInterval)
	defer usage.Stop()
	for {
		r.sync(ctx, &starts)
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-tick.C:
		case <-usage.C:
			r.reportUsage(ctx)
		}
	}
}

// reportUsage sets each metered pod's usage annotation to its CPU rate since the last sample,
// patching only that annotation, and only when it changed.
func (r *Runner) reportUsage(ctx context.Context) {
	now := r.opts.Clock.Now()
	type report struct{ name, value string }
	var reports []report
	r.mu.Lock()
	for _, b := range r.backing {
		m, ok := b.backend.(UsageMeter)
		if !ok {
			continue
		}
		secs := m.CPUSeconds()
		if !b.sampledAt.IsZero() {
			value := UsageQuantity(secs-b.cpuSeconds, now.Sub(b.sampledAt), b.cpu)
			if value != b.reported {
				reports = append(reports, report{b.name, value})
				b.reported = value
			}
		}
		b.sampledAt, b.cpuSeconds = now, secs
	}
	r.mu.Unlock()
	for _, rep := range reports {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, testbed.UsageCPUAnnotation, rep.value)
		if _, err := r.cs.CoreV1().Pods(r.opts.Namespace).Patch(ctx, rep.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			r.opts.Log.Error(err, "reporting a pod's CPU usage", "pod", rep.name)
		}
	}
}

// UsageQuantity is the CPU usage, in millicores, of cpuSeconds used over elapsed, at most
// limit cores (a container cannot use more than its limit).
func UsageQuantity(cpuSeconds float64, elapsed time.Duration, limit float64) string {
	if elapsed <= 0 || cpuSeconds < 0 {
		return "0m"
	}
	cores := min(cpuSeconds/elapsed.Seconds(), limit)
	return fmt.Sprintf("%dm", int64(math.Round(cores*1000)))
}

// desired is a pod that should be backed.
type desired struct {
	pod  *corev1.Pod
	addr netip.Addr
	cpu  float64
}

// Wanted returns the pods of pods that should have a backend: Running, not being deleted, with
// a role that has a starter and an address in prefix.
func Wanted(pods []*corev1.Pod, roles map[string]Starter, prefix netip.Prefix) map[types.UID]desired {
	out := map[types.UID]desired{}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := roles[p.Labels[RoleLabel]]; !ok {
			continue
		}
		addr, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !prefix.Contains(addr) {
			continue
		}
		out[p.UID] = desired{pod: p, addr: addr, cpu: PodCPU(p)}
	}
	return out
}

// PodCPU is the pod's CPU in cores: the first container's limit, or its request without one,
// or 1 core when it has neither.
func PodCPU(p *corev1.Pod) float64 {
	if len(p.Spec.Containers) == 0 {
		return 1
	}
	res := p.Spec.Containers[0].Resources
	if q, ok := res.Limits[corev1.ResourceCPU]; ok && !q.IsZero() {
		return q.AsApproximateFloat64()
	}
	if q, ok := res.Requests[corev1.ResourceCPU]; ok && !q.IsZero() {
		return q.AsApproximateFloat64()
	}
	return 1
}

// sync starts, resizes and stops backends to match the pods, then publishes DNS.
func (r *Runner) sync(ctx context.Context, starts *sync.WaitGroup) {
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		r.opts.Log.Error(err, "listing pods")
		return
	}
	want := Wanted(pods, r.opts.Starters, r.opts.Prefix)
	var stop []*backed
	r.mu.Lock()
	for uid, b := range r.backing {
		d, ok := want[uid]
		if !ok || d.addr != b.addr {
			if b.backend != nil || b.failed != nil {
				delete(r.backing, uid)
				if b.backend != nil {
					b.stopNow, b.stopped = make(chan struct{}), make(chan struct{})
					r.drainingAt[b.addr] = b
					stop = append(stop, b)
				}
			}
			continue // a backend still starting is stopped once it has started
		}
		if b.backend != nil && d.cpu != b.cpu {
			if err := b.backend.SetCPU(d.cpu); err != nil {
				r.record(b.name, d.pod.Labels[RoleLabel], ActionFailed, fmt.Sprintf("resize to %g cores: %v", d.cpu, err))
			} else {
				r.record(b.name, d.pod.Labels[RoleLabel], ActionResized, fmt.Sprintf("%g cores", d.cpu))
				b.cpu = d.cpu
			}
		}
	}
	for uid, d := range want {
		if _, ok := r.backing[uid]; ok {
			continue
		}
		b := &backed{name: d.pod.Name, addr: d.addr, labels: labels.Set(d.pod.Labels), cpu: d.cpu}
		r.backing[uid] = b
		starts.Add(1)
		prev := r.drainingAt[d.addr]
		go func(uid types.UID, d desired) {
			defer starts.Done()
			if prev != nil { // the address's last backend must let it go first
				prev.cut.Do(func() { close(prev.stopNow) })
				<-prev.stopped
			}
			r.startOne(ctx, uid, b, d)
		}(uid, d)
	}
	r.mu.Unlock()
	r.publish() // the pods that went leave DNS before their backends stop
	for _, b := range stop {
		r.drain(ctx, b)
	}
}

// drain stops b after the drain delay, or at once when ctx ends or a new pod needs its address.
func (r *Runner) drain(ctx context.Context, b *backed) {
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		defer close(b.stopped)
		if r.opts.DrainDelay > 0 {
			t := r.opts.Clock.NewTimer(r.opts.DrainDelay)
			select {
			case <-ctx.Done():
			case <-b.stopNow:
			case <-t.C():
			}
			t.Stop()
		}
		r.stopOne(b)
		r.mu.Lock()
		if r.drainingAt[b.addr] == b {
			delete(r.drainingAt, b.addr)
		}
		r.mu.Unlock()
	}()
}

// startRetries bounds the attempts at starting one pod's backend; the waits between them double
// from startBackoff, so a new pod whose address a gone pod's backend still holds (kwok hands
// addresses out again at once) gets it once that backend has drained.
const (
	startRetries = 6
	startBackoff = 500 * time.Millisecond
)

func (r *Runner) startOne(ctx context.Context, uid types.UID, b *backed, d desired) {
	role := d.pod.Labels[RoleLabel]
	wait := startBackoff
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout)
		backend, err := r.opts.Starters[role](sctx, d.pod, d.addr, d.cpu)
		cancel()
		r.mu.Lock()
		if err == nil {
			b.backend = backend
			r.record(b.name, role, ActionStarted, b.addr.String())
			r.mu.Unlock()
			r.wake() // the pod may have gone while it started, and DNS has a new address
			return
		}
		gone := !r.stillWanted(uid, d)
		if attempt >= startRetries || gone || ctx.Err() != nil {
			b.failed = err
			r.record(b.name, role, ActionFailed, fmt.Sprintf("attempt %d: %v", attempt, err))
			r.opts.Log.Error(err, "starting a pod's backend", "pod", b.name, "address", b.addr, "attempts", attempt)
			r.mu.Unlock()
			r.wake()
			return
		}
		r.record(b.name, role, ActionRetried, fmt.Sprintf("attempt %d: %v", attempt, err))
		r.mu.Unlock()
		t := r.opts.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		}
		t.Stop()
		wait *= 2
	}
}

// stillWanted reports whether the pod d was started for still wants its backend at d's address.
func (r *Runner) stillWanted(uid types.UID, d desired) bool {
	p, err := r.pods.Pods(r.opts.Namespace).Get(d.pod.Name)
	if err != nil || p.UID != uid {
		return false
	}
	w, ok := Wanted([]*corev1.Pod{p}, r.opts.Starters, r.opts.Prefix)[uid]
	return ok && w.addr == d.addr
}

func (r *Runner) stopOne(b *backed) {
	err := b.backend.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.record(b.name, b.labels[RoleLabel], ActionFailed, "stop: "+err.Error())
		return
	}
	r.record(b.name, b.labels[RoleLabel], ActionStopped, b.addr.String())
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	var all []*backed
	for uid, b := range r.backing {
		if b.backend != nil {
			all = append(all, b)
		}
		delete(r.backing, uid)
	}
	r.mu.Unlock()
	for _, b := range all {
		r.stopOne(b)
	}
}

// publish sets each Service's DNS name to its backed pods' addresses.
func (r *Runner) publish() {
	services, err := r.services.List(labels.Everything())
	if err != nil {
		r.opts.Log.Error(err, "listing services")
		return
	}
	r.mu.Lock()
	var ready []*backed
	for _, b := range r.backing {
		if b.backend != nil {
			ready = append(ready, b)
		}
	}
	r.mu.Unlock()
	for _, svc := range services {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		var addrs []netip.Addr
		for _, b := range ready {
			if sel.Matches(b.labels) {
				addrs = append(addrs, b.addr)
			}
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		if err := r.opts.DNS.Set(ServiceName(svc.Name, svc.Namespace), addrs); err != nil {
			r.opts.Log.Error(err, "publishing a service in DNS", "service", svc.Name)
		}
	}
}

// ServiceName is a Service's in-cluster DNS name.
func ServiceName(name, namespace string) string {
	return name + "." + namespace + ".svc.cluster.local"
}

// record appends an event; r.mu is held.
func (r *Runner) record(pod, role, action, detail string) {
	if len(r.events) >= maxEvents {
		r.events = r.events[1:]
	}
	r.events = append(r.events, Event{Time: r.opts.Clock.Now(), Pod: pod, Role: role, Action: action, Detail: detail})
}

// Events returns what happened so far, oldest first.
func (r *Runner) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Backed returns the addresses of the pods backed now, by pod name.
func (r *Runner) Backed() map[string]netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]netip.Addr{}
	for _, b := range r.backing {
		if b.backend != nil {
			out[b.name] = b.addr
		}
	}
	return out
}
