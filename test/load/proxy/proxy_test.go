package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/scrape"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/dns"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	// Only Env.Run is needed: the processes die with the test binary and log into the bed.
	framework.Main(m, testbed.Options{})
}

const host = "checkout.shop.svc.cluster.local"

// backend serves a demo API pod on addr.
func backend(t *testing.T, addr string) { countingBackend(t, addr, nil) }

// countingBackend serves a demo API pod on addr and counts its requests in n (if not nil).
func countingBackend(t *testing.T, addr string, n *atomic.Int64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	api, err := demoapi.New(demoapi.Config{Work: time.Millisecond, CPU: 1, Concurrency: 8, QueueLimit: 100}, clock.RealClock{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := api.Handler(reg)
	if n != nil {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); inner.ServeHTTP(w, r) })
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func get(t *testing.T, url string, n int) (ok int) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, url+"/checkout", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok++
		}
	}
	return ok
}

// Real Caddy proxies a Service's host to its pods, takes new routes without a restart, and its
// metrics read through the adapter's caddy profile as requests and latency of that Service.
func TestCaddyIngressAndTheCaddyProfile(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	bin, err := testbed.BinaryPath("", "caddy")
	if err != nil {
		t.Fatal(err)
	}
	backend(t, "127.64.0.10:8080")
	c, err := proxy.Start(ctx, env, bin, "caddy-ingress-0", "127.64.0.2", filepath.Join(t.TempDir(), "caddy"),
		[]proxy.Route{{Host: host, Upstreams: []string{"127.64.0.10:8080"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if ok := get(t, c.URL(), 40); ok != 40 {
		t.Fatalf("%d of 40 proxied requests answered 200", ok)
	}

	// No pods left: the route answers 503, as an ingress with no endpoints does; then a new pod.
	if err := c.Load(ctx, []proxy.Route{{Host: host}}); err != nil {
		t.Fatal(err)
	}
	if ok := get(t, c.URL(), 5); ok != 0 {
		t.Fatalf("%d requests answered without a backend", ok)
	}
	backend(t, "127.64.0.11:8080")
	if err := c.Load(ctx, []proxy.Route{{Host: host, Upstreams: []string{"127.64.0.11:8080"}}}); err != nil {
		t.Fatal(err)
	}
	if ok := get(t, c.URL(), 10); ok != 10 {
		t.Fatalf("%d of 10 requests answered after the new route", ok)
	}

	got := caddyProfileTotals(t, c.AdminURL()+"/metrics")
	// A config load starts Caddy's metrics afresh (a counter reset to the adapter), so only the
	// 10 requests since the last load count; the 503s of the empty route were static_response's.
	if got["ok"] != 10 || got["errors"] != 0 || got["+Inf"] != 10 {
		t.Fatalf("caddy profile read %v, want the 10 proxied requests since the last load, none failed", got)
	}
}

// caddyProfileTotals scrapes a Caddy's metrics and reads them through the adapter's caddy
// profile: requests answered, requests failed (5xx) and the latency histogram's +Inf count.
func caddyProfileTotals(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := scrape.NewMapper(profile.Builtin()["caddy"])
	if err != nil {
		t.Fatal(err)
	}
	points, err := m.Ingest(nil, resp.Body, expfmt.NewFormat(expfmt.TypeTextPlain), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, p := range points {
		if p.Key.Namespace != "shop" || p.Key.Service != "checkout" {
			t.Errorf("a point for %s/%s", p.Key.Namespace, p.Key.Service)
		}
		switch {
		case p.Key.Family == series.Requests && p.Key.Error:
			got["errors"] += p.V
		case p.Key.Family == series.Requests:
			got["ok"] += p.V
		case p.Key.Family == series.DurationBucket && p.Key.LE > 1e300:
			got["+Inf"] += p.V
		}
	}
	return got
}

// With a DNS lookup as its upstreams, Caddy follows a Service's pods as they come and go with
// no config load, so its metrics count every request of the run.
func TestCaddyFollowsPodsThroughDNS(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	bin, err := testbed.BinaryPath("", "caddy")
	if err != nil {
		t.Fatal(err)
	}
	names, err := dns.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = names.Close() })
	pods := map[string]*atomic.Int64{}
	counted := func(addr string) {
		pods[addr] = &atomic.Int64{}
		countingBackend(t, addr+":8080", pods[addr])
	}
	set := func(addrs ...string) {
		t.Helper()
		var ips []netip.Addr
		for _, a := range addrs {
			ips = append(ips, netip.MustParseAddr(a))
		}
		if err := names.Set(host, ips); err != nil {
			t.Fatal(err)
		}
	}
	counted("127.64.0.20")
	set("127.64.0.20")
	c, err := proxy.Start(ctx, env, bin, "caddy-dns-0", "127.64.0.3", filepath.Join(t.TempDir(), "caddy"),
		[]proxy.Route{{Host: host, Lookup: &proxy.Lookup{Name: host, Port: 8080, Resolver: names.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	total := 0
	send := func(n int) {
		t.Helper()
		if ok := get(t, c.URL(), n); ok != n {
			t.Fatalf("%d of %d requests answered 200", ok, n)
		}
		total += n
	}
	send(20)

	// A second pod becomes ready: within Caddy's 1 s refresh it gets requests too.
	counted("127.64.0.21")
	set("127.64.0.20", "127.64.0.21")
	time.Sleep(1500 * time.Millisecond)
	before := pods["127.64.0.21"].Load()
	send(40)
	if got := pods["127.64.0.21"].Load() - before; got == 0 {
		t.Fatal("the new pod got none of 40 requests")
	}

	// The first pod goes: it leaves DNS first (as it leaves endpoints), then no request reaches it.
	set("127.64.0.21")
	time.Sleep(1500 * time.Millisecond)
	before = pods["127.64.0.20"].Load()
	send(20)
	if got := pods["127.64.0.20"].Load() - before; got != 0 {
		t.Fatalf("the removed pod got %d requests", got)
	}
	if names.Queries() == 0 {
		t.Fatal("caddy never asked the DNS server")
	}

	// No config was loaded, so Caddy's metrics hold every request of the run.
	got := caddyProfileTotals(t, c.AdminURL()+"/metrics")
	if got["ok"] != float64(total) || got["errors"] != 0 || got["+Inf"] != float64(total) {
		t.Fatalf("caddy profile read %v, want all %d requests, none failed", got, total)
	}
	// The process's CPU time is readable (the ingress pod's usage) and never goes back.
	first := c.CPUSeconds()
	if first <= 0 {
		t.Fatalf("caddy's CPU time %v after starting and serving %d requests", first, total)
	}
	send(200)
	if later := c.CPUSeconds(); later < first {
		t.Fatalf("caddy's CPU time went from %v to %v", first, later)
	}
}

func TestConfig(t *testing.T) {
	cfg, err := proxy.Config("127.64.0.2", "/tmp/data", []proxy.Route{
		{Host: "web.shop", Upstreams: []string{"127.64.0.9:8080"}},
		{Host: "cart.shop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"per_host": true`, `"listen": "127.64.0.2:2019"`, `"127.64.0.2:8080"`, `"dial": "127.64.0.9:8080"`, `"status_code": 503`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
	if strings.Index(string(cfg), "cart.shop") > strings.Index(string(cfg), "web.shop") {
		t.Error("routes are not in a stable order")
	}
	if _, err := proxy.Config("ingress-0", "/tmp", nil); err == nil {
		t.Error("a host name as the address was accepted")
	}
	if _, err := proxy.Config("127.0.0.1", "/tmp", []proxy.Route{{}}); err == nil {
		t.Error("a route without a host was accepted")
	}

	cfg, err = proxy.Config("127.64.0.2", "/tmp/data", []proxy.Route{
		{Host: "web.shop", Lookup: &proxy.Lookup{Name: "web.shop.svc.cluster.local", Port: 8080, Resolver: "127.0.0.1:5353"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"source": "a"`, `"name": "web.shop.svc.cluster.local"`, `"port": "8080"`, `"refresh": "1s"`, `"udp/127.0.0.1:5353"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
	if strings.Contains(string(cfg), `"upstreams"`) {
		t.Errorf("a lookup route has fixed upstreams too:\n%s", cfg)
	}
	for name, l := range map[string]proxy.Lookup{
		"no name":          {Port: 8080, Resolver: "127.0.0.1:53"},
		"no port":          {Name: "a.b", Resolver: "127.0.0.1:53"},
		"resolver by name": {Name: "a.b", Port: 8080, Resolver: "localhost:53"},
		"resolver no port": {Name: "a.b", Port: 8080, Resolver: "127.0.0.1"},
	} {
		if _, err := proxy.Config("127.0.0.1", "/tmp", []proxy.Route{{Host: "a", Lookup: &l}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestClusterConfig checks the configuration of an ingress pod in a real cluster (the kind load
// test): traffic and /metrics on every interface, no admin API, lookups through the system's
// resolver. Caddy itself validates it, provisioning every module without listening.
func TestClusterConfig(t *testing.T) {
	framework.Env(t) // the bed's binaries include Caddy
	cfg, err := proxy.ClusterConfig([]proxy.Route{
		{Host: "checkout.shop.svc.cluster.local", Lookup: &proxy.Lookup{Name: "checkout-pods.shop.svc.cluster.local", Port: 8080}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Admin struct {
			Disabled bool `json:"disabled"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string         `json:"listen"`
					Routes []map[string]any `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	servers := doc.Apps.HTTP.Servers
	if !doc.Admin.Disabled || len(servers) != 2 || servers["ingress"].Listen[0] != ":8080" || servers["metrics"].Listen[0] != ":2019" {
		t.Fatalf("config:\n%s", cfg)
	}
	if strings.Contains(string(cfg), "resolver") || !strings.Contains(string(cfg), `"handler": "metrics"`) {
		t.Errorf("want the system's resolver and a metrics handler:\n%s", cfg)
	}
	bin, err := testbed.BinaryPath("", "caddy")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", path)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
}
