package loadgen

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestScheduleSendTimes(t *testing.T) {
	tests := map[string]struct {
		s    Schedule
		want float64 // requests in total
	}{
		"constant":      {Schedule{{Name: "a", Duration: 2 * time.Second, From: 50, To: 50}}, 100},
		"ramp":          {Schedule{{Name: "a", Duration: 2 * time.Second, From: 0, To: 100}}, 100},
		"ramp down":     {Schedule{{Name: "a", Duration: 4 * time.Second, From: 100, To: 0}}, 200},
		"idle phase":    {Schedule{{Name: "a", Duration: time.Second, From: 0, To: 0}, {Name: "b", Duration: time.Second, From: 10, To: 10}}, 10},
		"the sale step": {Step(10, 10, 2*time.Second, 2*time.Second, time.Second, time.Second), 20 + 30 + 100 + 10},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.s.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.s.Expected(); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Expected() = %g, want %g", got, tc.want)
			}
			var prev time.Duration
			n := 0
			for i := 0; ; i++ {
				at, ok := tc.s.SendTime(float64(i))
				if !ok {
					break
				}
				if at < prev || at > tc.s.Duration() {
					t.Fatalf("request %d at %s after %s (schedule %s)", i, at, prev, tc.s.Duration())
				}
				prev = at
				n++
			}
			if float64(n) != math.Ceil(tc.want-1e-9) {
				t.Fatalf("%d send times, want %g", n, tc.want)
			}
		})
	}
	// The rate is followed within each second: a constant 50/s sends 50 in each.
	s := Schedule{{Name: "a", Duration: 3 * time.Second, From: 50, To: 50}}
	perSecond := map[int]int{}
	for i := 0; ; i++ {
		at, ok := s.SendTime(float64(i))
		if !ok {
			break
		}
		perSecond[int(at/time.Second)]++
	}
	if perSecond[0] != 50 || perSecond[1] != 50 || perSecond[2] != 50 {
		t.Fatalf("per second: %v", perSecond)
	}
}

