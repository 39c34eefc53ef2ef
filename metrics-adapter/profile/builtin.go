package profile

import (
	"net"
	"strings"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Tier says whose requests a profile's metrics describe.
type Tier string

// The tiers.
const (
	// IngressTier metrics come from an ingress controller or gateway and name the backend
	// objects in labels.
	IngressTier Tier = "ingress"
	// AppTier metrics come from the application pod that served the requests; the pod, its
	// namespace and workload come from the scrape target.
	AppTier Tier = "app"
)

// Profile is a named set of rules for one kind of exporter.
type Profile struct {
	Name  string `json:"name"`
	Tier  Tier   `json:"tier"`
	Rules []Rule `json:"rules"`
}

var (
	requests      = []series.Family{series.Requests}
	buckets       = []series.Family{series.DurationBucket}
	sums          = []series.Family{series.DurationSum}
	counts        = []series.Family{series.DurationCount}
	requestCounts = []series.Family{series.Requests, series.DurationCount}
	bytesIn       = []series.Family{series.RequestBytes}
)

// Builtin returns the built-in profiles by name. Label and metric names are those the
// exporters document.
func Builtin() map[string]Profile {
	nginx := Labels{Namespace: "namespace", Service: "service", Ingress: "ingress"}
	istio := Labels{Namespace: "destination_service_namespace", Service: "destination_service_name"}
	// Gateways report each request once with reporter="source"; sidecars would report it
	// again as "destination".
	istioSource := map[string]string{"reporter": "source"}
	envoy := &Parser{Label: "envoy_cluster_name", Decode: decodeEnvoyCluster}
	traefik := &Parser{Label: "service", Decode: decodeTraefikService}
	// Caddy labels requests by server and handler, and with metrics per_host by the request's
	// Host; a Kubernetes Service's in-cluster name as the Host names the backend.
	caddy := &Parser{Label: "host", Decode: decodeServiceHost}
	caddyProxy := map[string]string{"handler": "reverse_proxy"}
	ms := 0.001
	return map[string]Profile{
		"ingress-nginx": {Name: "ingress-nginx", Tier: IngressTier, Rules: []Rule{
			{Metric: "nginx_ingress_controller_requests", Families: requests, Labels: nginx, Status: "status"},
			{Metric: "nginx_ingress_controller_request_duration_seconds_bucket", Families: buckets, Labels: nginx},
			{Metric: "nginx_ingress_controller_request_duration_seconds_sum", Families: sums, Labels: nginx},
			{Metric: "nginx_ingress_controller_request_duration_seconds_count", Families: counts, Labels: nginx},
			{Metric: "nginx_ingress_controller_request_size_sum", Families: bytesIn, Labels: nginx},
		}},
		"envoy": {Name: "envoy", Tier: IngressTier, Rules: []Rule{
			{Metric: "envoy_cluster_upstream_rq_total", Families: requests, Parse: envoy},
			{Metric: "envoy_cluster_upstream_rq_xx", Families: []series.Family{series.ServerErrors}, Parse: envoy, Status: "envoy_response_code_class"},
			{Metric: "envoy_cluster_upstream_rq_time_bucket", Families: buckets, Parse: envoy, Unit: ms},
			{Metric: "envoy_cluster_upstream_rq_time_sum", Families: sums, Parse: envoy, Unit: ms},
			{Metric: "envoy_cluster_upstream_rq_time_count", Families: counts, Parse: envoy},
			{Metric: "envoy_cluster_upstream_cx_tx_bytes_total", Families: bytesIn, Parse: envoy},
		}},
		"istio": {Name: "istio", Tier: IngressTier, Rules: []Rule{
			{Metric: "istio_requests_total", Families: requests, Labels: istio, Status: "response_code", Match: istioSource},
			{Metric: "istio_request_duration_milliseconds_bucket", Families: buckets, Labels: istio, Unit: ms, Match: istioSource},
			{Metric: "istio_request_duration_milliseconds_sum", Families: sums, Labels: istio, Unit: ms, Match: istioSource},
			{Metric: "istio_request_duration_milliseconds_count", Families: counts, Labels: istio, Match: istioSource},
			{Metric: "istio_request_bytes_sum", Families: bytesIn, Labels: istio, Match: istioSource},
		}},
		"traefik": {Name: "traefik", Tier: IngressTier, Rules: []Rule{
			{Metric: "traefik_service_requests_total", Families: requests, Parse: traefik, Status: "code"},
			{Metric: "traefik_service_request_duration_seconds_bucket", Families: buckets, Parse: traefik},
			{Metric: "traefik_service_request_duration_seconds_sum", Families: sums, Parse: traefik},
			{Metric: "traefik_service_request_duration_seconds_count", Families: counts, Parse: traefik},
			{Metric: "traefik_service_requests_bytes_total", Families: bytesIn, Parse: traefik},
		}},
		"caddy": {Name: "caddy", Tier: IngressTier, Rules: []Rule{
			{Metric: "caddy_http_request_duration_seconds_bucket", Families: buckets, Parse: caddy, Match: caddyProxy},
			{Metric: "caddy_http_request_duration_seconds_sum", Families: sums, Parse: caddy, Match: caddyProxy},
			{Metric: "caddy_http_request_duration_seconds_count", Families: requestCounts, Parse: caddy, Status: "code", Match: caddyProxy},
			{Metric: "caddy_http_request_size_bytes_sum", Families: bytesIn, Parse: caddy, Match: caddyProxy},
		}},
		// Application pods: OpenTelemetry HTTP server semantic conventions exported to
		// Prometheus, the Prometheus client conventions, and Micrometer (Spring Boot).
		"http-app": {Name: "http-app", Tier: AppTier, Rules: []Rule{
			{Metric: "http_server_request_duration_seconds_bucket", Families: buckets},
			{Metric: "http_server_request_duration_seconds_sum", Families: sums},
			{Metric: "http_server_request_duration_seconds_count", Families: requestCounts, Status: "http_response_status_code"},
			{Metric: "http_requests_total", Families: requests, Status: "code"},
			{Metric: "http_request_duration_seconds_bucket", Families: buckets},
			{Metric: "http_request_duration_seconds_sum", Families: sums},
			{Metric: "http_request_duration_seconds_count", Families: counts},
			{Metric: "http_server_requests_seconds_bucket", Families: buckets},
			{Metric: "http_server_requests_seconds_sum", Families: sums},
			{Metric: "http_server_requests_seconds_count", Families: requestCounts, Status: "status"},
		}},
	}
}

// decodeEnvoyCluster understands the cluster names of the common Envoy control planes:
// Istio "outbound|80||checkout.shop.svc.cluster.local", Envoy Gateway
// "httproute/shop/checkout/rule/0" and Contour "shop/checkout/80/da39a3ee5e".
func decodeEnvoyCluster(name string, k *series.Key, _ Services) bool {
	if parts := strings.Split(name, "|"); len(parts) == 4 {
		host := strings.Split(parts[3], ".")
		if parts[0] != "outbound" || len(host) < 3 || host[2] != "svc" {
			return false
		}
		k.Service, k.Namespace, k.Port = host[0], host[1], parts[1]
		return true
	}
	parts := strings.Split(name, "/")
	switch {
	case len(parts) >= 3 && parts[0] == "httproute":
		k.Namespace, k.Route = parts[1], parts[2]
		return true
	case len(parts) == 4:
		k.Namespace, k.Service, k.Port = parts[0], parts[1], parts[2]
		return true
	}
	return false
}

// decodeServiceHost understands a Service's in-cluster host name, "<service>.<namespace>"
// followed by nothing, ".svc" or ".svc.<cluster domain>", with or without a port.
func decodeServiceHost(host string, k *series.Key, _ Services) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	parts := strings.Split(host, ".")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" || (len(parts) > 2 && parts[2] != "svc") {
		return false
	}
	k.Service, k.Namespace = parts[0], parts[1]
	return true
}

