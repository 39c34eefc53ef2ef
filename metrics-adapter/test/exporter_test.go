package test

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// exporter serves canned, time-varying Prometheus text on loopback, as an ingress controller
// (ingress-nginx metrics at /ingress) and an application (OpenTelemetry HTTP server metrics at
// /app) would. Counters grow at a rate the test sets, so the adapter's rate() sees that rate.
type exporter struct {
	// failing makes /ingress answer 503, as an overloaded controller does while it runs.
	failing atomic.Bool
	mu      sync.Mutex
	ingress map[string]*flow // by "namespace/service"
	app     *flow
	srv     *http.Server
	ln      net.Listener
}

// flow is a counter growing at rate per second; latency observations split evenly between
// the 0.05–0.1 s and 0.1–0.25 s buckets, so p50 = 0.1 s and p99 ≈ 0.247 s.
type flow struct {
	rate  float64
	count float64
	last  time.Time
}

func (f *flow) advance(now time.Time) float64 {
	if !f.last.IsZero() {
		f.count += f.rate * now.Sub(f.last).Seconds()
	}
	f.last = now
	return f.count
}

func startExporter() (*exporter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	e := &exporter{ingress: map[string]*flow{}, app: &flow{}, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("/ingress", e.serveIngress)
	mux.HandleFunc("/app", e.serveApp)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

func (e *exporter) port() int { return e.ln.Addr().(*net.TCPAddr).Port }

// stop makes the exporter go away: connections are refused from now on.
func (e *exporter) stop() { _ = e.srv.Close() }

func (e *exporter) setIngressRate(namespace, service string, rate float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := namespace + "/" + service
	f := e.ingress[key]
	if f == nil {
		f = &flow{}
		e.ingress[key] = f
	}
	f.advance(time.Now())
	f.rate = rate
}

func (e *exporter) setAppRate(rate float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.app.advance(time.Now())
	e.app.rate = rate
}

func (e *exporter) serveIngress(w http.ResponseWriter, _ *http.Request) {
	if e.failing.Load() {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	keys := make([]string, 0, len(e.ingress))
	for k := range e.ingress {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var req, hist strings.Builder
	for _, k := range keys {
		ns, svc, _ := strings.Cut(k, "/")
		n := e.ingress[k].advance(now)
		l := fmt.Sprintf(`namespace=%q,ingress="web",service=%q`, ns, svc)
		fmt.Fprintf(&req, "nginx_ingress_controller_requests{%s,status=\"200\",method=\"GET\"} %g\n", l, n)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=\"0.05\"} 0\n", l)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=\"0.1\"} %g\n", l, n/2)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=\"0.25\"} %g\n", l, n)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=\"+Inf\"} %g\n", l, n)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_sum{%s} %g\n", l, n*0.12)
		fmt.Fprintf(&hist, "nginx_ingress_controller_request_duration_seconds_count{%s} %g\n", l, n)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE nginx_ingress_controller_requests counter\n%s", req.String())
	fmt.Fprintf(w, "# TYPE nginx_ingress_controller_request_duration_seconds histogram\n%s", hist.String())
}

func (e *exporter) serveApp(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	n := e.app.advance(time.Now())
	e.mu.Unlock()
	l := `http_request_method="GET",http_response_status_code="200"`
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE http_server_request_duration_seconds histogram\n")
	fmt.Fprintf(w, "http_server_request_duration_seconds_bucket{%s,le=\"0.1\"} %g\n", l, n/2)
	fmt.Fprintf(w, "http_server_request_duration_seconds_bucket{%s,le=\"+Inf\"} %g\n", l, n)
	fmt.Fprintf(w, "http_server_request_duration_seconds_sum{%s} %g\n", l, n*0.1)
	fmt.Fprintf(w, "http_server_request_duration_seconds_count{%s} %g\n", l, n)
}
