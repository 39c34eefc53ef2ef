package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud/alifake"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

const (
	testKeyID     = "LTAI5tLockstepTestKey"
	testKeySecret = "lockstep-test-secret-value"
	testToken     = "CAIS-lockstep-test-security-token"
)

// cmsData answers DescribeMetricLast from datapoints set per namespace, metric and
// dimensions, checking the parameters as the API documentation describes them.
type cmsData struct {
	mu     sync.Mutex
	points map[string][]map[string]any
}

func (d *cmsData) set(namespace, metric, dims string, points ...map[string]any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.points[namespace+"|"+metric+"|"+dims] = points
}

func (d *cmsData) handle(p url.Values) (map[string]any, *alifake.Error) {
	if p.Get("Version") != "2019-01-01" || p.Get("Period") != "60" {
		return nil, &alifake.Error{Status: 400, Code: "InvalidParameter", Message: "Version 2019-01-01 and a Period of 60 expected"}
	}
	var dims []map[string]string
	if err := json.Unmarshal([]byte(p.Get("Dimensions")), &dims); err != nil {
		return nil, &alifake.Error{Status: 400, Code: "InvalidParameter", Message: "Dimensions must be a JSON array of objects"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	pts := d.points[p.Get("Namespace")+"|"+p.Get("MetricName")+"|"+p.Get("Dimensions")]
	b, _ := json.Marshal(pts)
	if pts == nil {
		b = []byte("[]")
	}
	return map[string]any{"Code": "200", "Success": true, "Period": "60", "Datapoints": string(b)}, nil
}

type fixture struct {
	fake *alifake.Server
	host string
	clk  *clocktesting.FakeClock
	dir  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{fake: alifake.New(), clk: clocktesting.NewFakeClock(time.Date(2026, 11, 22, 12, 0, 30, 0, time.UTC)), dir: t.TempDir()}
	f.fake.AddKey(testKeyID, testKeySecret, "")
	srv := httptest.NewServer(f.fake)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	f.host = u.Host
	f.writeKey(t, testKeyID, testKeySecret, "")
	return f
}

// writeKey writes the credential files, as a mounted Secret would hold them.
func (f *fixture) writeKey(t *testing.T, id, secret, token string) {
	t.Helper()
	for name, v := range map[string]string{AccessKeyIDFile: id + "\n", AccessKeySecretFile: secret + "\n"} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(f.dir, SecurityTokenFile)
	_ = os.Remove(tokenFile)
	if token != "" {
		if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) config() Config {
	return Config{RegionID: "cn-hangzhou", Credentials: Credentials{SecretDir: f.dir}}
}

func (f *fixture) endpoint() Endpoint { return Endpoint{Endpoint: f.host, Scheme: "http"} }

func (f *fixture) start(t *testing.T, cfg Config) Source {
	t.Helper()
	srcs, _, err := New(cfg, Deps{Clock: f.clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 {
		t.Fatalf("%d sources, want 1", len(srcs))
	}
	return srcs[0]
}

func point(ts time.Time, stat string, v float64) map[string]any {
	return map[string]any{"timestamp": ts.UnixMilli(), stat: v, "Maximum": v * 2, "userId": "1234567890"}
}

var (
	web      = series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "web"}
	checkout = series.Object{Kind: series.IngressObject, Namespace: "shop", Name: "checkout"}
)

func refreshed(t *testing.T, s Source) {
	t.Helper()
	s.(interface{ Refresh(context.Context) }).Refresh(context.Background())
}

func TestCloudMonitorCLBAndALB(t *testing.T) {
	f := newFixture(t)
	data := &cmsData{points: map[string][]map[string]any{}}
	f.fake.Handle("DescribeMetricLast", data.handle)
	minute := f.clk.Now().Truncate(time.Minute)
	clb := `[{"instanceId":"lb-bp1test","port":"80"}]`
	// Older datapoints come along; the newest one counts.
	data.set("acs_slb_dashboard", "Qps", clb, point(minute.Add(-time.Minute), "Average", 90), point(minute, "Average", 120))
	data.set("acs_slb_dashboard", "StatusCode5xx", clb, point(minute, "Average", 6))
	data.set("acs_slb_dashboard", "Rt", clb, point(minute, "Average", 35))
	data.set("acs_slb_dashboard", "TrafficRXNew", clb, point(minute, "Average", 8000))
	alb := `[{"listenerPort":"443","listenerProtocol":"HTTPS","loadBalancerId":"alb-test","serverGroupId":"sgp-checkout"}]`
	data.set("acs_alb", "ServerGroupQPS", alb, point(minute, "Value", 250.5))
	data.set("acs_alb", "ServerGroupRequestTime", alb, point(minute, "Value", 12.25))

	cfg := f.config()
	cfg.CloudMonitor = &CloudMonitorConfig{Common: Common{Endpoint: f.endpoint()}, Targets: []LBTarget{
		{Namespace: "shop", Name: "web", Port: "80", CLB: &CLBListener{InstanceID: "lb-bp1test", Port: 80}},
		{Kind: "Ingress", Namespace: "shop", Name: "checkout", ALB: &ALBListener{LoadBalancerID: "alb-test", ListenerProtocol: "HTTPS", ListenerPort: 443, ServerGroupID: "sgp-checkout"}},
	}}
	src := f.start(t, cfg)
	now := f.clk.Now().UnixMilli()
	q := func(o series.Object, m series.Measure) series.Query {
		return series.Query{Measure: m, Object: o, Port: "80"}
	}

	if _, err := src.Evaluate(q(web, series.RequestRate), now); !errors.Is(err, series.ErrNoData) {
		t.Fatalf("first request: %v, want ErrNoData while the value is fetched", err)
	}
	for _, m := range []series.Measure{series.ErrorRatio, series.LatencyAverage, series.InflowRate} {
		_, _ = src.Evaluate(q(web, m), now)
	}
	_, _ = src.Evaluate(q(checkout, series.RequestRate), now)
	_, _ = src.Evaluate(q(checkout, series.LatencyAverage), now)
	refreshed(t, src)

	for _, tc := range []struct {
		obj  series.Object
		m    series.Measure
		want float64
	}{
		{web, series.RequestRate, 120},
		{web, series.ErrorRatio, 0.05},
		{web, series.LatencyAverage, 0.035},
		{web, series.InflowRate, 1000},
		{checkout, series.RequestRate, 250.5},
		{checkout, series.LatencyAverage, 0.01225},
	} {
		v, err := src.Evaluate(q(tc.obj, tc.m), now)
		if err != nil || math.Abs(v.V-tc.want) > 1e-9 || v.Timestamp != minute.UnixMilli() {
			t.Errorf("%s measure %d: %v %v, want %g at the newest datapoint", tc.obj.Name, tc.m, v, err, tc.want)
		}
	}
	// What CloudMonitor does not have is not made up.
	if _, err := src.Evaluate(series.Query{Measure: series.LatencyQuantile, Quantile: 0.99, Object: web}, now); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("quantile: %v, want ErrNoSeries", err)
	}
	if _, err := src.Evaluate(q(series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "other"}, series.RequestRate), now); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("unmapped Service: %v, want ErrNoSeries", err)
	}
	if _, err := src.Evaluate(series.Query{Measure: series.RequestRate, Object: web, Port: "8080"}, now); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("another port: %v, want ErrNoSeries", err)
	}
	if objs := src.Objects(series.IngressObject); len(objs) != 1 || objs[0] != checkout {
		t.Errorf("Objects(Ingress) = %v", objs)
	}
}

