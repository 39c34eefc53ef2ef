package demoapi

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

func TestServiceTime(t *testing.T) {
	tests := map[string]struct {
		cpu       float64
		inService int
		want      time.Duration
	}{
		"alone on one core":            {1, 1, 10 * time.Millisecond},
		"two sharing one core":         {1, 2, 20 * time.Millisecond},
		"two on two cores":             {2, 2, 10 * time.Millisecond},
		"four sharing half a core":     {0.5, 4, 80 * time.Millisecond},
		"fewer requests than cores":    {4, 1, 10 * time.Millisecond},
		"a resize to more cores helps": {2, 4, 20 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ServiceTime(10*time.Millisecond, tc.cpu, tc.inService); got != tc.want {
				t.Fatalf("ServiceTime = %s, want %s", got, tc.want)
			}
		})
	}
	if got := Capacity(Config{Work: 10 * time.Millisecond, CPU: 1, Concurrency: 8}); got != 100 {
		t.Fatalf("capacity of one core at 10 ms: %g, want 100/s", got)
	}
	if got := Capacity(Config{Work: 10 * time.Millisecond, CPU: 4, Concurrency: 2}); got != 200 {
		t.Fatalf("capacity of two workers at 10 ms: %g, want 200/s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"no work":        {CPU: 1, Concurrency: 1},
		"no CPU":         {Work: time.Millisecond, Concurrency: 1},
		"no workers":     {Work: time.Millisecond, CPU: 1},
		"negative queue": {Work: time.Millisecond, CPU: 1, Concurrency: 1, QueueLimit: -1},
	} {
		if _, err := New(c, clock.RealClock{}, prometheus.NewRegistry()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Requests beyond the workers wait in line; beyond the line they are refused at once.
func TestQueueAndOverload(t *testing.T) {
	s, err := New(Config{Work: 300 * time.Millisecond, CPU: 2, Concurrency: 2, QueueLimit: 2}, clock.RealClock{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var served, refused int
	var slowest time.Duration
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := s.Serve()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrOverloaded):
				refused++
			case err == nil:
				served++
				slowest = max(slowest, took)
			}
		}()
	}
	wg.Wait()
	if served != 4 || refused != 2 {
		t.Fatalf("served %d, refused %d; want 4 and 2", served, refused)
	}
	// Only served requests use CPU: 4 × 300 ms.
	if got := s.CPUSeconds(); got < 1.2-1e-9 || got > 1.2+1e-9 {
		t.Fatalf("CPU seconds %g, want 1.2", got)
	}
	if slowest < 600*time.Millisecond {
		t.Fatalf("the queued requests took %s, want at least two service times", slowest)
	}
	if err := s.SetCPU(0); err == nil {
		t.Fatal("zero cores accepted")
	}
}

// The API exports its latency in the OpenTelemetry convention's names.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Work: time.Millisecond, CPU: 1, Concurrency: 1, QueueLimit: 0}, clock.RealClock{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler(reg))
	defer srv.Close()
	for range 3 {
		resp, err := srv.Client().Get(srv.URL + "/checkout")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200"} 3`
	if !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %q:\n%s", want, body)
	}
}