// decodeTraefikService understands Traefik's Kubernetes service names,
// "<namespace>-<service>-<port>@kubernetes" (and @kubernetescrd, @kubernetesgateway).
func decodeTraefikService(name string, k *series.Key, services Services) bool {
	base, provider, ok := strings.Cut(name, "@")
	if !ok || !strings.HasPrefix(provider, "kubernetes") {
		return false
	}
	ns, svc, port, ok := SplitServicePort(base, services)
	if !ok {
		return false
	}
	k.Namespace, k.Service, k.Port = ns, svc, port
	return true
}

// SplitServicePort splits "<namespace>-<service>-<port>", the form of Traefik service names
// and of Alibaba's sls.ingress.route selector. Names may contain dashes, so the split is the
// one naming an existing Service; without services it splits at the first dash.
func SplitServicePort(s string, services Services) (namespace, service, port string, ok bool) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return "", "", "", false
	}
	rest, port := s[:i], s[i+1:]
	for j := 0; j < len(rest); j++ {
		if rest[j] != '-' || j == 0 || j == len(rest)-1 {
			continue
		}
		ns, svc := rest[:j], rest[j+1:]
		if services == nil || services.ServiceExists(ns, svc) {
			return ns, svc, port, true
		}
	}
	return "", "", "", false
}