func TestCloudMonitorNoDatapointsIsNotZero(t *testing.T) {
	f := newFixture(t)
	data := &cmsData{points: map[string][]map[string]any{}}
	f.fake.Handle("DescribeMetricLast", data.handle)
	cfg := f.config()
	cfg.CloudMonitor = &CloudMonitorConfig{Common: Common{Endpoint: f.endpoint()}, Targets: []LBTarget{{Namespace: "shop", Name: "web", CLB: &CLBListener{InstanceID: "lb-bp1test", Port: 80}}}}
	src := f.start(t, cfg)
	q := series.Query{Measure: series.RequestRate, Object: web}
	_, _ = src.Evaluate(q, f.clk.Now().UnixMilli())
	refreshed(t, src)
	if v, err := src.Evaluate(q, f.clk.Now().UnixMilli()); !errors.Is(err, series.ErrNoData) {
		t.Fatalf("no datapoints: %v %v, want ErrNoData", v, err)
	}
	// No requests at all: a rate of 0 is real, a ratio is not.
	clb := `[{"instanceId":"lb-bp1test","port":"80"}]`
	data.set("acs_slb_dashboard", "Qps", clb, point(f.clk.Now(), "Average", 0))
	data.set("acs_slb_dashboard", "StatusCode5xx", clb, point(f.clk.Now(), "Average", 0))
	ratio := series.Query{Measure: series.ErrorRatio, Object: web}
	_, _ = src.Evaluate(ratio, f.clk.Now().UnixMilli())
	refreshed(t, src)
	if v, err := src.Evaluate(q, f.clk.Now().UnixMilli()); err != nil || v.V != 0 {
		t.Errorf("idle listener rate: %v %v, want 0", v, err)
	}
	if _, err := src.Evaluate(ratio, f.clk.Now().UnixMilli()); !errors.Is(err, series.ErrNoData) {
		t.Errorf("idle listener error ratio: %v, want ErrNoData", err)
	}
}

