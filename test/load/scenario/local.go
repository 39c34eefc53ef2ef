package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/load/backing"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/dns"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Plumbing is what differs between clusters: how a side's pods serve and how the load reaches
// them. Local backs a test bed's kwok pods with processes; InCluster uses a real cluster's pods.
type Plumbing interface {
	// Validate refuses a plumbing that could not run, before anything is created.
	Validate() error
	// Prepare adjusts a side's objects before they are created and adds any it needs.
	Prepare(s Side, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error)
	// Start readies a side once its objects exist, runs what it needs until ctx ends, and says
	// how the load reaches the side.
	Start(ctx context.Context, cs kubernetes.Interface, s Side, log logr.Logger) (Reach, error)
}

// Reach is how a side's load gets to its pods, and how the timeline knows which answer.
type Reach struct {
	// Target is where the n-th request goes; Allowed bounds the addresses it may go to.
	Target  func(n int64) string
	Allowed []netip.Prefix
	// Answering names which of the side's pods answer requests.
	Answering func(pods []corev1.Pod) map[string]bool
	// Events are what happened to the side's pods from start on (in-place resizes...).
	Events func(ctx context.Context, start time.Time) ([]timeline.Event, error)
	// Done is closed once what Start runs has stopped after its context ended; nil when
	// nothing runs.
	Done <-chan struct{}
}

// Local is the test bed's plumbing: every Running kwok pod of a side is backed by a real process
// on its loopback address (package backing), Caddy for the ingress tier and the demo API for the
// service tier. Services cannot hold loopback endpoints, so a DNS server on loopback names each
// Service's answering pods; Caddy's routes and the load generator look them up. Close it after
// the run.
type Local struct {
	Env *testbed.Env
	// Caddy is the proxy's binary (bin/testbed/caddy-…).
	Caddy string
	// Dir holds the Caddy processes' files.
	Dir string
	// PodCIDR is the bed's KwokPodCIDR: every scenario pod's address is in it.
	PodCIDR netip.Prefix
	// Service is the demo API's capacity model (its CPU comes from each pod).
	Service demoapi.Config

	mu    sync.Mutex
	names *dns.Server
}

// Validate refuses a missing test bed, Caddy binary or directory, pods off loopback, and a
// service model that could not serve.
func (l *Local) Validate() error {
	var errs []error
	if l.Env == nil || l.Caddy == "" || l.Dir == "" {
		errs = append(errs, errors.New("a test bed, a Caddy binary and a directory are required"))
	}
	if !l.PodCIDR.IsValid() || !l.PodCIDR.Addr().IsLoopback() {
		errs = append(errs, fmt.Errorf("pod range %s is not on loopback", l.PodCIDR))
	}
	if err := l.Service.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("service model: %w", err))
	}
	return errors.Join(errs...)
}

// Prepare leaves the objects as they are: the test bed runs the manifests unchanged.
func (l *Local) Prepare(_ Side, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	return objs, nil
}

// Start backs the side's pods until ctx ends; the load goes to its ingress pods in turn.
func (l *Local) Start(ctx context.Context, cs kubernetes.Interface, s Side, log logr.Logger) (Reach, error) {
	names, err := l.dns()
	if err != nil {
		return Reach{}, err
	}
	resolver := names.Addr()
	routes := func() []proxy.Route {
		return backing.Routes(s.Namespace, resolver, map[string]int{checkout: backing.ServicePort})
	}
	runner, err := backing.New(cs, backing.Options{
		Namespace: s.Namespace,
		Starters: map[string]backing.Starter{
			"ingress": backing.IngressStarter(l.Env, l.Caddy, filepath.Join(l.Dir, s.Namespace), routes),
			"service": backing.ServiceStarter(l.Service),
		},
		DNS:    names,
		Prefix: l.PodCIDR,
		Log:    log,
	})
	if err != nil {
		return Reach{}, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runner.Run(ctx); err != nil {
			log.Error(err, "backing pods")
		}
	}()
	return Reach{
		Target:  spread(names, backing.ServiceName(gateway, s.Namespace)),
		Allowed: []netip.Prefix{l.PodCIDR},
		Answering: func([]corev1.Pod) map[string]bool {
			out := map[string]bool{}
			for name := range runner.Backed() {
				out[name] = true
			}
			return out
		},
		Events: func(_ context.Context, start time.Time) ([]timeline.Event, error) {
			var out []timeline.Event
			for _, e := range runner.Events() {
				reason := e.Action
				if e.Action == backing.ActionResized {
					reason = timeline.EventResized
				}
				out = append(out, timeline.Event{
					Second: int(e.Time.Sub(start) / time.Second), Reason: reason,
					What: fmt.Sprintf("%s %s %s %s", e.Role, e.Pod, e.Action, e.Detail),
				})
			}
			return out, nil
		},
		Done: done,
	}, nil
}

// dns starts the DNS server on first use.
func (l *Local) dns() (*dns.Server, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil {
		names, err := dns.Listen("127.0.0.1")
		if err != nil {
			return nil, err
		}
		l.names = names
	}
	return l.names, nil
}

// Close stops the DNS server.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil {
		return nil
	}
	err := l.names.Close()
	l.names = nil
	return err
}

// noIngress is where requests go while no ingress pod answers: a refused connection, counted
// as an error, as a load balancer with no healthy backend fails them.
const noIngress = "http://127.0.0.1:1/"

// spread sends the n-th request to an ingress pod in turn, as DNS names them now.
func spread(names *dns.Server, ingress string) func(n int64) string {
	return func(n int64) string {
		addrs := names.Lookup(ingress)
		if len(addrs) == 0 {
			return noIngress
		}
		a := addrs[int(n%int64(len(addrs)))]
		return "http://" + netip.AddrPortFrom(a, proxy.HTTPPort).String() + "/"
	}
}
