package spill

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the spill and move-back controllers' Prometheus metrics.
type Metrics struct {
	// Decisions counts spill decisions by action and reason.
	Decisions *prometheus.CounterVec
	// SpillLatency is how long pods were pending when they were spilled.
	SpillLatency prometheus.Histogram
	// Moves counts move-back steps by step (released, evicted, blocked) .
	Moves *prometheus.CounterVec
	// MoveDuration is how long a move took, from release to eviction.
	MoveDuration prometheus.Histogram
	// Holds counts placeholders by what happened to them (created, expired, released, failed).
	Holds *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_node_autoscaler_spill_decisions_total",
			Help: "Spill decisions on unschedulable pods, by action (wait, spill, cannot_spill) and reason.",
		}, []string{"action", "reason"}),
		SpillLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockstep_node_autoscaler_spill_pending_seconds",
			Help:    "How long pods had been pending when they were spilled to serverless capacity.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}),
		Moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_node_autoscaler_move_back_total",
			Help: "Move-back steps of spilled pods: released (replacement asked for), evicted (moved), blocked (eviction refused, e.g. by a PodDisruptionBudget), unsupported (owner is not a Deployment).",
		}, []string{"step"}),
		MoveDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockstep_node_autoscaler_move_back_seconds",
			Help:    "Time from releasing a spilled pod to evicting it once its replacement is ready.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}),
		Holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_node_autoscaler_holds_total",
			Help: "Placeholder pods holding room for spilled pods, by event (created, expired, deleted, failed).",
		}, []string{"event"}),
	}
	for _, c := range []prometheus.Collector{m.Decisions, m.SpillLatency, m.Moves, m.MoveDuration, m.Holds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (a Action) String() string {
	switch a {
	case Spill:
		return "spill"
	case CannotSpill:
		return "cannot_spill"
	default:
		return "wait"
	}
}

// String names the move action in logs.
func (a MoveAction) String() string {
	switch a {
	case MoveCreateHold:
		return "create_hold"
	case MoveDeleteHold:
		return "delete_hold"
	case MoveRelease:
		return "release"
	case MoveEvict:
		return "evict"
	case MoveReportHold:
		return "report_hold"
	default:
		return "none"
	}
}
