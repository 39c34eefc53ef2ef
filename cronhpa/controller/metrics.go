package controller

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// Metrics are the controller's Prometheus metrics. Event counts and fire lag are recorded as
// they happen; per-object state (next fire time per job, objects by readiness) is computed at
// scrape time from the informer cache, so it costs no memory between scrapes and can never
// disagree with the objects' status.
type Metrics struct {
	executions *prometheus.CounterVec
	runErrors  prometheus.Counter
	fireLag    prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg. cache is read at scrape time.
func NewMetrics(reg prometheus.Registerer, cache client.Reader) *Metrics {
	m := &Metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "executions_total",
			Help: "Scheduled times handled, by final state (Succeed, Failed after the starting deadline, Missed, Skipped); retries of one time count once.",
		}, []string{"state"}),
		runErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "run_errors_total",
			Help: "Failed attempts to scale for a scheduled time; each is retried until the starting deadline.",
		}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "fire_lag_seconds",
			Help:    "Delay from a job's scheduled time to its scale change being applied.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
	}
	reg.MustRegister(m.executions, m.runErrors, m.fireLag, &stateCollector{cache: cache})
	return m
}

func (m *Metrics) execution(state v1beta1.JobState) {
	m.executions.WithLabelValues(string(state)).Inc()
}

func (m *Metrics) runFailed() { m.runErrors.Inc() }

func (m *Metrics) fired(lag time.Duration) { m.fireLag.Observe(lag.Seconds()) }

var (
	nextFireDesc = prometheus.NewDesc("lockstep_cronhpa_next_fire_timestamp_seconds",
		"Unix time of each job's next scheduled run.", []string{"namespace", "name", "job"}, nil)
	objectsDesc = prometheus.NewDesc("lockstep_cronhpa_objects",
		"CronHorizontalPodAutoscalers by Ready state.", []string{"ready"}, nil)
)

// stateCollector emits per-object metrics from the cache on each scrape.
type stateCollector struct {
	cache client.Reader
}

// Describe sends the descriptors of the collected metrics.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nextFireDesc
	ch <- objectsDesc
}

// Collect lists the cached objects (without copying them) and emits their metrics.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	var list v1beta1.CronHorizontalPodAutoscalerList
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(objectsDesc, err)
		return
	}
	var ready, notReady float64
	for i := range list.Items {
		obj := &list.Items[i]
		if meta.IsStatusConditionTrue(obj.Status.ObjectConditions, v1beta1.ConditionReady) {
			ready++
		} else {
			notReady++
		}
		for _, r := range obj.Status.Conditions {
			if r.NextScheduleTime != nil {
				ch <- prometheus.MustNewConstMetric(nextFireDesc, prometheus.GaugeValue, float64(r.NextScheduleTime.Unix()), obj.Namespace, obj.Name, r.Name)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, ready, "true")
	ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, notReady, "false")
}
