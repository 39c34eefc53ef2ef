package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/internal/promfake"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// newFakePrometheus starts a Prometheus stand-in that evaluates queries with the real
// PromQL engine.
func newFakePrometheus(t *testing.T) (*promfake.Server, *httptest.Server) {
	t.Helper()
	f, err := promfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// addCounter stores n samples, 15 s apart from start, of a counter growing at perSecond.
func addCounter(t *testing.T, f *promfake.Server, start time.Time, perSecond float64, n int, nameAndLabels ...string) {
	t.Helper()
	for i := range n {
		if err := f.Append(start.Add(time.Duration(i)*15*time.Second), perSecond*15*float64(i), nameAndLabels...); err != nil {
			t.Fatal(err)
		}
	}
}

var nginxRules = []Rule{
	{Measure: "requests_per_second", Labels: map[string]string{"namespace": "namespace", "service": "service", "ingress": "ingress"},
		Query: `sum(rate(nginx_ingress_controller_requests{ {{.Matchers}} }[{{.Window}}]))`},
	{Measure: "request_latency_quantile_seconds", Labels: map[string]string{"namespace": "namespace", "service": "service"},
		Query: `histogram_quantile({{.Quantile}}, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{ {{.Matchers}} }[{{.Window}}])))`},
}

func TestSourceAnswersWhatPrometheusAnswers(t *testing.T) {
	fake, srv := newFakePrometheus(t)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for _, pod := range []string{"a", "b"} {
		addCounter(t, fake, start, 7, 41, "__name__", "nginx_ingress_controller_requests", "namespace", "shop", "service", "checkout", "ingress", "web", "pod", pod)
	}
	for le, share := range map[string]float64{"0.1": 0.5, "0.25": 1, "+Inf": 1} {
		addCounter(t, fake, start, 10*share, 41, "__name__", "nginx_ingress_controller_request_duration_seconds_bucket", "namespace", "shop", "service", "checkout", "le", le)
	}
	now := start.Add(10 * time.Minute)
	clk := clocktesting.NewFakeClock(now)
	src, err := New(Config{URL: srv.URL, Rules: nginxRules}, Deps{Client: srv.Client(), Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	rps := series.Query{Measure: series.RequestRate, Object: series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "checkout"}, Window: time.Minute, StaleAfter: time.Minute}
	// The first call never waits for Prometheus: it queues the query.
	if _, err := src.Evaluate(rps, now.UnixMilli()); !errors.Is(err, series.ErrNoData) {
		t.Fatalf("first call: %v, want ErrNoData", err)
	}
	if fake.Queries.Load() != 0 {
		t.Fatal("the serving path called Prometheus")
	}
	src.Refresh(context.Background())
	v, err := src.Evaluate(rps, now.UnixMilli())
	if err != nil || math.Abs(v.V-14) > 1e-9 {
		t.Fatalf("requests per second: %v, %v; want 14", v, err)
	}
	p99 := series.Query{Measure: series.LatencyQuantile, Quantile: 0.99, Object: rps.Object, Window: time.Minute, StaleAfter: time.Minute}
	_, _ = src.Evaluate(p99, now.UnixMilli())
	src.Refresh(context.Background())
	if v, err := src.Evaluate(p99, now.UnixMilli()); err != nil || math.Abs(v.V-(0.1+0.15*0.98)) > 1e-9 {
		t.Fatalf("p99: %v, %v", v, err)
	}

	// A kind no rule maps, an unknown measure and a set-based selector are not this source's.
	for name, q := range map[string]series.Query{
		"route":    {Measure: series.RequestRate, Object: series.Object{Kind: series.RouteObject, Namespace: "shop", Name: "r"}},
		"measure":  {Measure: series.InflowRate, Object: rps.Object},
		"selector": {Measure: series.RequestRate, Object: rps.Object, Inexact: true},
	} {
		if _, err := src.Evaluate(q, now.UnixMilli()); !errors.Is(err, series.ErrNoSeries) {
			t.Errorf("%s: %v, want ErrNoSeries", name, err)
		}
	}
	// An object Prometheus has nothing for.
	cart := rps
	cart.Object.Name = "cart"
	_, _ = src.Evaluate(cart, now.UnixMilli())
	src.Refresh(context.Background())
	if _, err := src.Evaluate(cart, now.UnixMilli()); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("unknown service: %v, want ErrNoSeries", err)
	}

	// Prometheus goes down: after the staleness limit the answer is an error, never zero.
	fake.Down.Store(true)
	clk.Step(30 * time.Second)
	src.Refresh(context.Background())
	if _, err := src.Evaluate(rps, clk.Now().UnixMilli()); err == nil || !strings.Contains(err.Error(), "prometheus") {
		t.Fatalf("Prometheus down: %v", err)
	}

	// Queries nobody asks for are forgotten.
	fake.Down.Store(false)
	clk.Step(11 * time.Minute)
	src.Refresh(context.Background())
	if n := src.cache.Len(); n != 0 {
		t.Fatalf("%d queries still refreshed after nobody asked for 11 minutes", n)
	}
}

func TestRenderQueries(t *testing.T) {
	src, err := New(Config{URL: "http://prometheus:9090", Rules: nginxRules}, Deps{Clock: clocktesting.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.render(series.Query{Measure: series.RequestRate, Window: 2 * time.Minute,
		Object: series.Object{Kind: series.IngressObject, Namespace: "shop", Name: "web"}, Filter: map[string]string{"service": "checkout"}})
	want := `sum(rate(nginx_ingress_controller_requests{ ingress="web",namespace="shop",service="checkout" }[2m]))`
	if err != nil || got != want {
		t.Fatalf("render = %q, %v\nwant %q", got, err, want)
	}
	if _, err := src.render(series.Query{Measure: series.RequestRate, Object: series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "a"},
		Filter: map[string]string{"port": "80"}}); !errors.Is(err, series.ErrNoSeries) {
		t.Fatalf("a filter the rule cannot express: %v, want ErrNoSeries", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no url":        {cfg: Config{}, want: "url is required"},
		"measure":       {cfg: Config{URL: "http://p", Rules: []Rule{{Measure: "qps", Labels: map[string]string{"namespace": "n"}}}}, want: `unknown measure "qps"`},
		"namespace":     {cfg: Config{URL: "http://p", Rules: []Rule{{Measure: "error_ratio", Labels: map[string]string{}}}}, want: "labels.namespace is required"},
		"template":      {cfg: Config{URL: "http://p", Rules: []Rule{{Measure: "error_ratio", Labels: map[string]string{"namespace": "n"}, Query: "{{.Matchers"}}}, want: "query template"},
		"duplicate":     {cfg: Config{URL: "http://p", Rules: []Rule{nginxRules[0], nginxRules[0]}}, want: "a second rule"},
		"bad url":       {cfg: Config{URL: "://nope"}, want: "url"},
		"unknown field": {cfg: Config{URL: "http://p", Rules: []Rule{{Measure: "error_ratio", Labels: map[string]string{"namespace": "n"}, Query: "{{.Nope}}"}}}, want: "query template"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

type cloudCreds struct{ id, secret, token string }

func (c cloudCreds) Credentials() (string, string, string, error) {
	return c.id, c.secret, c.token, nil
}

// TestAuth checks each way of signing in against an endpoint that wants it, and that
// throttling (HTTP 429) keeps the last good answer while refusals (401) do not.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	user, pass, authz := write("user", "reader\n"), write("pass", "s3cret\n"), write("authz", "Bearer tok-123\n")
	for _, tc := range []struct {
		name  string
		auth  *Auth
		cloud CredentialSource
		ok    func(r *http.Request) bool
	}{
		{"basic auth from files", &Auth{BasicAuth: &BasicAuth{UsernameFile: user, PasswordFile: pass}}, nil, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "reader" && p == "s3cret"
		}},
		{"authorization header from a file", &Auth{AuthorizationFile: authz}, nil, func(r *http.Request) bool {
			return r.Header.Get("Authorization") == "Bearer tok-123"
		}},
		{"alibaba cloud STS credentials (SLS MetricStore)", &Auth{AlibabaCloud: true}, cloudCreds{"STS.id", "sk", "tok"}, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "STS.id" && p == "sk$tok"
		}},
		{"alibaba cloud AccessKey pair", &Auth{AlibabaCloud: true}, cloudCreds{"LTAI", "sk", ""}, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "LTAI" && p == "sk"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, err := promfake.New()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = fake.Close() })
			start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
			addCounter(t, fake, start, 7, 41, "__name__", "nginx_ingress_controller_requests", "namespace", "shop", "service", "checkout")
			var throttle, refuse atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case !tc.ok(r), refuse.Load():
					http.Error(w, "unauthorized", http.StatusUnauthorized)
				case throttle.Load():
					http.Error(w, "slow down", http.StatusTooManyRequests)
				default:
					fake.ServeHTTP(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			clk := clocktesting.NewFakeClock(start.Add(10 * time.Minute))
			src, err := New(Config{URL: srv.URL, Auth: tc.auth, Rules: nginxRules}, Deps{Clock: clk, Cloud: tc.cloud})
			if err != nil {
				t.Fatal(err)
			}
			q := series.Query{Measure: series.RequestRate, Object: series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "checkout"}, Window: time.Minute, StaleAfter: time.Minute}
			get := func() (series.Value, error) { return src.Evaluate(q, clk.Now().UnixMilli()) }
			_, _ = get()
			src.Refresh(context.Background())
			if v, err := get(); err != nil || math.Abs(v.V-7) > 1e-9 {
				t.Fatalf("authenticated: %v %v", v, err)
			}
			throttle.Store(true)
			clk.Step(15 * time.Second)
			src.Refresh(context.Background())
			if v, err := get(); err != nil || math.Abs(v.V-7) > 1e-9 {
				t.Fatalf("throttled: %v %v, want the last good answer", v, err)
			}
			throttle.Store(false)
			refuse.Store(true)
			clk.Step(30 * time.Second)
			src.Refresh(context.Background())
			if _, err := get(); err == nil || !strings.Contains(err.Error(), "authentication failed") {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// A partial answer (Thanos, Cortex or Mimir report a store or replica that did not respond as
// a warning beside the data) is refused: a sum over part of the data is too small.
func TestPartialResponseIsIncomplete(t *testing.T) {
	var partial atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		warnings := ""
		if partial.Load() {
			warnings = `,"warnings":["No StoreAPIs matched for this query: store 10.0.3.7:10901 did not respond"]`
		}
		now := time.Now().Unix()
		_, _ = fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,"7"]}]}%s}`, now, warnings)
	}))
	t.Cleanup(srv.Close)
	clk := clocktesting.NewFakeClock(time.Now())
	src, err := New(Config{URL: srv.URL, Rules: nginxRules}, Deps{Client: srv.Client(), Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	q := series.Query{Measure: series.RequestRate, Object: series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "checkout"}, Window: time.Minute, StaleAfter: time.Minute}
	_, _ = src.Evaluate(q, clk.Now().UnixMilli())
	src.Refresh(context.Background())
	if v, err := src.Evaluate(q, clk.Now().UnixMilli()); err != nil || v.V != 7 {
		t.Fatalf("complete answer: %v, %v", v, err)
	}
	partial.Store(true)
	src.Refresh(context.Background())
	_, err = src.Evaluate(q, clk.Now().UnixMilli())
	if !errors.Is(err, series.ErrIncomplete) {
		t.Fatalf("partial answer: %v, want ErrIncomplete", err)
	}
	if strings.Contains(err.Error(), "10.0.3.7") {
		t.Fatalf("the backend's detail reached the API error: %v", err)
	}
}
