package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are vpa-inplace's Prometheus metrics (prefix lockstep_vpa_inplace_).
type Metrics struct {
	// Recommendations counts recommendation changes written to VPA status.
	Recommendations prometheus.Counter
	// Samples counts usage samples added to histories.
	Samples prometheus.Counter
	// OOMs counts OOM kills recorded as memory bumps.
	OOMs prometheus.Counter
	// UsageErrors counts failed reads of metrics.k8s.io.
	UsageErrors prometheus.Counter
	// Checkpoints counts checkpoint writes; Restored checkpoints read at start.
	Checkpoints, Restored prometheus.Counter
	// RecommenderPass is the duration of one recommender pass.
	RecommenderPass prometheus.Histogram
	// Decisions counts the updater's decisions by action and reason.
	Decisions *prometheus.CounterVec
	// Resizes counts pods/resize patches and evictions by outcome (applied, failed, evicted,
	// eviction_failed, deferred, infeasible).
	Resizes *prometheus.CounterVec
	// Applied is the time from the resize patch to the pod's status reporting it applied.
	Applied prometheus.Histogram
	// UpdaterPass is the duration of one VPA's reconcile (gather, decide, act).
	UpdaterPass prometheus.Histogram
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "lockstep", "vpa_inplace"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &Metrics{
		Recommendations: counter("recommendations_total", "Recommendation changes written to VerticalPodAutoscaler status."),
		Samples:         counter("usage_samples_total", "Container usage samples added to the recommender's histograms."),
		OOMs:            counter("oom_bumps_total", "OOM kills recorded as bumped memory samples."),
		UsageErrors:     counter("usage_errors_total", "Failed reads of pod usage from metrics.k8s.io (no samples that pass)."),
		Checkpoints:     counter("checkpoints_written_total", "VerticalPodAutoscalerCheckpoint writes."),
		Restored:        counter("checkpoints_restored_total", "Checkpoints read into the recommender at start."),
		RecommenderPass: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "recommender_pass_seconds",
			Help: "Duration of one recommender pass over every VPA.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "decisions_total",
			Help: "Updater decisions per pod, by action and reason."}, []string{"action", "reason"}),
		Resizes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "resizes_total",
			Help: "In-place resizes and evictions by outcome: applied, failed, evicted, eviction_failed, deferred, infeasible."}, []string{"outcome"}),
		Applied: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "resize_applied_seconds",
			Help: "Time from a pods/resize patch to the pod's status reporting the new resources.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		UpdaterPass: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "updater_reconcile_seconds",
			Help: "Duration of one VPA's updater reconcile (gather, decide, act).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	reg.MustRegister(m.Recommendations, m.Samples, m.OOMs, m.UsageErrors, m.Checkpoints, m.Restored, m.RecommenderPass, m.Decisions, m.Resizes, m.Applied, m.UpdaterPass)
	return m
}
