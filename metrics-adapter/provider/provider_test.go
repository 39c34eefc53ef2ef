package provider

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// fakeSource records the query it was asked and answers with a fixed value or error.
type fakeSource struct {
	got     series.Query
	value   series.Value
	err     error
	objects []series.Object
}

func (f *fakeSource) Evaluate(q series.Query, _ int64) (series.Value, error) {
	f.got = q
	return f.value, f.err
}

func (f *fakeSource) Objects(series.ObjectKind) []series.Object { return f.objects }

type services map[string]bool

func (s services) ServiceExists(ns, name string) bool { return s[ns+"/"+name] }

type pods []string

func (p pods) PodNames(string, labels.Selector) ([]string, error) { return p, nil }

var now = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func newProvider(src *fakeSource) *Provider {
	return New(Options{Source: src, Pods: pods{"a", "b"}, Services: services{"my-shop/check-out": true}, Clock: clocktesting.NewFakePassiveClock(now),
		Window: time.Minute, StaleAfter: 45 * time.Second})
}

func TestExternalSelectors(t *testing.T) {
	tests := map[string]struct {
		metric, namespace, selector string
		want                        series.Object
		port                        string // a key with this port must match; "-" skips the check
		wantErr                     string
	}{
		"sls route split on an existing Service": {metric: "sls_ingress_qps", namespace: "default",
			selector: "sls.ingress.route=my-shop-check-out-80,sls.project=p,sls.logstore=l,sls.query.interval=15",
			want:     series.Object{Kind: series.ServiceObject, Namespace: "my-shop", Name: "check-out"}, port: "80"},
		"sls route without a Service":  {metric: "sls_ingress_qps", selector: "sls.ingress.route=a-b-80", wantErr: "does not name an existing Service"},
		"sls without route":            {metric: "sls_ingress_latency_p99", selector: "sls.project=p", wantErr: "needs the selector sls.ingress.route"},
		"sls foreign label":            {metric: "sls_ingress_qps", selector: "sls.ingress.route=my-shop-check-out-80,app=x", wantErr: "unknown selector label \"app\""},
		"service in the HPA namespace": {metric: "ingress_requests_per_second", namespace: "shop", selector: "service=checkout", want: series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "checkout"}, port: "-"},
		"explicit namespace":           {metric: "ingress_error_ratio", namespace: "shop", selector: "namespace=edge,ingress=web", want: series.Object{Kind: series.IngressObject, Namespace: "edge", Name: "web"}, port: "-"},
		"route":                        {metric: "ingress_request_latency_p99_seconds", namespace: "shop", selector: "route=store", want: series.Object{Kind: series.RouteObject, Namespace: "shop", Name: "store"}, port: "-"},
		"whole namespace":              {metric: "ingress_requests_per_second", namespace: "shop", selector: "", want: series.Object{Kind: series.NamespaceObject, Namespace: "shop"}, port: "-"},
		"unknown label":                {metric: "ingress_requests_per_second", selector: "app=x", wantErr: "unknown selector label \"app\""},
		"unknown metric":               {metric: "qps", wantErr: "served: ingress_requests_per_second"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := &fakeSource{value: series.Value{V: 2, Timestamp: now.UnixMilli()}}
			sel, err := labels.Parse(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			list, err := newProvider(src).GetExternalMetric(context.Background(), tc.namespace, sel, cmprovider.ExternalMetricInfo{Metric: tc.metric})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.got.Object != tc.want {
				t.Fatalf("queried %+v, want %+v", src.got.Object, tc.want)
			}
			if tc.port != "-" && (src.got.Match(series.Key{Port: "81"}) || !src.got.Match(series.Key{Port: tc.port}) || !src.got.Match(series.Key{})) {
				t.Fatalf("port filter wrong for %s", tc.port)
			}
			if len(list.Items) != 1 || list.Items[0].MetricName != tc.metric {
				t.Fatalf("answer %+v", list)
			}
		})
	}
}

