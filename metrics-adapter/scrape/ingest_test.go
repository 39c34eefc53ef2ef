package scrape

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

var text = expfmt.NewFormat(expfmt.TypeTextPlain)

type services map[string]bool

func (s services) ServiceExists(ns, name string) bool { return s[ns+"/"+name] }

func mapper(t testing.TB, name string) *Mapper {
	t.Helper()
	m, err := NewMapper(profile.Builtin()[name])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// summary renders points as "family ns/service/ingress/route/port/pod err le = value" lines.
func summary(points []series.Point) []string {
	var out []string
	for _, p := range points {
		k := p.Key
		line := k.Family.String() + " " + strings.Join([]string{k.Namespace, k.Service, k.Ingress, k.Route, k.Port, k.Workload, k.Pod}, "/")
		if k.Error {
			line += " 5xx"
		}
		if k.Family == series.DurationBucket {
			line += " le=" + formatLE(k.LE)
		}
		line += " = " + formatLE(p.V)
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func TestIngestProfiles(t *testing.T) {
	tests := map[string]struct {
		profile string
		body    string
		target  *profile.Target
		want    []string
	}{
		"ingress-nginx": {profile: "ingress-nginx", body: `
# TYPE nginx_ingress_controller_requests counter
nginx_ingress_controller_requests{namespace="shop",ingress="web",service="checkout",status="200",method="GET",path="/"} 90
nginx_ingress_controller_requests{namespace="shop",ingress="web",service="checkout",status="503",method="GET",path="/"} 10
# TYPE nginx_ingress_controller_request_duration_seconds histogram
nginx_ingress_controller_request_duration_seconds_bucket{namespace="shop",ingress="web",service="checkout",le="0.1"} 40
nginx_ingress_controller_request_duration_seconds_bucket{namespace="shop",ingress="web",service="checkout",le="+Inf"} 100
nginx_ingress_controller_request_duration_seconds_sum{namespace="shop",ingress="web",service="checkout"} 12.5
nginx_ingress_controller_request_duration_seconds_count{namespace="shop",ingress="web",service="checkout"} 100
# TYPE nginx_ingress_controller_nginx_process_connections gauge
nginx_ingress_controller_nginx_process_connections{state="active"} 3
`, want: []string{
			"duration_bucket shop/checkout/web//// le=+Inf = 100",
			"duration_bucket shop/checkout/web//// le=0.1 = 40",
			"duration_count shop/checkout/web//// = 100",
			"duration_sum shop/checkout/web//// = 12.5",
			"requests shop/checkout/web//// 5xx = 10",
			"requests shop/checkout/web//// = 90",
		}},
		"envoy with Istio, Envoy Gateway and Contour cluster names": {profile: "envoy", body: `
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|80||checkout.shop.svc.cluster.local"} 7
envoy_cluster_upstream_rq_total{envoy_cluster_name="httproute/shop/store/rule/0"} 8
envoy_cluster_upstream_rq_total{envoy_cluster_name="shop/cart/8080/da39a3ee5e"} 9
envoy_cluster_upstream_rq_total{envoy_cluster_name="prometheus_stats"} 1
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="shop/cart/8080/x"} 8
envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="shop/cart/8080/x"} 1
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="shop/cart/8080/x",le="250"} 5
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="shop/cart/8080/x",le="+Inf"} 9
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="shop/cart/8080/x"} 1500
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="shop/cart/8080/x"} 9
`, want: []string{
			"duration_bucket shop/cart///8080// le=+Inf = 9",
			"duration_bucket shop/cart///8080// le=0.25 = 5",
			"duration_count shop/cart///8080// = 9",
			"duration_sum shop/cart///8080// = 1.5",
			"requests shop///store/// = 8",
			"requests shop/cart///8080// = 9",
			"requests shop/checkout///80// = 7",
			"server_errors shop/cart///8080// 5xx = 1",
		}},
		"istio gateway, source reporter only": {profile: "istio", body: `
# TYPE istio_requests_total counter
istio_requests_total{reporter="source",destination_service_namespace="shop",destination_service_name="checkout",response_code="500"} 3
istio_requests_total{reporter="destination",destination_service_namespace="shop",destination_service_name="checkout",response_code="500"} 3
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="source",destination_service_namespace="shop",destination_service_name="checkout",le="5"} 3
istio_request_duration_milliseconds_bucket{reporter="source",destination_service_namespace="shop",destination_service_name="checkout",le="+Inf"} 3
istio_request_duration_milliseconds_sum{reporter="source",destination_service_namespace="shop",destination_service_name="checkout"} 6
istio_request_duration_milliseconds_count{reporter="source",destination_service_namespace="shop",destination_service_name="checkout"} 3
`, want: []string{
			"duration_bucket shop/checkout///// le=+Inf = 3",
			"duration_bucket shop/checkout///// le=0.005 = 3",
			"duration_count shop/checkout///// = 3",
			"duration_sum shop/checkout///// = 0.006",
			"requests shop/checkout///// 5xx = 3",
		}},
		"traefik names split on existing Services": {profile: "traefik", body: `
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="my-shop-check-out-80@kubernetes"} 5
traefik_service_requests_total{code="200",method="GET",protocol="http",service="api@internal"} 5
traefik_service_requests_total{code="200",method="GET",protocol="http",service="nobody-home-80@kubernetes"} 5
`, want: []string{"requests my-shop/check-out///80// = 5"}},
		"caddy per host, reverse_proxy only": {profile: "caddy", body: `
# TYPE caddy_http_request_duration_seconds histogram
caddy_http_request_duration_seconds_bucket{code="200",handler="reverse_proxy",host="checkout.shop.svc.cluster.local",method="GET",server="ingress",le="0.05"} 4
caddy_http_request_duration_seconds_bucket{code="200",handler="reverse_proxy",host="checkout.shop.svc.cluster.local",method="GET",server="ingress",le="+Inf"} 5
caddy_http_request_duration_seconds_sum{code="200",handler="reverse_proxy",host="checkout.shop.svc.cluster.local",method="GET",server="ingress"} 0.5
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",host="checkout.shop.svc.cluster.local",method="GET",server="ingress"} 5
caddy_http_request_duration_seconds_count{code="503",handler="reverse_proxy",host="cart.shop:8080",method="GET",server="ingress"} 2
caddy_http_request_duration_seconds_count{code="200",handler="static_response",host="checkout.shop",method="GET",server="ingress"} 9
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",host="_other",method="GET",server="ingress"} 9
`, want: []string{
			"duration_bucket shop/checkout///// le=+Inf = 5",
			"duration_bucket shop/checkout///// le=0.05 = 4",
			"duration_count shop/cart///// 5xx = 2",
			"duration_count shop/checkout///// = 5",
			"duration_sum shop/checkout///// = 0.5",
			"requests shop/cart///// 5xx = 2",
			"requests shop/checkout///// = 5",
		}},
		"OpenTelemetry app pod": {profile: "http-app", target: &profile.Target{Namespace: "shop", Pod: "checkout-7d9-abc", Workload: "checkout"}, body: `
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",le="0.1"} 4
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",le="+Inf"} 5
http_server_request_duration_seconds_sum{http_request_method="GET",http_response_status_code="200"} 0.7
http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200"} 5
`, want: []string{
			"duration_bucket shop/////checkout/checkout-7d9-abc le=+Inf = 5",
			"duration_bucket shop/////checkout/checkout-7d9-abc le=0.1 = 4",
			"duration_count shop/////checkout/checkout-7d9-abc = 5",
			"duration_sum shop/////checkout/checkout-7d9-abc = 0.7",
			"requests shop/////checkout/checkout-7d9-abc = 5",
		}},
	}
	svcs := services{"my-shop/check-out": true}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			points, err := mapper(t, tc.profile).Ingest(nil, strings.NewReader(tc.body), text, tc.target, svcs, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := summary(points)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestIngestIDsAreStable(t *testing.T) {
	body := "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",a=\"1\"} 1\n"
	swapped := "# TYPE http_requests_total counter\nhttp_requests_total{a=\"1\",code=\"200\"} 2\n"
	m := mapper(t, "http-app")
	target := &profile.Target{Namespace: "shop", Pod: "p"}
	a, err := m.Ingest(nil, strings.NewReader(body), text, target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Ingest(nil, strings.NewReader(swapped), text, target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID {
		t.Fatalf("label order changed the series id: %v vs %v", a, b)
	}
}

func TestIngestRejectsGarbage(t *testing.T) {
	_, err := mapper(t, "http-app").Ingest(nil, strings.NewReader("http_requests_total{code=\"200\" 1\n"), text, &profile.Target{Namespace: "a"}, nil, nil)
	if err == nil {
		t.Fatal("a malformed exposition was accepted")
	}
}

// FuzzIngest feeds arbitrary bodies through every built-in profile and checks that the fast
// text path (streaming parser and series cache) gives exactly the points of the expfmt path
// whenever expfmt accepts the body, on a cold cache and again on a warm one. Errors are fine;
// panics, NaN bucket bounds and keys without a namespace are not.
func FuzzIngest(f *testing.F) {
	f.Add("# TYPE nginx_ingress_controller_requests counter\nnginx_ingress_controller_requests{namespace=\"a\",service=\"b\",status=\"500\"} 1\n")
	f.Add("# TYPE envoy_cluster_upstream_rq_time histogram\nenvoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"a/b/80/x\",le=\"NaN\"} 1\n")
	f.Add("# TYPE traefik_service_requests_total counter\ntraefik_service_requests_total{service=\"a-b-c@kubernetes\"} 1e308\n")
	f.Add("http_requests_total 1\nhttp_requests_total 2\n")
	f.Add("# TYPE http_server_request_duration_seconds histogram\nhttp_server_request_duration_seconds_bucket{le=\"1.0\",a=\"x\\\"y\"} 3 123\nhttp_server_request_duration_seconds_bucket{le=\"+Inf\",a=\"x\\\"y\"} 4\n")
	var mappers []*Mapper
	for name := range profile.Builtin() {
		mappers = append(mappers, mapper(f, name))
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, m := range mappers {
			var target *profile.Target
			if m.Tier() == profile.AppTier {
				target = &profile.Target{Namespace: "ns", Pod: "pod"}
			}
			svcs := services{"a/b": true}
			slow, slowErr := func() (p []series.Point, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return m.ingestExpfmt(nil, strings.NewReader(body), text, target, svcs)
			}()
			cache := NewSeriesCache()
			for round := range 2 {
				fast, fastErr := m.Ingest(nil, strings.NewReader(body), text, target, svcs, cache)
				for _, p := range fast {
					if p.Key.Namespace == "" || math.IsNaN(p.Key.LE) {
						t.Fatalf("bad key %+v", p.Key)
					}
				}
				if slowErr != nil {
					continue
				}
				if fastErr != nil {
					t.Fatalf("%s round %d: expfmt accepts the body, the fast path says %v", m.profile.Name, round, fastErr)
				}
				if msg := samePoints(slow, fast); msg != "" {
					t.Fatalf("%s round %d: %s\nexpfmt:\n%s\nfast:\n%s", m.profile.Name, round, msg, canonical(slow), canonical(fast))
				}
			}
		}
	})
}

// samePoints compares the two paths. expfmt turns a histogram into a dto.Histogram and back,
// which invents _sum, _count and +Inf samples (as 0 or the count) the body never had; the fast
// path reports only what was written, so those may be missing from it. Anything else must
// match exactly.
func samePoints(slow, fast []series.Point) string {
	group := func(points []series.Point) map[string]string {
		by := map[string][]string{}
		for _, p := range points {
			by[p.ID] = append(by[p.ID], fmt.Sprintf("%+v %s", p.Key, formatLE(p.V)))
		}
		out := map[string]string{}
		for id, rs := range by {
			sort.Strings(rs)
			out[id] = strings.Join(rs, "; ")
		}
		return out
	}
	want, got := group(slow), group(fast)
	for id, g := range got {
		if want[id] != g {
			return fmt.Sprintf("fast %q = %s, expfmt %q", id, g, want[id])
		}
	}
	for id := range want {
		name, _, _ := strings.Cut(id, "\xff")
		name, _, _ = strings.Cut(name, "#")
		synthesized := strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") ||
			(strings.HasSuffix(name, "_bucket") && strings.Contains(id, "\xffle=+Inf"))
		if _, ok := got[id]; !ok && !synthesized {
			return fmt.Sprintf("expfmt point %q missing from the fast path", id)
		}
	}
	return ""
}

// canonical renders points sorted, for comparing the two ingestion paths.
func canonical(points []series.Point) string {
	lines := make([]string, len(points))
	for i, p := range points {
		lines[i] = fmt.Sprintf("%q %+v %s", p.ID, p.Key, formatLE(p.V))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
