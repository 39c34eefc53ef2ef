// Package series holds scraped samples in memory: one bounded ring of recent samples per raw
// series, tagged with the objects the series belongs to (Service, Ingress, route, workload,
// pod) and indexed by them, so that a query for one object reads only that object's series.
// Query evaluates requests per second, error ratio, average latency and latency quantiles over
// those series with PromQL semantics (package calc).
package series