func TestScheduleValidate(t *testing.T) {
	for name, s := range map[string]Schedule{
		"empty":          nil,
		"zero duration":  {{Name: "a", From: 1, To: 1}},
		"negative rate":  {{Name: "a", Duration: time.Second, From: -1, To: 1}},
		"infinite rate":  {{Name: "a", Duration: time.Second, From: 1, To: math.Inf(1)}},
		"not a number":   {{Name: "a", Duration: time.Second, From: math.NaN(), To: 1}},
		"longer than 6h": {{Name: "a", Duration: 7 * time.Hour, From: 1, To: 1}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.99: 990 * time.Millisecond} {
		got := h.quantile(q)
		if got < want || float64(got) > float64(want)*histRatio*1.001 {
			t.Errorf("quantile(%g) = %s, want %s within %g", q, got, want, histRatio)
		}
	}
	h.add(10 * time.Minute) // over the top bucket: counted, never out of range.
	h.add(time.Nanosecond)
	if h.n != 1002 || len(h.counts) != histBuckets {
		t.Fatalf("histogram grew: %d counts, %d buckets", h.n, len(h.counts))
	}
}

func TestCheckTarget(t *testing.T) {
	pods := []netip.Prefix{netip.MustParsePrefix("10.250.0.0/24")}
	for _, tc := range []struct {
		url     string
		allowed []netip.Prefix
		ok      bool
	}{
		{"http://127.0.0.1:8080/", nil, true},
		{"http://127.3.4.5:80/x", nil, true},
		{"http://[::1]:80/", nil, true},
		{"http://10.250.0.7:8080/", nil, false},
		{"http://10.250.0.7:8080/", pods, true},
		{"http://127.0.0.1:8080/", pods, false},
		{"http://localhost:8080/", nil, false},
		{"http://example.com/", nil, false},
		{"://bad", nil, false},
	} {
		if err := CheckTarget(tc.url, tc.allowed); (err == nil) != tc.ok {
			t.Errorf("CheckTarget(%q, %v) = %v, want ok=%v", tc.url, tc.allowed, err, tc.ok)
		}
	}
}

// The generator sends the schedule's count whatever the server does, with the Host header an
// ingress routes by, and sorts outcomes.
func TestGeneratorOpenLoop(t *testing.T) {
	const host = "checkout.shop.svc.cluster.local"
	var hits, otherHosts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.Host != host {
			otherHosts.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
		if n%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	g := &Generator{
		Schedule: Schedule{{Name: "steady", Duration: 2 * time.Second, From: 100, To: 100}},
		Target:   func(int64) string { return srv.URL + "/" },
		Host:     host,
	}
	res, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := otherHosts.Load(); n != 0 {
		t.Fatalf("%d requests came without Host %s", n, host)
	}
	if res.Sent != 200 || res.OK+res.Failed+res.Errors+res.Dropped != res.Sent || res.Failed != 20 || res.Errors != 0 {
		t.Fatalf("sent %d: ok %d, failed %d, errors %d, dropped %d; want 200 sent, 20 failed", res.Sent, res.OK, res.Failed, res.Errors, res.Dropped)
	}
	if res.P50 < 20*time.Millisecond || res.Windows[0].Sent != 100 || res.Windows[0].Phase != "steady" {
		t.Fatalf("p50 %s, first window %+v", res.P50, res.Windows[0])
	}
	checkSpans(t, g, res)
}

// checkSpans checks Between and Live against a finished run's windows.
func checkSpans(t *testing.T, g *Generator, res *Result) {
	t.Helper()
	// Any span sums its seconds, with quantiles over their requests.
	if all := res.Between(0, 3); all.Sent != res.Sent || all.OK != res.OK || all.Failed != res.Failed || all.P99 != res.P99 || all.P50 != res.P50 {
		t.Fatalf("the whole run as one span: %+v; run: %+v", all, res)
	}
	if first := res.Between(0, 1); first.Sent != 100 || first.P99 != res.Windows[0].P99 {
		t.Fatalf("the first second as a span: %+v; window: %+v", first, res.Windows[0])
	}
	if none := res.Between(5, 9); none.Sent != 0 || none.P99 != 0 {
		t.Fatalf("a span after the run: %+v", none)
	}
	// The live view shows the same second once its answers are in.
	if live, ok := g.Live(1); !ok || live.Sent != res.Windows[1].Sent || live.P99 != res.Windows[1].P99 {
		t.Fatalf("live second 1: %+v, %v; result's: %+v", live, ok, res.Windows[1])
	}
	if _, ok := g.Live(99); ok {
		t.Fatal("a second after the schedule has a live window")
	}
}

// A server that stops answering does not slow the sending: requests beyond MaxInFlight are
// dropped, and requests to a closed port are errors.
func TestGeneratorDropsAndErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	g := &Generator{
		Schedule:    Schedule{{Name: "flood", Duration: time.Second, From: 200, To: 200}},
		Target:      func(int64) string { return srv.URL + "/" },
		MaxInFlight: 10,
		Timeout:     3 * time.Second,
	}
	go func() { time.Sleep(1500 * time.Millisecond); close(release) }()
	res, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 200 || res.Dropped != 190 || res.OK != 10 {
		t.Fatalf("sent %d, ok %d, dropped %d; want 200 sent, 10 answered, 190 dropped", res.Sent, res.OK, res.Dropped)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.URL
	closed.Close()
	g = &Generator{Schedule: Schedule{{Name: "down", Duration: time.Second, From: 20, To: 20}}, Target: func(int64) string { return addr }}
	if res, err = g.Run(context.Background()); err != nil || res.Errors != 20 {
		t.Fatalf("to a closed port: %+v, %v; want 20 errors", res, err)
	}
}

func TestGeneratorRefusesOtherAddresses(t *testing.T) {
	g := &Generator{Schedule: Schedule{{Name: "a", Duration: time.Second, From: 1, To: 1}}, Target: func(int64) string { return "http://192.0.2.1/" }}
	if _, err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a non-loopback target: %v", err)
	}
}
