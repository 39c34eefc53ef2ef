// Package scrape is the embedded scraper, the adapter's default source: it finds ingress
// controller pods (by profile and label selector) and application pods (by annotation)
// through the Kubernetes API, scrapes their Prometheus exposition (text or protobuf, chosen by
// content negotiation), maps each sample through the pod's profile and keeps the result in a
// series.Store.
package scrape
