// Package proxy runs the load harness's ingress tier: one Caddy process per ingress pod, on the
// pod's own address, routing each backend Service's in-cluster host name to that Service's pods,
// with per-host metrics that the metrics adapter's caddy profile reads.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lockstep-dev/lockstep/test/load/procstat"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Route sends requests for Host (a Service's in-cluster name, e.g. checkout.shop.svc.cluster.local)
// to the Service's pods: fixed Upstreams (host:port), or the addresses DNS gives for Lookup.
type Route struct {
	Host      string
	Upstreams []string
	// Lookup, when set, takes the pods from DNS instead of Upstreams.
	Lookup *Lookup
}

// Lookup finds a Service's pods in DNS, as an ingress controller follows a Service's
// endpoints: Caddy resolves Name's A records at Resolver (host:port) at most once a second and
// sends requests to Port on each address. A new pod gets traffic within a second and no config
// is loaded, so Caddy's metrics keep counting.
type Lookup struct {
	Name     string
	Port     int
	Resolver string
}

// lookupRefresh is how long Caddy keeps a lookup's answer.
const lookupRefresh = "1s"

// Ports of an ingress pod's Caddy on the pod's address.
const (
	// HTTPPort serves the proxied traffic.
	HTTPPort = 8080
	// AdminPort serves Caddy's admin API and its Prometheus /metrics.
	AdminPort = 2019
)

