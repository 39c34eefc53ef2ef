// Package provider serves custom.metrics.k8s.io and external.metrics.k8s.io for
// sigs.k8s.io/custom-metrics-apiserver from memory. The catalog (catalog.go) is the one list of
// what is served; the README's catalog is checked against it by a test. Each API call maps the
// request to a series.Query and evaluates it against a Source, which never calls a backend on
// the serving path; failures become typed API errors, never a zero.
package provider
