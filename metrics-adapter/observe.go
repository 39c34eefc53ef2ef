package metricsadapter

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockstep-dev/lockstep/metrics-adapter/frontproxy"
	"github.com/lockstep-dev/lockstep/metrics-adapter/scrape"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// observability holds the adapter's own Prometheus metrics, served on its /metrics.
type observability struct {
	apiLatency     *prometheus.HistogramVec
	valueAge       prometheus.Histogram
	scrapeDuration *prometheus.HistogramVec
	scrapeErrors   *prometheus.CounterVec
	scrapeLimited  *prometheus.CounterVec
	sourceDuration *prometheus.HistogramVec
	evicted        *prometheus.CounterVec
	frontProxy     *prometheus.CounterVec
}

func newObservability(reg prometheus.Registerer, seriesCount, targets func() int) *observability {
	o := &observability{
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockstep_metrics_adapter_api_duration_seconds",
			Help:    "Time to answer a custom or external metrics API call inside the adapter, by API and result.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5},
		}, []string{"api", "result"}),
		valueAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockstep_metrics_adapter_value_age_seconds",
			Help:    "Age of the newest sample behind each value served.",
			Buckets: []float64{1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120},
		}),
		scrapeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockstep_metrics_adapter_scrape_duration_seconds",
			Help:    "Duration of scrapes, by profile.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
		}, []string{"profile"}),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_metrics_adapter_scrape_errors_total",
			Help: "Failed scrapes (unreachable, HTTP error, unparsable body), by profile.",
		}, []string{"profile"}),
		scrapeLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_metrics_adapter_scrape_limit_exceeded_total",
			Help: "Scrapes refused because the target exposed more series than seriesLimit or a body over 64 MiB, by profile (also counted in scrape_errors_total).",
		}, []string{"profile"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_metrics_adapter_remote_queries_evicted_total",
			Help: "Remote-source queries dropped to keep at most maxRemoteQueries, the least recently asked first, by source.",
		}, []string{"source"}),
		frontProxy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_metrics_adapter_front_proxy_authentications_total",
			Help: "Requests by how the front-proxy client certificate was checked: cached (chain verified earlier), verified (now), passed (to the library's authenticator).",
		}, []string{"result"}),
		sourceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockstep_metrics_adapter_source_request_duration_seconds",
			Help:    "Duration of background requests to remote sources (Prometheus, CloudMonitor, ARMS), by source and result (ok, error, throttled); count the error results for the source error rate.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 9),
		}, []string{"source", "result"}),
	}
	reg.MustRegister(o.apiLatency, o.valueAge, o.scrapeDuration, o.scrapeErrors, o.scrapeLimited, o.sourceDuration, o.evicted, o.frontProxy,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lockstep_metrics_adapter_series", Help: "Series held in memory."},
			func() float64 { return float64(seriesCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lockstep_metrics_adapter_scrape_targets", Help: "Targets being scraped."},
			func() float64 { return float64(targets()) }))
	return o
}

// api records one API call.
func (o *observability) api(api string, err error, took time.Duration) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	o.apiLatency.WithLabelValues(api, result).Observe(took.Seconds())
}

// age records the age of a served value.
func (o *observability) age(d time.Duration) { o.valueAge.Observe(d.Seconds()) }

// source returns the observer of one remote source's requests.
func (o *observability) source(name string) func(time.Duration, error) {
	return func(took time.Duration, err error) {
		result := "ok"
		switch {
		case errors.Is(err, remote.ErrThrottled):
			result = "throttled"
		case err != nil && !errors.Is(err, series.ErrNoSeries):
			result = "error"
		}
		o.sourceDuration.WithLabelValues(name, result).Observe(took.Seconds())
	}
}

// Scraped implements scrape.Observer.
func (o *observability) Scraped(profile string, took time.Duration, _ int, err error) {
	o.scrapeDuration.WithLabelValues(profile).Observe(took.Seconds())
	if err != nil {
		o.scrapeErrors.WithLabelValues(profile).Inc()
	}
	if errors.Is(err, scrape.ErrTooManySeries) || errors.Is(err, scrape.ErrBodyTooLarge) {
		o.scrapeLimited.WithLabelValues(profile).Inc()
	}
}

// frontProxyAuth records how one request's front-proxy certificate was checked.
func (o *observability) frontProxyAuth(r frontproxy.Result) {
	o.frontProxy.WithLabelValues(string(r)).Inc()
}

// evictions returns the counter of one remote source's evicted queries.
func (o *observability) evictions(source string) func() {
	c := o.evicted.WithLabelValues(source)
	return c.Inc
}
