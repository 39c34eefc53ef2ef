// Package demoapi is the load harness's service tier: an HTTP API that simulates CPU work under a
// concurrency limit, so its latency rises when it is under-provisioned and falls when replicas or
// CPU are added, and that exports its request metrics as the OpenTelemetry HTTP server
// conventions name them in Prometheus (http_server_request_duration_seconds), which the metrics
// adapter's http-app profile reads.
package demoapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"
)

// Config is one pod's capacity.
type Config struct {
	// Work is the CPU time one request needs on one core.
	Work time.Duration
	// CPU is the cores the pod may use (its CPU limit); in-place resizes change it (SetCPU).
	CPU float64
	// Concurrency is how many requests are served at once (worker threads); more wait in line.
	Concurrency int
	// QueueLimit is how many requests may wait; beyond it requests get 503 at once.
	QueueLimit int
	// Burn spends each request's Work as real CPU time on the serving thread instead of
	// modelling it: in a real pod (the kind load test) the CPU limit then slows the work, and
	// the kubelet measures the usage. CPU only labels the pod's size then.
	Burn bool
}

// Validate refuses a capacity that could not serve anything.
func (c Config) Validate() error {
	switch {
	case c.Work <= 0:
		return fmt.Errorf("work per request %s must be positive", c.Work)
	case c.CPU <= 0 || math.IsNaN(c.CPU) || math.IsInf(c.CPU, 0):
		return fmt.Errorf("CPU %g must be a positive number of cores", c.CPU)
	case c.Concurrency <= 0:
		return fmt.Errorf("concurrency %d must be positive", c.Concurrency)
	case c.QueueLimit < 0:
		return fmt.Errorf("queue limit %d must not be negative", c.QueueLimit)
	}
	return nil
}

// ServiceTime is how long a request takes once it is served, with inService requests (itself
// included) sharing cpu cores: the work at full speed while each has a core, slowed in proportion
// once they outnumber the cores (processor sharing).
func ServiceTime(work time.Duration, cpu float64, inService int) time.Duration {
	share := float64(inService) / cpu
	return time.Duration(float64(work) * math.Max(1, share))
}

// Capacity is the requests per second a pod sustains: its cores' worth of work, or its workers'
// if they are fewer.
func Capacity(c Config) float64 {
	return math.Min(c.CPU, float64(c.Concurrency)) / c.Work.Seconds()
}

// Server is one pod's API.
type Server struct {
	clock    clock.Clock
	duration *prometheus.HistogramVec

	mu         sync.Mutex
	cfg        Config
	inService  int
	waiting    int
	wake       *sync.Cond
	cpuSeconds float64
}

// New returns a server with the capacity cfg, registering its metrics with reg.
func New(cfg Config, clk clock.Clock, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{clock: clk, cfg: cfg}
	s.wake = sync.NewCond(&s.mu)
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests, from arrival to answer (queueing included).",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10},
	}, []string{"http_request_method", "http_response_status_code"})
	if err := reg.Register(s.duration); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return s, nil
}

// SetCPU changes the cores, as an in-place resize of the pod's CPU limit does.
func (s *Server) SetCPU(cores float64) error {
	if cores <= 0 || math.IsNaN(cores) || math.IsInf(cores, 0) {
		return fmt.Errorf("CPU %g must be a positive number of cores", cores)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.CPU = cores
	return nil
}

// CPUSeconds is the CPU time the requests served so far have used: Work for each, counted when
// it enters service. Its rate is the pod's CPU usage, which the load harness reports as the
// pod's usage for resource metrics (CPU-utilisation HPAs, VPA recommendations).
func (s *Server) CPUSeconds() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cpuSeconds
}

// ErrOverloaded is returned when the line is full.
var ErrOverloaded = errors.New("overloaded: the queue is full")

// Serve handles one request: wait for a worker, work, release it. It returns how long the
// request took, or ErrOverloaded.
func (s *Server) Serve() (time.Duration, error) {
	start := s.clock.Now()
	s.mu.Lock()
	if s.inService >= s.cfg.Concurrency {
		if s.waiting >= s.cfg.QueueLimit {
			s.mu.Unlock()
			return s.clock.Since(start), ErrOverloaded
		}
		s.waiting++
		for s.inService >= s.cfg.Concurrency {
			s.wake.Wait()
		}
		s.waiting--
	}
	s.inService++
	d := ServiceTime(s.cfg.Work, s.cfg.CPU, s.inService)
	s.cpuSeconds += s.cfg.Work.Seconds()
	burn, work := s.cfg.Burn, s.cfg.Work
	s.mu.Unlock()

	if burn {
		BurnCPU(s.clock, work)
	} else {
		s.clock.Sleep(d)
	}

	s.mu.Lock()
	s.inService--
	s.wake.Signal()
	s.mu.Unlock()
	return s.clock.Since(start), nil
}

// Handler serves the API on every path but /metrics (Prometheus) and /healthz.
func (s *Server) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		took, err := s.Serve()
		code := http.StatusOK
		if err != nil {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		s.duration.WithLabelValues(r.Method, strconv.Itoa(code)).Observe(took.Seconds())
	})
	return mux
}
