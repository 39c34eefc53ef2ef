// Package profile turns scraped series into series.Keys: which Kubernetes objects a series
// belongs to and what it counts. A Profile is a list of Rules, one per metric family; the
// built-in profiles for ingress-nginx, Envoy (Envoy Gateway, Contour, Istio gateways), Istio
// standard metrics, Traefik and application HTTP metrics (OpenTelemetry, Prometheus client
// conventions, Micrometer) are Rules like the custom ones users write, so both share one path.
package profile