func TestCloudMonitorThrottlingAndAuthFailures(t *testing.T) {
	f := newFixture(t)
	data := &cmsData{points: map[string][]map[string]any{}}
	f.fake.Handle("DescribeMetricLast", data.handle)
	clb := `[{"instanceId":"lb-bp1test","port":"80"}]`
	data.set("acs_slb_dashboard", "Qps", clb, point(f.clk.Now().Truncate(time.Minute), "Average", 50))
	cfg := f.config()
	cfg.CloudMonitor = &CloudMonitorConfig{Common: Common{Endpoint: f.endpoint()}, Targets: []LBTarget{{Namespace: "shop", Name: "web", CLB: &CLBListener{InstanceID: "lb-bp1test", Port: 80}}}}
	src := f.start(t, cfg)
	q := series.Query{Measure: series.RequestRate, Object: web}
	get := func() (series.Value, error) { return src.Evaluate(q, f.clk.Now().UnixMilli()) }
	_, _ = get()
	refreshed(t, src)
	if v, err := get(); err != nil || v.V != 50 {
		t.Fatalf("baseline: %v %v", v, err)
	}

	// Throttled: the minute-old value is still served, and calls back off.
	f.fake.Throttle(1000)
	f.clk.Step(30 * time.Second)
	refreshed(t, src)
	if v, err := get(); err != nil || v.V != 50 {
		t.Fatalf("throttled once: %v %v, want the last good value", v, err)
	}
	calls := f.fake.Calls("DescribeMetricLast")
	f.clk.Step(10 * time.Second)
	refreshed(t, src)
	if f.fake.Calls("DescribeMetricLast") != calls {
		t.Fatalf("called again during the backoff")
	}
	// Throttled until the value is older than the 5-minute limit: an error, never 0.
	for range 12 {
		f.clk.Step(30 * time.Second)
		refreshed(t, src)
	}
	if _, err := get(); !errors.Is(err, series.ErrStale) || !strings.Contains(err.Error(), "Throttling.User") {
		t.Fatalf("throttled past the limit: %v, want ErrStale naming the throttling", err)
	}
	f.fake.Throttle(0)
	data.set("acs_slb_dashboard", "Qps", clb, point(f.clk.Now().Truncate(time.Minute), "Average", 55))
	f.clk.Step(5 * time.Minute) // past the longest backoff
	data.set("acs_slb_dashboard", "Qps", clb, point(f.clk.Now().Truncate(time.Minute), "Average", 55))
	refreshed(t, src)
	if v, err := get(); err != nil || v.V != 55 {
		t.Fatalf("after throttling: %v %v", v, err)
	}

	// The key is revoked: the failure is reported at once, without any credential in it.
	f.fake.RemoveKey(testKeyID)
	f.clk.Step(30 * time.Second)
	refreshed(t, src)
	_, err := get()
	if err == nil || !strings.Contains(err.Error(), "InvalidAccessKeyId.NotFound") {
		t.Fatalf("revoked key: %v", err)
	}
	assertNoSecrets(t, err.Error())

	// The Secret is replaced with a wrong secret, then with temporary credentials: the
	// files are read again on every call, no restart needed.
	f.fake.AddKey(testKeyID, testKeySecret, "")
	f.writeKey(t, testKeyID, "not-the-secret", "")
	f.clk.Step(30 * time.Second)
	refreshed(t, src)
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %v", err)
	} else {
		assertNoSecrets(t, err.Error())
	}
	f.fake.AddKey("STS.lockstep", "sts-secret", testToken)
	f.writeKey(t, "STS.lockstep", "sts-secret", testToken)
	f.clk.Step(30 * time.Second)
	data.set("acs_slb_dashboard", "Qps", clb, point(f.clk.Now().Truncate(time.Minute), "Average", 60))
	refreshed(t, src)
	if v, err := get(); err != nil || v.V != 60 {
		t.Fatalf("rotated to STS credentials: %v %v", v, err)
	}
	f.fake.Refuse(alifake.Forbidden)
	f.clk.Step(30 * time.Second)
	refreshed(t, src)
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "Forbidden.RAM") {
		t.Fatalf("missing permission: %v", err)
	}
}

