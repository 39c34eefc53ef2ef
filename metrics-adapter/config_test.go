package metricsadapter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		"defaults": {yaml: "", check: func(t *testing.T, c Config) {
			if c.ScrapeInterval.Duration != 15*time.Second || c.Window.Duration != time.Minute || c.StaleAfter.Duration != 45*time.Second || c.AppProfile != "http-app" {
				t.Fatalf("defaults %+v", c)
			}
		}},
		"custom profile": {yaml: `
scrapeInterval: 5s
profiles:
- name: haproxy
  tier: ingress
  rules:
  - metric: haproxy_backend_http_responses_total
    families: [requests]
    labels: {namespace: exported_namespace, service: backend}
    status: code
ingress:
- profile: haproxy
  selector: app=haproxy
  port: "8404"
`, check: func(t *testing.T, c Config) {
			if c.Window.Duration != 20*time.Second || len(c.AllProfiles()["haproxy"].Rules) != 1 {
				t.Fatalf("config %+v", c)
			}
		}},
		"unknown field": {yaml: "scrapeIntervall: 5s", wantErr: "unknown field"},
		"prometheus": {yaml: `
prometheus:
  url: http://prometheus.monitoring:9090
  rules:
  - measure: requests_per_second
    labels: {namespace: namespace, service: service}
    query: 'sum(rate(nginx_ingress_controller_requests{ {{.Matchers}} }[{{.Window}}]))'
`, check: func(t *testing.T, c Config) {
			if c.Prometheus == nil || len(c.Prometheus.Rules) != 1 || c.Prometheus.Refresh != 15*time.Second {
				t.Fatalf("prometheus %+v", c.Prometheus)
			}
		}},
		"alibaba cloud": {yaml: `
alibabaCloud:
  regionId: cn-hangzhou
  credentials: {secretDir: /etc/lockstep/alibaba-cloud}
  cloudMonitor:
    refresh: 20s
    targets:
    - {namespace: shop, name: web, port: "80", clb: {instanceId: lb-bp1example, port: 80}}
    - {kind: Ingress, namespace: shop, name: checkout, alb: {loadBalancerId: alb-example, listenerProtocol: HTTPS, listenerPort: 443}}
  arms:
    targets:
    - {namespace: shop, deployment: checkout, pid: abc123@4ad4bd7e1c8a1c1}
prometheus:
  url: https://shop.cn-hangzhou.log.aliyuncs.com/prometheus/shop/metrics
  auth: {alibabaCloud: true}
  rules:
  - measure: requests_per_second
    labels: {namespace: namespace, service: service}
    query: 'sum(rate(nginx_ingress_controller_requests{ {{.Matchers}} }[{{.Window}}]))'
`, check: checkAlibabaConfig},
		"alibaba cloud bad target":     {yaml: "alibabaCloud: {regionId: cn-hangzhou, cloudMonitor: {targets: [{namespace: a, name: b}]}}", wantErr: "alibabaCloud.cloudMonitor.targets[0]: set one of clb and alb"},
		"alibaba cloud unknown field":  {yaml: "alibabaCloud: {regionId: cn-hangzhou, cloudMonitor: {targets: [{namespace: a, name: b, slb: {}}]}}", wantErr: "unknown field"},
		"alibaba auth without section": {yaml: "prometheus: {url: 'http://p', auth: {alibabaCloud: true}}", wantErr: "needs the alibabaCloud section"},
		"two auths":                    {yaml: "prometheus: {url: 'http://p', auth: {authorizationFile: /a, basicAuth: {usernameFile: /u, passwordFile: /p}}}", wantErr: "set one of"},
		"prometheus bad rule":          {yaml: "prometheus: {url: 'http://p', rules: [{measure: qps, labels: {namespace: n}}]}", wantErr: `unknown measure "qps"`},
		"unknown profile":              {yaml: "ingress: [{profile: nginx, selector: a=b, port: '1'}]", wantErr: `unknown profile "nginx"`},
		"window too short":             {yaml: "scrapeInterval: 15s\nwindow: 20s", wantErr: "window 20s: at least two scrape intervals"},
		"timeout too long":             {yaml: "scrapeInterval: 5s\nscrapeTimeout: 10s", wantErr: "scrapeTimeout"},
		"bad duration":                 {yaml: "scrapeInterval: soon", wantErr: `duration "soon"`},
		"bad family":                   {yaml: "profiles: [{name: x, tier: app, rules: [{metric: m, families: [qps]}]}]", wantErr: `unknown family "qps"`},
		"profile sans tier":            {yaml: "profiles: [{name: x, rules: [{metric: m, families: [requests]}]}]", wantErr: "tier ingress or app"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func checkAlibabaConfig(t *testing.T, c Config) {
	a := c.AlibabaCloud
	if a == nil || len(a.CloudMonitor.Targets) != 2 || a.CloudMonitor.Refresh.Duration != 20*time.Second || a.CloudMonitor.Targets[1].ALB.ListenerPort != 443 || len(a.ARMS.Targets) != 1 {
		t.Fatalf("alibabaCloud %+v", a)
	}
}
