package provider

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"k8s.io/utils/clock"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Source answers queries from what it holds in memory; it never calls a backend while an API
// request waits.
type Source interface {
	Evaluate(q series.Query, now int64) (series.Value, error)
	// Objects lists the objects of a kind that have series, for messages that say what exists.
	Objects(kind series.ObjectKind) []series.Object
}

// PodLister resolves a Pods metric's label selector to pod names.
type PodLister interface {
	PodNames(namespace string, selector labels.Selector) ([]string, error)
}

// Provider implements custom-metrics-apiserver's MetricsProvider over a Source.
type Provider struct {
	source     Source
	pods       PodLister
	services   profile.Services
	clock      clock.PassiveClock
	window     time.Duration
	staleAfter time.Duration
	catalog    Catalog
	object     map[string]Metric
	external   map[string]Metric
	observe    func(api string, err error, took time.Duration)
	observeAge func(age time.Duration)
}

// Options configure a Provider.
type Options struct {
	Source   Source
	Pods     PodLister
	Services profile.Services
	Clock    clock.PassiveClock
	// Window is the rate window, like the range in rate(x[window]).
	Window time.Duration
	// StaleAfter refuses answers whose newest sample is older than this.
	StaleAfter time.Duration
	// Observe, when set, is called after every API call (for metrics).
	Observe func(api string, err error, took time.Duration)
	// ObserveAge, when set, receives the age of the newest sample behind each value served.
	ObserveAge func(age time.Duration)
}

// New returns a provider serving DefaultCatalog.
func New(o Options) *Provider {
	p := &Provider{source: o.Source, pods: o.Pods, services: o.Services, clock: o.Clock, window: o.Window,
		staleAfter: o.StaleAfter, catalog: DefaultCatalog(), object: map[string]Metric{}, external: map[string]Metric{}, observe: o.Observe,
		observeAge: o.ObserveAge}
	if p.clock == nil {
		p.clock = clock.RealClock{}
	}
	for _, m := range p.catalog.Object {
		p.object[m.Name] = m
	}
	for _, m := range p.catalog.External {
		p.external[m.Name] = m
	}
	return p
}

var _ cmprovider.MetricsProvider = (*Provider)(nil)

// ListAllMetrics lists every object metric on every resource it is served on.
func (p *Provider) ListAllMetrics() []cmprovider.CustomMetricInfo {
	out := make([]cmprovider.CustomMetricInfo, 0, len(p.catalog.Object)*len(p.catalog.Resources))
	for _, gr := range p.catalog.Resources {
		for _, m := range p.catalog.Object {
			out = append(out, cmprovider.CustomMetricInfo{GroupResource: gr, Namespaced: true, Metric: m.Name})
		}
	}
	return out
}

// ListAllExternalMetrics lists every external metric.
func (p *Provider) ListAllExternalMetrics() []cmprovider.ExternalMetricInfo {
	out := make([]cmprovider.ExternalMetricInfo, 0, len(p.catalog.External))
	for _, m := range p.catalog.External {
		out = append(out, cmprovider.ExternalMetricInfo{Metric: m.Name})
	}
	return out
}

// GetMetricByName answers an Object metric (or one pod of a Pods metric).
func (p *Provider) GetMetricByName(_ context.Context, name types.NamespacedName, info cmprovider.CustomMetricInfo, metricSelector labels.Selector) (v *custom_metrics.MetricValue, err error) {
	defer p.timed("custom", time.Now(), &err) //nolint:forbidigo // API latency is measured with the wall clock, not business time
	m, res, err := p.objectMetric(info)
	if err != nil {
		return nil, err
	}
	return p.objectValue(m, res, name.Namespace, name.Name, metricSelector)
}