func TestValuesAndScale(t *testing.T) {
	src := &fakeSource{value: series.Value{V: 0.2475, Timestamp: now.UnixMilli()}}
	p := newProvider(src)
	sel := labels.SelectorFromSet(labels.Set{"sls.ingress.route": "my-shop-check-out-80"})
	list, err := p.GetExternalMetric(context.Background(), "x", sel, cmprovider.ExternalMetricInfo{Metric: "sls_ingress_latency_p99"})
	if err != nil {
		t.Fatal(err)
	}
	// Milliseconds, with milli precision: 247.5 ms, not truncated to 247.
	if got := list.Items[0].Value.String(); got != "247500m" {
		t.Fatalf("value %s, want 247500m", got)
	}
	if src.got.Quantile != 0.99 || src.got.Measure != series.LatencyQuantile {
		t.Fatalf("query %+v", src.got)
	}
	v, err := p.GetMetricByName(context.Background(), types.NamespacedName{Namespace: "shop", Name: "checkout"},
		cmprovider.CustomMetricInfo{GroupResource: servicesResource, Namespaced: true, Metric: "request_latency_p99_seconds"}, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if v.Value.String() != "248m" || v.DescribedObject.Kind != "Service" || *v.WindowSeconds != 60 {
		t.Fatalf("value %s on %s window %d", v.Value.String(), v.DescribedObject.Kind, *v.WindowSeconds)
	}
}

func TestErrorsAreNeverZero(t *testing.T) {
	tests := map[string]struct {
		err  error
		code int32
		msg  string
	}{
		"no series":   {err: series.ErrNoSeries, code: http.StatusNotFound, msg: "series exist for cart"},
		"no data":     {err: series.ErrNoData, code: http.StatusServiceUnavailable, msg: "not enough recent samples"},
		"stale":       {err: series.ErrStale, code: http.StatusServiceUnavailable, msg: "too old"},
		"incomplete":  {err: series.ErrIncomplete, code: http.StatusServiceUnavailable, msg: "part of the data is missing"},
		"other error": {err: errors.New("secret backend detail"), code: http.StatusServiceUnavailable, msg: "source error"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := &fakeSource{err: tc.err, objects: []series.Object{{Kind: series.ServiceObject, Namespace: "shop", Name: "cart"}}}
			_, err := newProvider(src).GetMetricByName(context.Background(), types.NamespacedName{Namespace: "shop", Name: "checkout"},
				cmprovider.CustomMetricInfo{GroupResource: servicesResource, Namespaced: true, Metric: "requests_per_second"}, labels.Everything())
			var status apierrors.APIStatus
			if !errors.As(err, &status) || status.Status().Code != tc.code || !strings.Contains(status.Status().Message, tc.msg) {
				t.Fatalf("error %v, want %d saying %q", err, tc.code, tc.msg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatal("a backend detail leaked into the API error")
			}
		})
	}
}

func TestPodsBySelector(t *testing.T) {
	src := &fakeSource{value: series.Value{V: 3, Timestamp: now.UnixMilli()}}
	list, err := newProvider(src).GetMetricBySelector(context.Background(), "shop", labels.Everything(),
		cmprovider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: "requests_per_second"}, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[1].DescribedObject.Name != "b" || list.Items[0].DescribedObject.Kind != "Pod" {
		t.Fatalf("items %+v", list.Items)
	}
	_, err = newProvider(src).GetMetricBySelector(context.Background(), "shop", labels.Everything(),
		cmprovider.CustomMetricInfo{GroupResource: servicesResource, Namespaced: true, Metric: "requests_per_second"}, labels.Everything())
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("selector query on services: %v, want 400", err)
	}
}

func TestQuantityRange(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), 1e300} {
		if _, err := quantity(v); err == nil {
			t.Errorf("quantity(%v) accepted", v)
		}
	}
}

// objects is an ObjectIndex over a set of known objects; it cannot tell for routes.
type objects map[series.Object]bool

func (o objects) Exists(obj series.Object) (exists, known bool) {
	if obj.Kind == series.RouteObject {
		return false, false
	}
	return o[obj], true
}

// A remote source is not asked about an object that does not exist (it would register and keep
// refreshing the query); kinds the index cannot tell pass.
func TestExistingOnly(t *testing.T) {
	src := &fakeSource{value: series.Value{V: 7, Timestamp: now.UnixMilli(), Series: 1}}
	checkout := series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "checkout"}
	guarded := ExistingOnly(objects{checkout: true}, src)
	if v, err := guarded.Evaluate(series.Query{Object: checkout}, now.UnixMilli()); err != nil || v.V != 7 {
		t.Fatalf("existing service: %v, %v", v, err)
	}
	src.got = series.Query{}
	missing := series.Object{Kind: series.ServiceObject, Namespace: "shop", Name: "no-such-service"}
	if _, err := guarded.Evaluate(series.Query{Object: missing}, now.UnixMilli()); !errors.Is(err, series.ErrNoSeries) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing service: %v, want ErrNoSeries saying it does not exist", err)
	}
	if src.got.Object.Name != "" {
		t.Fatalf("the source was asked about a missing object: %+v", src.got.Object)
	}
	route := series.Object{Kind: series.RouteObject, Namespace: "shop", Name: "r"}
	if _, err := guarded.Evaluate(series.Query{Object: route}, now.UnixMilli()); err != nil || src.got.Object != route {
		t.Fatalf("a route (existence unknown) was refused: %v", err)
	}
}
