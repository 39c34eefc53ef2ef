package backing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// ServicePort is where a service pod's demo API listens on its address.
const ServicePort = 8080

// ServiceStarter backs service pods with a demo API of capacity cfg on <pod address>:8080; the
// pod's CPU replaces cfg.CPU and follows its resizes.
func ServiceStarter(cfg demoapi.Config) Starter {
	return func(ctx context.Context, _ *corev1.Pod, addr netip.Addr, cpu float64) (Backend, error) {
		cfg := cfg
		cfg.CPU = cpu
		reg := prometheus.NewRegistry()
		api, err := demoapi.New(cfg, clock.RealClock{}, reg)
		if err != nil {
			return nil, err
		}
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(addr, ServicePort).String())
		if err != nil {
			return nil, fmt.Errorf("listening for a service pod: %w", err)
		}
		srv := &http.Server{Handler: api.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(l)
		}()
		return &serviceBackend{api: api, srv: srv, done: done}, nil
	}
}

type serviceBackend struct {
	api  *demoapi.Server
	srv  *http.Server
	done chan struct{}
}

func (b *serviceBackend) SetCPU(cores float64) error { return b.api.SetCPU(cores) }

func (b *serviceBackend) CPUSeconds() float64 { return b.api.CPUSeconds() }

func (b *serviceBackend) Stop() error {
	err := b.srv.Close()
	<-b.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// IngressStarter backs ingress pods with a Caddy (binary) run under env, with its files under
// dir/<pod>, routing as routes says at the pod's start.
func IngressStarter(env *testbed.Env, binary, dir string, routes func() []proxy.Route) Starter {
	return func(ctx context.Context, pod *corev1.Pod, addr netip.Addr, _ float64) (Backend, error) {
		name := "caddy-" + pod.Name + "-" + string(pod.UID)[:min(8, len(pod.UID))]
		c, err := proxy.Start(ctx, env, binary, name, addr.String(), filepath.Join(dir, name), routes())
		if err != nil {
			return nil, err
		}
		return ingressBackend{c}, nil
	}
}

type ingressBackend struct{ c *proxy.Caddy }

// SetCPU is not modelled for the proxy: Caddy uses what the machine gives it.
func (ingressBackend) SetCPU(float64) error { return nil }

func (b ingressBackend) Stop() error { return b.c.Stop() }

// CPUSeconds is what the Caddy process really used: the ingress pod's usage.
func (b ingressBackend) CPUSeconds() float64 { return b.c.CPUSeconds() }

// Routes returns the ingress routes to services (name → port) of namespace, each following the
// Service's pods through the DNS server at resolver.
func Routes(namespace, resolver string, services map[string]int) []proxy.Route {
	var out []proxy.Route
	for name, port := range services {
		host := ServiceName(name, namespace)
		out = append(out, proxy.Route{Host: host, Lookup: &proxy.Lookup{Name: host, Port: port, Resolver: resolver}})
	}
	return out
}