// Config is the Caddy JSON configuration of an ingress pod at addr with routes, keeping Caddy's
// storage under dataDir.
func Config(addr, dataDir string, routes []Route) ([]byte, error) {
	if net.ParseIP(addr) == nil {
		return nil, fmt.Errorf("ingress address %q is not an IP address", addr)
	}
	caddyRoutes, err := routesJSON(routes)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		// The admin API checks the Host header against its origins: the pod's address, which is
		// also how the adapter scrapes /metrics.
		"admin": map[string]any{
			"listen":  net.JoinHostPort(addr, strconv.Itoa(AdminPort)),
			"origins": []any{net.JoinHostPort(addr, strconv.Itoa(AdminPort))},
		},
		"storage": map[string]any{"module": "file_system", "root": dataDir},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "WARN"}}},
		"apps": map[string]any{"http": map[string]any{
			"metrics": map[string]any{"per_host": true},
			"servers": map[string]any{"ingress": server(net.JoinHostPort(addr, strconv.Itoa(HTTPPort)), caddyRoutes)},
		}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// Caddy is one ingress pod's proxy process.
type Caddy struct {
	addr, dir string
	proc      *testbed.Process
	client    *http.Client
	cpu       atomic.Uint64 // the last CPU seconds read, as float64 bits
}

// startTimeout bounds how long Caddy may take to answer on its admin API.
const startTimeout = 30 * time.Second

// Start runs Caddy (binary) for an ingress pod at addr under env, with its files in dir, and
// returns once its admin API answers (30 s at most).
func Start(ctx context.Context, env *testbed.Env, binary, name, addr, dir string, routes []Route) (*Caddy, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	cfg, err := Config(addr, filepath.Join(dir, "data"), routes)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	proc, err := env.Run(name, binary, "run", "--config", path)
	if err != nil {
		return nil, err
	}
	c := &Caddy{addr: addr, dir: dir, proc: proc, client: &http.Client{Timeout: 5 * time.Second}}
	for {
		if proc.Exited() {
			return nil, fmt.Errorf("caddy %s exited at start; see %s", name, env.LogPath(name))
		}
		if resp, err := c.admin(ctx, http.MethodGet, "/config/", nil); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			_ = proc.Stop()
			return nil, fmt.Errorf("caddy %s: admin API not answering at %s: %w", name, c.AdminURL(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AdminURL is the admin API's base URL; /metrics is under it.
func (c *Caddy) AdminURL() string {
	return "http://" + net.JoinHostPort(c.addr, strconv.Itoa(AdminPort))
}

// URL is where the proxied traffic goes.
func (c *Caddy) URL() string {
	return "http://" + net.JoinHostPort(c.addr, strconv.Itoa(HTTPPort))
}

func (c *Caddy) admin(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.AdminURL()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.client.Do(req)
}

// Load replaces the routes (a backend's pods came or went) without dropping connections.
func (c *Caddy) Load(ctx context.Context, routes []Route) error {
	cfg, err := Config(c.addr, filepath.Join(c.dir, "data"), routes)
	if err != nil {
		return err
	}
	resp, err := c.admin(ctx, http.MethodPost, "/load", cfg)
	if err != nil {
		return fmt.Errorf("loading routes into caddy at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("loading routes into caddy at %s: HTTP %d: %s", c.addr, resp.StatusCode, msg)
	}
	return nil
}

// Stop ends the process.
func (c *Caddy) Stop() error { return c.proc.Stop() }

// CPUSeconds is the CPU time the Caddy process has used so far; the last value read when it
// cannot be read (the process just ended).
func (c *Caddy) CPUSeconds() float64 {
	if secs, err := procstat.CPUSeconds(c.proc.Pid()); err == nil {
		c.cpu.Store(math.Float64bits(secs))
	}
	return math.Float64frombits(c.cpu.Load())
}

// ClusterConfig is the Caddy JSON configuration of an ingress pod in a real cluster: traffic on
// HTTPPort and Prometheus /metrics on AdminPort, both on every interface of the pod. The admin API
// is off: nothing reconfigures a pod's Caddy once it runs, and its /metrics would refuse requests
// whose Host is not an origin it knows, such as the pod's address.
func ClusterConfig(routes []Route) ([]byte, error) {
	caddyRoutes, err := routesJSON(routes)
	if err != nil {
		return nil, err
	}
	metrics := []any{map[string]any{"handle": []any{map[string]any{"handler": "metrics"}}}}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "WARN"}}},
		"apps": map[string]any{"http": map[string]any{
			"metrics": map[string]any{"per_host": true},
			"servers": map[string]any{
				"ingress": server(":"+strconv.Itoa(HTTPPort), caddyRoutes),
				"metrics": server(":"+strconv.Itoa(AdminPort), metrics),
			},
		}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

func server(listen string, routes []any) map[string]any {
	return map[string]any{
		"listen":              []any{listen},
		"routes":              routes,
		"automatic_https":     map[string]any{"disable": true},
		"protocols":           []any{"h1"},
		"idle_timeout":        "2m",
		"read_header_timeout": "10s",
	}
}

// routesJSON is Caddy's routes for routes, sorted by host. A lookup without a resolver uses the
// system's (a cluster's DNS).
func routesJSON(routes []Route) ([]any, error) {
	sorted := append([]Route(nil), routes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Host < sorted[j].Host })
	var caddyRoutes []any
	for _, r := range sorted {
		if r.Host == "" {
			return nil, fmt.Errorf("a route has no host")
		}
		upstreams := []any{}
		for _, u := range r.Upstreams {
			upstreams = append(upstreams, map[string]any{"dial": u})
		}
		handler := map[string]any{"handler": "reverse_proxy", "upstreams": upstreams,
			"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": "least_conn"}}}
		if l := r.Lookup; l != nil {
			if l.Name == "" || l.Port <= 0 || l.Port > 65535 {
				return nil, fmt.Errorf("route %s: a lookup needs a name and a port", r.Host)
			}
			delete(handler, "upstreams")
			dynamic := map[string]any{
				"source":   "a",
				"name":     l.Name,
				"port":     strconv.Itoa(l.Port),
				"refresh":  lookupRefresh,
				"versions": map[string]any{"ipv4": true},
			}
			if l.Resolver != "" {
				if _, err := netip.ParseAddrPort(l.Resolver); err != nil {
					return nil, fmt.Errorf("route %s: resolver %q is not an IP address and port", r.Host, l.Resolver)
				}
				dynamic["resolver"] = map[string]any{"addresses": []any{"udp/" + l.Resolver}}
			}
			handler["dynamic_upstreams"] = dynamic
		} else if len(r.Upstreams) == 0 {
			// No ready pod: answer 503 as an ingress with no endpoints does.
			handler = map[string]any{"handler": "static_response", "status_code": 503}
		}
		caddyRoutes = append(caddyRoutes, map[string]any{
			"match":    []any{map[string]any{"host": []any{r.Host}}},
			"handle":   []any{handler},
			"terminal": true,
		})
	}
	return caddyRoutes, nil
}
