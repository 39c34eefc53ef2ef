package provider

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/metrics/pkg/apis/custom_metrics"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Metric is one served metric: what it computes and how its value is scaled.
type Metric struct {
	Name    string
	Measure series.Measure
	// Quantile for latency quantiles.
	Quantile float64
	// Scale multiplies the computed value (seconds → milliseconds for Alibaba's names).
	Scale float64
	// Help is the one-line description the README repeats.
	Help string
}

func quantiles(prefix, suffix string, scale float64, qs map[string]float64) []Metric {
	out := make([]Metric, 0, len(qs))
	for name, q := range qs {
		unit := "seconds"
		if scale == 1000 {
			unit = "milliseconds"
		}
		out = append(out, Metric{Name: prefix + name + suffix, Measure: series.LatencyQuantile, Quantile: q, Scale: scale,
			Help: fmt.Sprintf("latency quantile %g in %s", q, unit)})
	}
	slices.SortFunc(out, func(a, b Metric) int { return cmp.Compare(a.Quantile, b.Quantile) })
	return out
}

var standardQuantiles = map[string]float64{"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}

// objectMetrics are served per object: on Services, Ingresses and HTTPRoutes from the ingress
// tier, and on pods and Deployments from the application tier.
var objectMetrics = append([]Metric{
	{Name: "requests_per_second", Measure: series.RequestRate, Scale: 1, Help: "requests per second"},
	{Name: "error_ratio", Measure: series.ErrorRatio, Scale: 1, Help: "share of requests answered with 5xx, 0 to 1"},
	{Name: "request_latency_average_seconds", Measure: series.LatencyAverage, Scale: 1, Help: "mean latency in seconds"},
	{Name: "inflow_bytes_per_second", Measure: series.InflowRate, Scale: 1, Help: "request bytes per second"},
}, quantiles("request_latency_", "_seconds", 1, standardQuantiles)...)

// externalMetrics are the object metrics of the ingress tier under an ingress_ prefix,
// selected by labels: namespace (the HPA's by default), service, port, ingress, route.
var externalMetrics = prefixed("ingress_", objectMetrics)

func prefixed(prefix string, ms []Metric) []Metric {
	out := make([]Metric, len(ms))
	for i, m := range ms {
		m.Name = prefix + m.Name
		out[i] = m
	}
	return out
}

// slsMetrics are the names of Alibaba Cloud's metrics adapter (SLS Ingress), selected by
// sls.ingress.route: <namespace>-<service>-<port>. Latencies are in milliseconds as there.
var slsMetrics = append([]Metric{
	{Name: "sls_ingress_qps", Measure: series.RequestRate, Scale: 1, Help: "requests per second"},
	{Name: "sls_ingress_latency_avg", Measure: series.LatencyAverage, Scale: 1000, Help: "mean latency in milliseconds"},
	{Name: "sls_ingress_inflow", Measure: series.InflowRate, Scale: 1, Help: "request bytes per second"},
}, quantiles("sls_ingress_latency_", "", 1000, map[string]float64{"p50": 0.5, "p95": 0.95, "p99": 0.99, "p9999": 0.9999})...)

// Resources the object metrics are served on.
var (
	servicesResource   = schema.GroupResource{Resource: "services"}
	ingressesResource  = schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}
	httproutesResource = schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "httproutes"}
	podsResource       = schema.GroupResource{Resource: "pods"}
	deploymentsRes     = schema.GroupResource{Group: "apps", Resource: "deployments"}
)

// servedResource is a resource object metrics are served on: the object kind its series are
// indexed by (which says the tier that feeds it) and how answers describe the object.
type servedResource struct {
	resource schema.GroupResource
	kind     series.ObjectKind
	ref      custom_metrics.ObjectReference
}

var servedResources = []servedResource{
	{servicesResource, series.ServiceObject, custom_metrics.ObjectReference{APIVersion: "v1", Kind: "Service"}},
	{ingressesResource, series.IngressObject, custom_metrics.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}},
	{httproutesResource, series.RouteObject, custom_metrics.ObjectReference{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"}},
	{podsResource, series.PodObject, custom_metrics.ObjectReference{APIVersion: "v1", Kind: "Pod"}},
	{deploymentsRes, series.WorkloadObject, custom_metrics.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment"}},
}

func lookupResource(gr schema.GroupResource) (servedResource, bool) {
	for _, r := range servedResources {
		if r.resource == gr {
			return r, true
		}
	}
	return servedResource{}, false
}

// Catalog lists what the adapter serves: object metric names with the resources they are
// served on, and external metric names.
type Catalog struct {
	Object    []Metric
	Resources []schema.GroupResource
	External  []Metric
}

// DefaultCatalog returns the served catalog.
func DefaultCatalog() Catalog {
	return Catalog{
		Object:    objectMetrics,
		Resources: resources(),
		External:  append(append([]Metric{}, externalMetrics...), slsMetrics...),
	}
}

func resources() []schema.GroupResource {
	out := make([]schema.GroupResource, len(servedResources))
	for i, r := range servedResources {
		out[i] = r.resource
	}
	return out
}
