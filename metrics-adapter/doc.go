// Package metricsadapter will serve custom.metrics.k8s.io and external.metrics.k8s.io from
// memory: ingress QPS and latency quantiles and APM latency, refreshed in the background from
// an embedded scraper, Prometheus or Alibaba Cloud sources.
package metricsadapter
