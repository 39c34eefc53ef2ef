package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Generator sends a schedule's requests, open loop.
type Generator struct {
	// Schedule sets the rate.
	Schedule Schedule
	// Target returns the URL of the n-th request (from 0), e.g. to spread requests over hosts.
	Target func(n int64) string
	// Host, when set, is every request's Host header: the name an ingress routes by, while
	// Target addresses one of its pods.
	Host string
	// Allowed are the networks targets may be in; loopback when empty. A target outside them,
	// or named by a host name rather than an address, is refused before anything is sent.
	Allowed []netip.Prefix
	// Client sends the requests; one with Timeout and keep-alives when nil.
	Client *http.Client
	// Timeout bounds each request; 10 s when zero.
	Timeout time.Duration
	// MaxInFlight bounds the requests waiting for an answer; a request due while it is reached
	// is counted as dropped, never delayed (delaying would close the loop). 10,000 when zero.
	MaxInFlight int
	// Clock times sends and latencies; the real clock when nil.
	Clock clock.Clock

	live atomic.Pointer[recorder]
}

// Window is one second of a run, by send time.
type Window struct {
	// Second is the window's start, from the run's start.
	Second int `json:"second"`
	// Phase is the schedule's phase then; Rate its target rate at the window's start.
	Phase string  `json:"phase"`
	Rate  float64 `json:"rate"`
	// Sent left in this second; OK got a 2xx or 3xx; Failed got another status; Errors got no
	// answer (refused, reset, timed out); Dropped were due while MaxInFlight requests waited.
	Sent, OK, Failed, Errors, Dropped int
	// P50 and P99 are the answered requests' latencies.
	P50, P99 time.Duration
	hist     histogram
}

// Result is a finished run. Its windows keep their latency histograms (about 1.3 KB a second of
// schedule), so that Between can give quantiles over any span.
type Result struct {
	Windows []Window
	// Totals over the run; P50 and P99 over every answered request.
	Sent, OK, Failed, Errors, Dropped int
	P50, P99                          time.Duration
}

// CheckTarget says whether a URL may be sent to: an IP address in allowed (loopback when empty).
func CheckTarget(raw string, allowed []netip.Prefix) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q: %w", raw, err)
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return fmt.Errorf("target %q: the host must be an IP address (no name lookups): %w", raw, err)
	}
	if len(allowed) == 0 {
		if addr.IsLoopback() {
			return nil
		}
		return fmt.Errorf("target %q is not a loopback address", raw)
	}
	for _, p := range allowed {
		if p.Contains(addr) {
			return nil
		}
	}
	return fmt.Errorf("target %q is outside the allowed networks %v", raw, allowed)
}

// Run sends the schedule and returns when the last request was answered or timed out, or ctx
// ended (the result then covers what was sent). It refuses bad schedules and targets up front.
func (g *Generator) Run(ctx context.Context) (*Result, error) {
	if err := g.Schedule.Validate(); err != nil {
		return nil, err
	}
	if g.Target == nil {
		return nil, errors.New("no target")
	}
	if err := CheckTarget(g.Target(0), g.Allowed); err != nil {
		return nil, err
	}
	clk := g.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	timeout := g.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	maxInFlight := g.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = 10000
	}
	client := g.Client
	if client == nil {
		client = &http.Client{Timeout: timeout, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 1024,
		}}
	}
	rec := newRecorder(g.Schedule)
	g.live.Store(rec)
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := clk.Now()
	for n := int64(0); ; n++ {
		at, ok := g.Schedule.SendTime(float64(n))
		if !ok {
			break
		}
		if wait := at - clk.Since(start); wait > 0 {
			t := clk.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return rec.result(), ctx.Err()
			case <-t.C():
			}
		}
		second := int(at / time.Second)
		target := g.Target(n)
		if err := CheckTarget(target, g.Allowed); err != nil {
			wg.Wait()
			return rec.result(), err
		}
		select {
		case slots <- struct{}{}:
		default:
			rec.drop(second)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			sent := clk.Now()
			status, err := send(ctx, client, target, g.Host)
			rec.answer(second, status, err, clk.Since(sent))
		}()
	}
	wg.Wait()
	return rec.result(), nil
}

func send(ctx context.Context, client *http.Client, target, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// recorder keeps one window per second of the schedule.
type recorder struct {
	mu      sync.Mutex
	windows []Window
}

func newRecorder(s Schedule) *recorder {
	n := int(s.Duration()/time.Second) + 1
	r := &recorder{windows: make([]Window, n)}
	for i := range r.windows {
		p, rate := s.At(time.Duration(i) * time.Second)
		r.windows[i] = Window{Second: i, Phase: p.Name, Rate: rate, hist: newHistogram()}
	}
	return r
}

func (r *recorder) window(second int) *Window {
	return &r.windows[min(max(second, 0), len(r.windows)-1)]
}

func (r *recorder) drop(second int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.window(second)
	w.Sent++
	w.Dropped++
}

func (r *recorder) answer(second, status int, err error, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.window(second)
	w.Sent++
	switch {
	case err != nil:
		w.Errors++
	case status >= 200 && status < 400:
		w.OK++
		w.hist.add(latency)
	default:
		w.Failed++
		w.hist.add(latency)
	}
}

func (r *recorder) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Windows: make([]Window, len(r.windows))}
	all := newHistogram()
	for i, w := range r.windows {
		w.P50, w.P99 = w.hist.quantile(0.5), w.hist.quantile(0.99)
		all.merge(w.hist)
		res.Sent += w.Sent
		res.OK += w.OK
		res.Failed += w.Failed
		res.Errors += w.Errors
		res.Dropped += w.Dropped
		res.Windows[i] = w
		res.Windows[i].hist = w.hist.clone()
	}
	res.P50, res.P99 = all.quantile(0.5), all.quantile(0.99)
	return res
}

// Live returns the window of the running (or last) run's second as recorded so far: requests
// sent in it may still be waiting for their answers. False when no run started or second is
// outside the schedule.
func (g *Generator) Live(second int) (Window, bool) {
	rec := g.live.Load()
	if rec == nil {
		return Window{}, false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if second < 0 || second >= len(rec.windows) {
		return Window{}, false
	}
	w := rec.windows[second]
	w.P50, w.P99 = w.hist.quantile(0.5), w.hist.quantile(0.99)
	w.hist = histogram{}
	return w, true
}

// Between sums the windows of seconds [from, to) into one, with the quantiles of all their
// answered requests; seconds outside the run are left out.
func (r *Result) Between(from, to int) Window {
	sum := Window{Second: from, hist: newHistogram()}
	for _, w := range r.Windows {
		if w.Second < from || w.Second >= to {
			continue
		}
		sum.Sent += w.Sent
		sum.OK += w.OK
		sum.Failed += w.Failed
		sum.Errors += w.Errors
		sum.Dropped += w.Dropped
		if w.hist.counts != nil {
			sum.hist.merge(w.hist)
		}
	}
	sum.P50, sum.P99 = sum.hist.quantile(0.5), sum.hist.quantile(0.99)
	sum.hist = histogram{}
	return sum
}
