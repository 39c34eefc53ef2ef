// Package prometheus is a metrics-adapter source that reads a Prometheus-compatible HTTP API
// (Prometheus, Thanos, VictoriaMetrics, Alibaba Cloud ARMS Prometheus and SLS MetricStore
// PromQL endpoints) with templated queries, as prometheus-adapter users know them: a rule per
// measure maps object kinds to label names and holds a PromQL template. Queries the API has
// asked for are re-run in the background; API calls only read the last answers from memory.
package prometheus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// Config configures the source (the `prometheus:` section of the adapter's configuration).
type Config struct {
	// URL of the HTTP API, e.g. http://prometheus.monitoring:9090.
	URL string `json:"url"`
	// Timeout bounds one query (default 10s).
	Timeout time.Duration `json:"-"`
	// Refresh is how often wanted queries are re-run (default 15s).
	Refresh time.Duration `json:"-"`
	// Forget drops a query nobody asked for this long (default 10m).
	Forget time.Duration `json:"-"`
	// Auth, when set, authenticates every request.
	Auth *Auth `json:"auth,omitempty"`
	// Rules, one per measure.
	Rules []Rule `json:"rules"`
}

// Deps are what the source needs besides its configuration; every field may be left zero.
type Deps struct {
	// Client makes the HTTP requests (default: a client with the default transport).
	Client *http.Client
	Clock  clock.WithTicker
	Log    logr.Logger
	// Observe is told the duration and outcome of every query.
	Observe func(took time.Duration, err error)
	// MaxQueries bounds the queries refreshed (remote.DefaultMaxWanted when 0); Evicted is
	// called for each one dropped to keep it.
	MaxQueries int
	Evicted    func()
	// Cloud gives the Alibaba Cloud credentials for Auth.AlibabaCloud.
	Cloud CredentialSource
}

// Rule says how to ask Prometheus for one measure.
type Rule struct {
	// Measure is one of requests_per_second, error_ratio, request_latency_average_seconds,
	// request_latency_quantile_seconds, inflow_bytes_per_second.
	Measure string `json:"measure"`
	// Labels maps object kinds (namespace, service, ingress, route, deployment, pod, port) to
	// the label that holds them in the series. namespace is required; a query about a kind
	// the rule does not map is not this source's.
	Labels map[string]string `json:"labels"`
	// Query is a Go template of the PromQL query, with {{.Matchers}} (label matchers for the
	// object and selector, comma-separated), {{.Window}} (like 1m) and {{.Quantile}}. It must
	// return one series.
	Query string `json:"query"`
}

var measures = map[string]series.Measure{
	"requests_per_second":              series.RequestRate,
	"error_ratio":                      series.ErrorRatio,
	"request_latency_average_seconds":  series.LatencyAverage,
	"request_latency_quantile_seconds": series.LatencyQuantile,
	"inflow_bytes_per_second":          series.InflowRate,
}

var kindNames = map[series.ObjectKind]string{
	series.NamespaceObject: "namespace",
	series.ServiceObject:   "service",
	series.IngressObject:   "ingress",
	series.RouteObject:     "route",
	series.WorkloadObject:  "deployment",
	series.PodObject:       "pod",
}

type rule struct {
	labels map[string]string
	tmpl   *template.Template
}

// Source answers from the last results of the queries it was asked for.
type Source struct {
	api   promv1.API
	clock clock.WithTicker
	rules map[series.Measure]rule
	log   logr.Logger
	cache *remote.Cache[string]
}

// New checks the configuration and returns the source; Run keeps it fresh.
func New(cfg Config, deps Deps) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("prometheus: url is required")
	}
	client := deps.Client
	if client == nil {
		client = &http.Client{}
	}
	rt, err := cfg.Auth.roundTripper(client.Transport, deps.Cloud)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, Client: &http.Client{Transport: rt, Timeout: client.Timeout}})
	if err != nil {
		return nil, fmt.Errorf("prometheus: url %q: %w", cfg.URL, err)
	}
	clk := deps.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	s := &Source{api: promv1.NewAPI(c), clock: clk, rules: map[series.Measure]rule{}, log: deps.Log}
	s.cache = remote.New(remote.Options{Name: "Prometheus", Refresh: cfg.Refresh, Forget: cfg.Forget, Timeout: cfg.Timeout, Observe: deps.Observe,
		MaxWanted: deps.MaxQueries, Evicted: deps.Evicted}, s.run, clk)
	for i, r := range cfg.Rules {
		m, ok := measures[r.Measure]
		if !ok {
			return nil, fmt.Errorf("prometheus: rules[%d]: unknown measure %q", i, r.Measure)
		}
		if _, dup := s.rules[m]; dup {
			return nil, fmt.Errorf("prometheus: rules[%d]: a second rule for %s", i, r.Measure)
		}
		if r.Labels["namespace"] == "" {
			return nil, fmt.Errorf("prometheus: rules[%d] (%s): labels.namespace is required", i, r.Measure)
		}
		t, err := template.New(r.Measure).Option("missingkey=error").Parse(r.Query)
		if err == nil {
			// Fields the template names but the data lacks fail here, not at the first query.
			err = t.Execute(io.Discard, templateData{Matchers: `namespace="n"`, Window: "1m", Quantile: "0.99"})
		}
		if err != nil {
			return nil, fmt.Errorf("prometheus: rules[%d] (%s): query template: %w", i, r.Measure, err)
		}
		s.rules[m] = rule{labels: r.Labels, tmpl: t}
	}
	return s, nil
}

