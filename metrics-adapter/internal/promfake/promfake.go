// Package promfake is a stand-in Prometheus for tests: it serves /api/v1/query by evaluating
// the query with the real PromQL engine over samples held in memory (Store), so that a source
// is tested against the answers a real Prometheus would give. Only tests import it.
package promfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"k8s.io/utils/clock"
)

// Server answers instant queries; set Down to make it answer 503.
type Server struct {
	st *Store
	ng *promql.Engine
	// Down makes every request fail with 503.
	Down atomic.Bool
	// Queries counts requests.
	Queries atomic.Int64
	// Clock gives the evaluation time of queries without one, as Prometheus uses "now".
	Clock clock.PassiveClock
}

// New returns an empty server; Close releases its storage.
func New() (*Server, error) {
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1 << 22, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	return &Server{st: NewStore(), ng: ng, Clock: clock.RealClock{}}, nil
}

// Close releases the engine.
func (s *Server) Close() error {
	return s.ng.Close()
}

// Append stores one sample of the series named by labels (name first: "__name__", "x", ...).
func (s *Server) Append(at time.Time, v float64, nameAndLabels ...string) error {
	if err := s.st.Append(labels.FromStrings(nameAndLabels...), at.UnixMilli(), v); err != nil {
		return fmt.Errorf("appending: %w", err)
	}
	return nil
}

// ServeHTTP implements the instant query endpoint of the Prometheus HTTP API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Queries.Add(1)
	if s.Down.Load() || r.URL.Path != "/api/v1/query" {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	at := s.Clock.Now()
	if t := r.FormValue("time"); t != "" {
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		at = time.UnixMilli(int64(f * 1000))
	}
	q, err := s.ng.NewInstantQuery(r.Context(), s.st, nil, r.FormValue("query"), at)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	defer q.Close()
	res := q.Exec(r.Context())
	if res.Err != nil {
		writeError(w, http.StatusUnprocessableEntity, "execution", res.Err)
		return
	}
	vec, err := res.Vector()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "execution", err)
		return
	}
	out := []map[string]any{}
	for _, smp := range vec {
		out = append(out, map[string]any{"metric": smp.Metric.Map(), "value": []any{float64(smp.T) / 1000, strconv.FormatFloat(smp.F, 'g', -1, 64)}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": out}})
}

func writeError(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, map[string]any{"status": "error", "errorType": kind, "error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
