package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// traffic stands in for the ingress controller of the sale: it serves ingress-nginx's request
// counter and latency histogram for one backend Service on loopback, growing at a rate the
// demo's timeline sets, so the metrics adapter scrapes it as it would scrape ingress-nginx.
type traffic struct {
	namespace, service string

	mu    sync.Mutex
	rate  float64
	count float64
	last  time.Time
	ln    net.Listener
}

func startTraffic(namespace, service string, rate float64) (*traffic, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	t := &traffic{namespace: namespace, service: service, rate: rate, last: time.Now(), ln: ln}
	go func() { _ = (&http.Server{Handler: t, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()
	return t, nil
}

func (t *traffic) port() int { return t.ln.Addr().(*net.TCPAddr).Port }

// set changes the request rate from now on.
func (t *traffic) set(rate float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(time.Now())
	t.rate = rate
}

func (t *traffic) advance(now time.Time) {
	t.count += t.rate * now.Sub(t.last).Seconds()
	t.last = now
}

// ServeHTTP writes the counters: 0.5 % of requests are 5xx; half of the requests take
// 25–50 ms, 49 % 50–100 ms and 1 % 100–250 ms.
func (t *traffic) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	t.advance(time.Now())
	n := t.count
	t.mu.Unlock()
	labels := fmt.Sprintf(`namespace=%q,ingress="shop",service=%q`, t.namespace, t.service)
	var b strings.Builder
	b.WriteString("# TYPE nginx_ingress_controller_requests counter\n")
	fmt.Fprintf(&b, "nginx_ingress_controller_requests{%s,method=\"GET\",status=\"200\"} %.3f\n", labels, n*0.995)
	fmt.Fprintf(&b, "nginx_ingress_controller_requests{%s,method=\"GET\",status=\"503\"} %.3f\n", labels, n*0.005)
	b.WriteString("# TYPE nginx_ingress_controller_request_duration_seconds histogram\n")
	for _, bucket := range []struct {
		le    string
		share float64
	}{{"0.025", 0}, {"0.05", 0.5}, {"0.1", 0.99}, {"0.25", 1}, {"+Inf", 1}} {
		fmt.Fprintf(&b, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=%q} %.3f\n", labels, bucket.le, n*bucket.share)
	}
	fmt.Fprintf(&b, "nginx_ingress_controller_request_duration_seconds_sum{%s} %.3f\n", labels, n*0.06)
	fmt.Fprintf(&b, "nginx_ingress_controller_request_duration_seconds_count{%s} %.3f\n", labels, n)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