func assertNoSecrets(t *testing.T, msg string) {
	t.Helper()
	for _, s := range []string{testKeyID, testKeySecret, testToken, "Signature=", "not-the-secret"} {
		if strings.Contains(msg, s) {
			t.Errorf("error message leaks %q: %s", s, msg)
		}
	}
}

func TestUnreachableEndpointErrorHasNoCredentials(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.CloudMonitor = &CloudMonitorConfig{Common: Common{Endpoint: Endpoint{Endpoint: "127.0.0.1:1", Scheme: "http"}, Timeout: dur(time.Second)},
		Targets: []LBTarget{{Namespace: "shop", Name: "web", CLB: &CLBListener{InstanceID: "lb-bp1test", Port: 80}}}}
	src := f.start(t, cfg)
	q := series.Query{Measure: series.RequestRate, Object: web}
	_, _ = src.Evaluate(q, f.clk.Now().UnixMilli())
	refreshed(t, src)
	_, err := src.Evaluate(q, f.clk.Now().UnixMilli())
	if err == nil {
		t.Fatal("no error from an unreachable endpoint")
	}
	t.Logf("unreachable: %v", err)
	assertNoSecrets(t, err.Error())
}

func TestARMS(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var items []map[string]any
	var got url.Values
	// lost is how many items the fake counts in Total but never returns (a page it drops).
	lost := 0
	f.fake.Handle("QueryMetricByPage", func(p url.Values) (map[string]any, *alifake.Error) {
		mu.Lock()
		defer mu.Unlock()
		got = p
		page, _ := strconv.Atoi(p.Get("CurrentPage"))
		size, _ := strconv.Atoi(p.Get("PageSize"))
		from, to := min((page-1)*size, len(items)), min(page*size, len(items))
		return map[string]any{"Code": "200", "Success": true, "Data": map[string]any{"Items": items[from:to], "Total": len(items) + lost, "Page": page, "PageSize": size}}, nil
	})
	cfg := f.config()
	cfg.ARMS = &ARMSConfig{Common: Common{Endpoint: f.endpoint()}, Targets: []AppTarget{{Namespace: "shop", Deployment: "checkout", PID: "abc123@4ad4bd7e1c8a1c1"}}}
	src := f.start(t, cfg)
	dep := series.Object{Kind: series.WorkloadObject, Namespace: "shop", Name: "checkout"}
	ask := func(m series.Measure) (series.Value, error) {
		return src.Evaluate(series.Query{Measure: m, Object: dep}, f.clk.Now().UnixMilli())
	}
	for _, m := range []series.Measure{series.RequestRate, series.ErrorRatio, series.LatencyAverage} {
		if _, err := ask(m); !errors.Is(err, series.ErrNoData) {
			t.Fatalf("first request: %v", err)
		}
	}
	refreshed(t, src)
	// No statistics at all: an error, not a rate of 0.
	if _, err := ask(series.RequestRate); !errors.Is(err, series.ErrNoData) {
		t.Fatalf("no items: %v, want ErrNoData", err)
	}

	mu.Lock()
	// Two interfaces: 1,800 + 600 calls in 2 minutes, mean 20 ms and 50 ms, 24 errors.
	items = []map[string]any{
		{"rpc": "/api/pay", "count": 1800.0, "rt": 20.0, "error": 18.0},
		{"rpc": "/api/cart", "count": "600", "rt": "50", "error": "6"},
	}
	mu.Unlock()
	refreshed(t, src)
	for _, tc := range []struct {
		m    series.Measure
		want float64
	}{
		{series.RequestRate, 2400.0 / 120},
		{series.ErrorRatio, 24.0 / 2400},
		{series.LatencyAverage, (1800*0.020 + 600*0.050) / 2400},
	} {
		v, err := ask(tc.m)
		if err != nil || math.Abs(v.V-tc.want) > 1e-9 {
			t.Errorf("measure %d: %v %v, want %g", tc.m, v, err, tc.want)
		}
	}
	mu.Lock()
	p := got
	mu.Unlock()
	end := f.clk.Now().Add(-time.Minute).Truncate(time.Minute)
	for k, want := range map[string]string{
		"Action": "QueryMetricByPage", "Version": "2019-08-08", "Metric": "appstat.incall",
		"Filters.1.Key": "pid", "Filters.1.Value": "abc123@4ad4bd7e1c8a1c1",
		"Measures.1": "count", "Measures.2": "rt", "Measures.3": "error",
		"IntervalInSec": "120000", "StartTime": itoa(end.Add(-2 * time.Minute).UnixMilli()), "EndTime": itoa(end.UnixMilli()),
	} {
		if p.Get(k) != want {
			t.Errorf("request %s = %q, want %q", k, p.Get(k), want)
		}
	}
	if _, err := ask(series.LatencyQuantile); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("quantile: %v, want ErrNoSeries", err)
	}
	if _, err := src.Evaluate(series.Query{Measure: series.RequestRate, Object: web}, f.clk.Now().UnixMilli()); !errors.Is(err, series.ErrNoSeries) {
		t.Errorf("a Service: %v, want ErrNoSeries", err)
	}

	// Many hosts: 250 items on three pages are all summed.
	mu.Lock()
	items = nil
	for range 250 {
		items = append(items, map[string]any{"count": 12.0, "rt": 10.0, "error": 0.0})
	}
	mu.Unlock()
	refreshed(t, src)
	if v, err := ask(series.RequestRate); err != nil || math.Abs(v.V-250*12.0/120) > 1e-9 || v.Series != 250 {
		t.Errorf("three pages: %v %v, want %g from 250 items", v, err, 250*12.0/120)
	}
	// ARMS counts more items than it returns: refused, never the smaller sum.
	mu.Lock()
	lost = 30
	mu.Unlock()
	refreshed(t, src)
	if _, err := ask(series.RequestRate); !errors.Is(err, series.ErrIncomplete) {
		t.Errorf("items missing: %v, want ErrIncomplete", err)
	}
	mu.Lock()
	lost = 0
	mu.Unlock()
	refreshed(t, src)

	// The values age: past Delay + 2m without a refresh they are refused.
	f.clk.Step(3 * time.Minute)
	if _, err := ask(series.RequestRate); !errors.Is(err, series.ErrStale) {
		t.Errorf("old value: %v, want ErrStale", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func dur(d time.Duration) remote.Duration { return remote.Duration{Duration: d} }

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	clb := &CLBListener{InstanceID: "lb-1", Port: 80}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no region", Config{}, "regionId"},
		{"both credentials", Config{RegionID: "cn-hangzhou", Credentials: Credentials{SecretDir: dir, RRSA: &RRSA{}}}, "not both"},
		{"no targets", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{}}, "at least one"},
		{"no listener", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Namespace: "a", Name: "b"}}}}, "set one of clb and alb"},
		{"two listeners", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Namespace: "a", Name: "b", CLB: clb, ALB: &ALBListener{}}}}}, "set one of clb and alb"},
		{"bad kind", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Kind: "Pod", Namespace: "a", Name: "b", CLB: clb}}}}, `kind "Pod"`},
		{"bad port", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Namespace: "a", Name: "b", CLB: &CLBListener{InstanceID: "lb-1"}}}}}, "port 1-65535"},
		{"bad protocol", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Namespace: "a", Name: "b", ALB: &ALBListener{LoadBalancerID: "alb-1", ListenerProtocol: "TCP", ListenerPort: 80}}}}}, "listenerProtocol"},
		{"duplicate", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Targets: []LBTarget{{Namespace: "a", Name: "b", CLB: clb}, {Namespace: "a", Name: "b", CLB: clb}}}}, "the same object"},
		{"bad scheme", Config{RegionID: "cn-hangzhou", CloudMonitor: &CloudMonitorConfig{Common: Common{Endpoint: Endpoint{Scheme: "ftp"}}, Targets: []LBTarget{{Namespace: "a", Name: "b", CLB: clb}}}}, "scheme"},
		{"arms no pid", Config{RegionID: "cn-hangzhou", ARMS: &ARMSConfig{Targets: []AppTarget{{Namespace: "a", Deployment: "b"}}}}, "pid are required"},
		{"arms window", Config{RegionID: "cn-hangzhou", ARMS: &ARMSConfig{Window: dur(90 * time.Second), Targets: []AppTarget{{Namespace: "a", Deployment: "b", PID: "p"}}}}, "whole minutes"},
		{"arms stale", Config{RegionID: "cn-hangzhou", ARMS: &ARMSConfig{Common: Common{StaleAfter: dur(time.Minute)}, Targets: []AppTarget{{Namespace: "a", Deployment: "b", PID: "p"}}}}, "staleAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Credentials are checked when the sources start: a missing Secret file is named.
	_, _, err := New(Config{RegionID: "cn-hangzhou", Credentials: Credentials{SecretDir: dir}}, Deps{})
	if err == nil || !strings.Contains(err.Error(), AccessKeyIDFile) {
		t.Fatalf("empty secret dir: %v", err)
	}
}