// Evaluate implements provider.Source. A query seen for the first time is queued for the
// background refresher and answered with ErrNoData until its first result arrives.
func (s *Source) Evaluate(q series.Query, now int64) (series.Value, error) {
	query, err := s.render(q)
	if err != nil {
		return series.Value{}, err
	}
	return s.cache.Get(query, query, now, q.StaleAfter)
}

// Objects implements provider.Source; the source cannot list what Prometheus holds cheaply.
func (s *Source) Objects(series.ObjectKind) []series.Object { return nil }

type templateData struct {
	Matchers string
	Window   string
	Quantile string
}

// render builds the PromQL for q, or ErrNoSeries when no rule covers it.
func (s *Source) render(q series.Query) (string, error) {
	r, ok := s.rules[q.Measure]
	if !ok || q.Inexact {
		return "", series.ErrNoSeries
	}
	kind := kindNames[q.Object.Kind]
	matchers := map[string]string{r.labels["namespace"]: q.Object.Namespace}
	if q.Object.Kind != series.NamespaceObject {
		label := r.labels[kind]
		if label == "" {
			return "", series.ErrNoSeries
		}
		matchers[label] = q.Object.Name
	}
	for k, v := range q.Filter {
		label := r.labels[k]
		if label == "" {
			return "", series.ErrNoSeries
		}
		matchers[label] = v
	}
	names := make([]string, 0, len(matchers))
	for k := range matchers {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%q", n, matchers[n])
	}
	var b bytes.Buffer
	data := templateData{Matchers: strings.Join(parts, ","), Window: model.Duration(q.Window).String(), Quantile: fmt.Sprintf("%g", q.Quantile)}
	if err := r.tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering the query for %s: %w", kind, err)
	}
	return b.String(), nil
}

// Run re-runs the wanted queries every refresh interval (and at once when a new one comes)
// until ctx ends.
func (s *Source) Run(ctx context.Context) { s.cache.Run(ctx) }

// Refresh runs every wanted query once.
func (s *Source) Refresh(ctx context.Context) { s.cache.Refresh(ctx) }

// run evaluates one query now. Backend failures become plain errors (the provider shows
// "source error", not the detail); an empty answer means no series.
func (s *Source) run(ctx context.Context, query string) (series.Value, error) {
	at := s.clock.Now()
	res, warnings, err := s.api.Query(ctx, query, at)
	if err != nil {
		s.log.V(1).Info("Prometheus query failed", "query", query, "err", err.Error())
		return series.Value{}, fmt.Errorf("prometheus: %w", err)
	}
	if len(warnings) > 0 {
		// Thanos, Cortex, Mimir and VictoriaMetrics report partial answers (a store or
		// replica that did not respond) as warnings: a sum over part of the data is refused.
		s.log.V(1).Info("Prometheus answered with warnings", "query", query, "warnings", warnings)
		return series.Value{}, fmt.Errorf("%w: prometheus answered with %d warnings (a partial response?); see the adapter's log", series.ErrIncomplete, len(warnings))
	}
	var v float64
	var ts model.Time
	switch r := res.(type) {
	case model.Vector:
		switch len(r) {
		case 0:
			return series.Value{}, fmt.Errorf("%w: the query returned nothing", series.ErrNoSeries)
		case 1:
			v, ts = float64(r[0].Value), r[0].Timestamp
		default:
			return series.Value{}, fmt.Errorf("%w: the query returned %d series; aggregate it to one (sum, max)", series.ErrNoData, len(r))
		}
	case *model.Scalar:
		v, ts = float64(r.Value), r.Timestamp
	default:
		return series.Value{}, fmt.Errorf("%w: the query returned a %s, not a vector", series.ErrNoData, res.Type())
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return series.Value{}, fmt.Errorf("%w: the query returned %v (no requests in the window?)", series.ErrNoData, v)
	}
	return series.Value{V: v, Timestamp: int64(ts), Series: 1}, nil
}