// GetMetricBySelector answers a Pods metric: one value per selected pod that has data. Pods
// without data are left out, as the HPA expects; if none has data the call fails.
func (p *Provider) GetMetricBySelector(_ context.Context, namespace string, selector labels.Selector, info cmprovider.CustomMetricInfo, metricSelector labels.Selector) (list *custom_metrics.MetricValueList, err error) {
	defer p.timed("custom", time.Now(), &err) //nolint:forbidigo // API latency is measured with the wall clock
	m, res, err := p.objectMetric(info)
	if err != nil {
		return nil, err
	}
	if res.kind != series.PodObject {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("metric %s: label selector queries are served for pods only; name the %s", m.Name, info.GroupResource))
	}
	names, err := p.pods.PodNames(namespace, selector)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("listing pods: %v", err))
	}
	list = &custom_metrics.MetricValueList{}
	var firstErr error
	for _, n := range names {
		v, err := p.objectValue(m, res, namespace, n, metricSelector)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		list.Items = append(list.Items, *v)
	}
	if len(list.Items) == 0 {
		if firstErr == nil {
			firstErr = apierrors.NewNotFound(info.GroupResource, fmt.Sprintf("%s for pods %s in %s (no pod matches)", m.Name, selector, namespace))
		}
		return nil, firstErr
	}
	return list, nil
}

// GetExternalMetric answers an External metric selected by labels.
func (p *Provider) GetExternalMetric(_ context.Context, namespace string, metricSelector labels.Selector, info cmprovider.ExternalMetricInfo) (list *external_metrics.ExternalMetricValueList, err error) {
	defer p.timed("external", time.Now(), &err) //nolint:forbidigo // API latency is measured with the wall clock
	m, ok := p.external[info.Metric]
	if !ok {
		return nil, notFound(fmt.Sprintf("unknown external metric %q; served: %s", info.Metric, names(p.catalog.External)))
	}
	q, err := p.externalQuery(m, namespace, metricSelector)
	if err != nil {
		return nil, err
	}
	v, qty, err := p.evaluate(m, q)
	if err != nil {
		return nil, err
	}
	lbls := map[string]string{}
	if reqs, selectable := metricSelector.Requirements(); selectable {
		for _, r := range reqs {
			if vals := r.Values().UnsortedList(); len(vals) == 1 {
				lbls[r.Key()] = vals[0]
			}
		}
	}
	return &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{
		MetricName:    m.Name,
		MetricLabels:  lbls,
		Timestamp:     metav1.NewTime(time.UnixMilli(v.Timestamp)),
		WindowSeconds: new(int64(p.window / time.Second)),
		Value:         qty,
	}}}, nil
}

func (p *Provider) objectMetric(info cmprovider.CustomMetricInfo) (Metric, servedResource, error) {
	m, ok := p.object[info.Metric]
	if !ok {
		return Metric{}, servedResource{}, notFound(fmt.Sprintf("unknown metric %q for %s; served: %s", info.Metric, info.GroupResource, names(p.catalog.Object)))
	}
	res, ok := lookupResource(info.GroupResource)
	if !ok {
		served := make([]string, 0, len(p.catalog.Resources))
		for _, gr := range p.catalog.Resources {
			served = append(served, gr.String())
		}
		return Metric{}, servedResource{}, notFound(fmt.Sprintf("metric %s is not served on %s; it is served on %s", m.Name, info.GroupResource, strings.Join(served, ", ")))
	}
	return m, res, nil
}

func (p *Provider) objectValue(m Metric, res servedResource, namespace, name string, metricSelector labels.Selector) (*custom_metrics.MetricValue, error) {
	q := series.Query{Measure: m.Measure, Quantile: m.Quantile, Object: series.Object{Kind: res.kind, Namespace: namespace, Name: name},
		Window: p.window, StaleAfter: p.staleAfter, Match: keyMatcher(metricSelector)}
	if q.Match != nil {
		q.Filter, q.Inexact = exactLabels(metricSelector)
	}
	v, qty, err := p.evaluate(m, q)
	if err != nil {
		return nil, err
	}
	ref := res.ref
	ref.Namespace, ref.Name = namespace, name
	out := &custom_metrics.MetricValue{
		DescribedObject: ref,
		Metric:          custom_metrics.MetricIdentifier{Name: m.Name},
		Timestamp:       metav1.NewTime(time.UnixMilli(v.Timestamp)),
		WindowSeconds:   new(int64(p.window / time.Second)),
		Value:           qty,
	}
	if metricSelector != nil && !metricSelector.Empty() {
		sel, err := metav1.ParseToLabelSelector(metricSelector.String())
		if err == nil {
			out.Metric.Selector = sel
		}
	}
	return out, nil
}

