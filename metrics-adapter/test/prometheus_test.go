package test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/metrics-adapter/internal/promfake"
)

// promFeed is a Prometheus stand-in on loopback whose counters grow every second at rates
// the tests set, as if Prometheus scraped an ingress controller.
type promFeed struct {
	srv   *promfake.Server
	url   string
	mu    sync.Mutex
	rates map[[2]string]float64
	count map[[2]string]float64
}

func startPromFeed() (*promFeed, error) {
	srv, err := promfake.New()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	go func() { _ = (&http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()
	f := &promFeed{srv: srv, url: "http://" + ln.Addr().String(), rates: map[[2]string]float64{}, count: map[[2]string]float64{}}
	go f.run()
	return f, nil
}

func (f *promFeed) setRate(namespace, service string, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rates[[2]string{namespace, service}] = rate
}

func (f *promFeed) run() {
	for now := range time.Tick(time.Second) {
		f.mu.Lock()
		for k, r := range f.rates {
			f.count[k] += r
			_ = f.srv.Append(now, f.count[k], "__name__", "nginx_ingress_controller_requests", "namespace", k[0], "service", k[1])
		}
		f.mu.Unlock()
	}
}

// An HPA on a Service the embedded scraper has no series for is served from Prometheus
// (templated query, real PromQL), scaling up and back down.
func TestPrometheusSource(t *testing.T) {
	h := setup(t)
	scaleOnServiceRequests(t, h, "catalog", func(ns string, rate float64) { h.prom.setRate(ns, "catalog", rate) })
	if h.prom.srv.Queries.Load() == 0 {
		t.Fatal("Prometheus was never queried")
	}
}
