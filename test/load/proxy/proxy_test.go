package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
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
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	// Only Env.Run is needed: the processes die with the test binary and log into the bed.
	framework.Main(m, testbed.Options{})
}

const host = "checkout.shop.svc.cluster.local"

// backend serves a demo API pod on addr and counts what it answered.
func backend(t *testing.T, addr string) *http.Server {
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
	srv := &http.Server{Handler: api.Handler(reg), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return srv
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
}