// evaluate runs q against the source and renders the scaled value.
func (p *Provider) evaluate(m Metric, q series.Query) (series.Value, resource.Quantity, error) {
	now := p.clock.Now().UnixMilli()
	v, err := p.source.Evaluate(q, now)
	if err != nil {
		return v, resource.Quantity{}, p.queryError(m.Name, q.Object, err)
	}
	qty, err := quantity(v.V * m.Scale)
	if err != nil {
		return v, qty, apierrors.NewInternalError(fmt.Errorf("metric %s: %w", m.Name, err))
	}
	if p.observeAge != nil {
		p.observeAge(time.Duration(now-v.Timestamp) * time.Millisecond)
	}
	return v, qty, nil
}

// keyMatcher turns a metric selector into a filter over the labels a series key carries.
func keyMatcher(sel labels.Selector) func(series.Key) bool {
	if sel == nil || sel.Empty() {
		return nil
	}
	return func(k series.Key) bool { return sel.Matches(keyLabels(k)) }
}

// exactLabels splits a selector into its exact-value requirements and whether anything else
// is left.
func exactLabels(sel labels.Selector) (map[string]string, bool) {
	reqs, _ := sel.Requirements()
	out := map[string]string{}
	inexact := false
	for _, r := range reqs {
		if v, ok := single(r); ok {
			out[r.Key()] = v
		} else {
			inexact = true
		}
	}
	return out, inexact
}

func keyLabels(k series.Key) labels.Set {
	return labels.Set{"namespace": k.Namespace, "service": k.Service, "port": k.Port, "ingress": k.Ingress, "route": k.Route}
}

// queryError maps a source error to the API error an HPA (and a person running kubectl get
// --raw) sees: unknown object → 404 naming objects that do have series; no, stale or
// incomplete data → 503, so that the HPA holds its replicas.
func (p *Provider) queryError(metric string, o series.Object, err error) error {
	switch {
	case errors.Is(err, series.ErrNoSeries):
		return notFound(fmt.Sprintf("metric %s: no series for %s %s/%s%s", metric, kindName(o.Kind), o.Namespace, o.Name, p.known(o)))
	case errors.Is(err, series.ErrNoData), errors.Is(err, series.ErrStale), errors.Is(err, series.ErrIncomplete):
		return apierrors.NewServiceUnavailable(fmt.Sprintf("metric %s for %s %s/%s: %v", metric, kindName(o.Kind), o.Namespace, o.Name, err))
	}
	return apierrors.NewServiceUnavailable(fmt.Sprintf("metric %s: source error", metric))
}

// known lists up to ten objects of o's kind in o's namespace that have series.
func (p *Provider) known(o series.Object) string {
	var in []string
	for _, k := range p.source.Objects(o.Kind) {
		if k.Namespace == o.Namespace {
			in = append(in, k.Name)
		}
	}
	if len(in) == 0 {
		return fmt.Sprintf("; no %s in %s has series", kindName(o.Kind), o.Namespace)
	}
	slices.Sort(in)
	more := ""
	if len(in) > 10 {
		in, more = in[:10], fmt.Sprintf(" and %d more", len(in)-10)
	}
	return fmt.Sprintf("; series exist for %s%s", strings.Join(in, ", "), more)
}

func kindName(k series.ObjectKind) string {
	switch k {
	case series.ServiceObject:
		return "service"
	case series.IngressObject:
		return "ingress"
	case series.RouteObject:
		return "httproute"
	case series.WorkloadObject:
		return "deployment"
	case series.PodObject:
		return "pod"
	case series.NamespaceObject:
		return "namespace"
	}
	return "object"
}

func notFound(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound, Message: msg}}
}

func names(ms []Metric) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return strings.Join(out, ", ")
}

// quantity renders a value with milli precision (0.001), refusing values a Quantity cannot
// hold rather than clipping them.
func quantity(v float64) (resource.Quantity, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxInt64/1000 {
		return resource.Quantity{}, fmt.Errorf("value %v out of range", v)
	}
	return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI), nil
}

func (p *Provider) timed(api string, start time.Time, err *error) {
	if p.observe != nil {
		p.observe(api, *err, time.Since(start)) //nolint:forbidigo // API latency is measured with the wall clock
	}
}
