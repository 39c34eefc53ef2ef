package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	executions *prometheus.CounterVec
	fireLag    prometheus.Histogram
	nextFire   *prometheus.GaugeVec
	objects    *prometheus.GaugeVec

	mu    sync.Mutex
	ready map[types.NamespacedName]bool
	jobs  map[types.NamespacedName][]string
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "executions_total",
			Help: "Scheduled times handled, by resulting state (Succeed, Failed, Missed, Skipped).",
		}, []string{"state"}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "fire_lag_seconds",
			Help:    "Delay from a job's scheduled time to its scale change being applied.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		nextFire: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "next_fire_timestamp_seconds",
			Help: "Unix time of each job's next scheduled run.",
		}, []string{"namespace", "name", "job"}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "lockstep", Subsystem: "cronhpa", Name: "objects",
			Help: "CronHorizontalPodAutoscalers by Ready state.",
		}, []string{"ready"}),
		ready: map[types.NamespacedName]bool{},
		jobs:  map[types.NamespacedName][]string{},
	}
	reg.MustRegister(m.executions, m.fireLag, m.nextFire, m.objects)
	return m
}

func (m *Metrics) execution(state v1beta1.JobState) {
	m.executions.WithLabelValues(string(state)).Inc()
}

func (m *Metrics) fired(lag time.Duration) { m.fireLag.Observe(lag.Seconds()) }

func (m *Metrics) observeObject(key types.NamespacedName, ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.ready[key]; ok {
		m.objects.WithLabelValues(boolLabel(prev)).Dec()
	}
	m.ready[key] = ready
	m.objects.WithLabelValues(boolLabel(ready)).Inc()
}

func (m *Metrics) observeNext(key types.NamespacedName, records []v1beta1.Condition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, job := range m.jobs[key] {
		m.nextFire.DeleteLabelValues(key.Namespace, key.Name, job)
	}
	names := make([]string, 0, len(records))
	for _, r := range records {
		if r.NextScheduleTime != nil {
			m.nextFire.WithLabelValues(key.Namespace, key.Name, r.Name).Set(float64(r.NextScheduleTime.Unix()))
			names = append(names, r.Name)
		}
	}
	m.jobs[key] = names
}

func (m *Metrics) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, job := range m.jobs[key] {
		m.nextFire.DeleteLabelValues(key.Namespace, key.Name, job)
	}
	delete(m.jobs, key)
	if prev, ok := m.ready[key]; ok {
		m.objects.WithLabelValues(boolLabel(prev)).Dec()
		delete(m.ready, key)
	}
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
