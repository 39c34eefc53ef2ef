package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// backend answers with whatever the test sets and counts the fetches.
type backend struct {
	mu      sync.Mutex
	clk     *clocktesting.FakeClock
	v       float64
	err     error
	fetches int
}

func (b *backend) fetch(_ context.Context, spec string) (series.Value, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetches++
	if b.err != nil {
		return series.Value{}, fmt.Errorf("%s: %w", spec, b.err)
	}
	return series.Value{V: b.v, Timestamp: b.clk.Now().UnixMilli(), Series: 1}, nil
}

func TestCacheLifecycle(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	b := &backend{clk: clk, v: 42}
	c := New(Options{Name: "Fake", Refresh: 15 * time.Second, Forget: time.Minute, MaxBackoff: time.Minute}, b.fetch, clk)
	ctx := context.Background()
	get := func() (series.Value, error) { return c.Get("k", "q", clk.Now().UnixMilli(), 45*time.Second) }

	if _, err := get(); !errors.Is(err, series.ErrNoData) {
		t.Fatalf("first request: %v, want ErrNoData (never a wait, never a zero)", err)
	}
	c.Refresh(ctx)
	if v, err := get(); err != nil || v.V != 42 {
		t.Fatalf("after a refresh: %v %v", v, err)
	}

	// Throttled: the last good value is served while it is fresh, and the query pauses.
	b.err = ErrThrottled
	clk.Step(15 * time.Second)
	c.Refresh(ctx)
	if v, err := get(); err != nil || v.V != 42 {
		t.Fatalf("throttled, value 15s old: %v %v, want the last good value", v, err)
	}
	fetches := b.fetches
	clk.Step(10 * time.Second)
	c.Refresh(ctx)
	if b.fetches != fetches {
		t.Fatalf("fetched during the pause after throttling")
	}
	// Still throttled when the value gets too old: an error that names the last failure.
	clk.Step(25 * time.Second)
	c.Refresh(ctx)
	if _, err := get(); !errors.Is(err, series.ErrStale) {
		t.Fatalf("throttled, value 50s old: %v, want ErrStale", err)
	}
	// The pause doubled (15s, then 30s): nothing is fetched until it ends.
	fetches = b.fetches
	clk.Step(20 * time.Second)
	c.Refresh(ctx)
	if b.fetches != fetches {
		t.Fatalf("fetched before the doubled pause ended")
	}
	clk.Step(15 * time.Second)
	b.err = nil
	c.Refresh(ctx)
	if v, err := get(); err != nil || v.V != 42 {
		t.Fatalf("throttling over: %v %v", v, err)
	}

	// Any other failure is reported at once, and the old value is dropped.
	b.err = errors.New("InvalidAccessKeyId.NotFound")
	clk.Step(15 * time.Second)
	c.Refresh(ctx)
	if _, err := get(); err == nil || errors.Is(err, series.ErrStale) {
		t.Fatalf("auth failure: %v, want the failure itself", err)
	}
	b.err = nil
	c.Refresh(ctx)
	if _, err := get(); err != nil {
		t.Fatalf("recovered: %v", err)
	}

	// Nobody asks for a minute: forgotten, no more fetches.
	clk.Step(61 * time.Second)
	c.Refresh(ctx)
	if c.Len() != 0 {
		t.Fatalf("%d queries kept after nobody asked for them", c.Len())
	}
}

// Any caller can ask about any name: past MaxWanted the least recently asked query is dropped
// (and counted), so the cache and the refresh work stay bounded.
func TestCacheIsBounded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	b := &backend{clk: clk, v: 1}
	evicted := 0
	c := New(Options{MaxWanted: 3, Evicted: func() { evicted++ }}, b.fetch, clk)
	ask := func(key string) { _, _ = c.Get(key, key, clk.Now().UnixMilli(), time.Minute) }
	for _, k := range []string{"a", "b", "c"} {
		ask(k)
		clk.Step(time.Second)
	}
	ask("a") // a is the most recently asked now; b is the oldest
	ask("d")
	if c.Len() != 3 || evicted != 1 {
		t.Fatalf("%d queries kept, %d evicted; want 3 and 1", c.Len(), evicted)
	}
	c.Refresh(context.Background())
	if b.fetches != 3 {
		t.Fatalf("%d fetches, want 3 (the evicted query is not refreshed)", b.fetches)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		c.mu.Lock()
		_, ok := c.wanted[k]
		c.mu.Unlock()
		if ok != want {
			t.Errorf("query %s kept: %v, want %v", k, ok, want)
		}
	}
	// A flood of new names never grows it.
	for i := range 1000 {
		ask(fmt.Sprintf("flood-%d", i))
	}
	if c.Len() != 3 || c.recency.Len() != 3 || evicted != 1001 {
		t.Fatalf("after a flood: %d queries, %d in recency, %d evicted", c.Len(), c.recency.Len(), evicted)
	}
}
