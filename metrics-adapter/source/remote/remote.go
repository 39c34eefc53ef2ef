// Package remote keeps the answers of a remote metrics backend in memory for the API to read.
// A source built on it registers each query the API asks for; a background loop re-runs every
// query asked for recently, a few at a time, and forgets the ones nobody asks for any more. The
// serving path never waits on the backend: it reads the last answer, or gets an error that says
// why there is none (first request, backend failure, answer too old).
package remote

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// ErrThrottled marks a backend answer that said "too many requests". The last good value is
// served until it is stale, and the query is retried after a growing pause.
var ErrThrottled = errors.New("throttled by the backend")

// Fetch runs one query against the backend now.
type Fetch[S any] func(ctx context.Context, spec S) (series.Value, error)

// Options tune a Cache.
type Options struct {
	// Name of the backend in error messages ("Prometheus", "CloudMonitor").
	Name string
	// Refresh is how often wanted queries are re-run (default 15s).
	Refresh time.Duration
	// Forget drops a query nobody asked for this long (default 10m).
	Forget time.Duration
	// Timeout bounds one fetch (default 10s).
	Timeout time.Duration
	// Concurrency is how many fetches run at once (default 8).
	Concurrency int
	// MaxBackoff bounds the pause after throttling (default 5m).
	MaxBackoff time.Duration
	// Observe, when set, is told the outcome of every fetch.
	Observe func(took time.Duration, err error)
	// MaxWanted is the most queries kept (default DefaultMaxWanted): any caller of the API
	// can ask about any object name, so past it the least recently asked query is dropped.
	MaxWanted int
	// Evicted, when set, is called for every query dropped to keep MaxWanted.
	Evicted func()
}

// DefaultMaxWanted is the default bound on wanted queries per backend: far above what the
// HPAs of a large cluster ask for (one to three per HPA).
const DefaultMaxWanted = 10_000

// Cache holds the wanted queries of one backend, keyed by a string that identifies the query
// (the rendered PromQL, or the API parameters).
type Cache[S any] struct {
	opts  Options
	fetch Fetch[S]
	clock clock.WithTicker
	wake  chan struct{}

	mu     sync.Mutex
	wanted map[string]*entry[S]
	// recency orders the wanted queries by when they were last asked for, newest first.
	recency list.List
}

type entry[S any] struct {
	key  string
	elem *list.Element
	spec S
	// asked is when the API last asked for it.
	asked time.Time
	// fetched is true once a fetch finished, good or bad.
	fetched bool
	// good is the last successful answer, kept through throttling.
	good    series.Value
	hasGood bool
	err     error
	// retryAt, after throttling, is when the next fetch may run; backoff is the pause used.
	retryAt time.Time
	backoff time.Duration
}

// New returns a cache that fetches with fetch; Run keeps it fresh.
func New[S any](opts Options, fetch Fetch[S], clk clock.WithTicker) *Cache[S] {
	opts.Refresh = orDefault(opts.Refresh, 15*time.Second)
	opts.Forget = orDefault(opts.Forget, 10*time.Minute)
	opts.Timeout = orDefault(opts.Timeout, 10*time.Second)
	opts.MaxBackoff = orDefault(opts.MaxBackoff, 5*time.Minute)
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.MaxWanted <= 0 {
		opts.MaxWanted = DefaultMaxWanted
	}
	if opts.Name == "" {
		opts.Name = "the backend"
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Cache[S]{opts: opts, fetch: fetch, clock: clk, wake: make(chan struct{}, 1), wanted: map[string]*entry[S]{}}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Get returns the last answer for key, registering spec to be fetched when it is new. now is
// the evaluation time in Unix milliseconds; an answer whose timestamp is more than staleAfter
// older is refused (0 turns the check off).
func (c *Cache[S]) Get(key string, spec S, now int64, staleAfter time.Duration) (series.Value, error) {
	c.mu.Lock()
	e := c.wanted[key]
	if e == nil {
		for len(c.wanted) >= c.opts.MaxWanted {
			c.evictOldest()
		}
		e = &entry[S]{key: key, spec: spec}
		e.elem = c.recency.PushFront(e)
		c.wanted[key] = e
		select {
		case c.wake <- struct{}{}:
		default:
		}
	} else {
		c.recency.MoveToFront(e.elem)
	}
	e.asked = c.clock.Now()
	fetched, good, hasGood, err := e.fetched, e.good, e.hasGood, e.err
	c.mu.Unlock()
	switch {
	case !fetched:
		return series.Value{}, fmt.Errorf("%w: first request, asking %s", series.ErrNoData, c.opts.Name)
	case err != nil && (!hasGood || !errors.Is(err, ErrThrottled)):
		return series.Value{}, err
	case staleAfter > 0 && now-good.Timestamp > staleAfter.Milliseconds():
		why := ""
		if err != nil {
			why = "; last error: " + err.Error()
		}
		return series.Value{}, fmt.Errorf("%w: last answer from %s is for %s%s", series.ErrStale, c.opts.Name,
			time.UnixMilli(good.Timestamp).UTC().Format(time.RFC3339), why)
	}
	return good, nil
}

// evictOldest drops the least recently asked query. Called with mu held.
func (c *Cache[S]) evictOldest() {
	last := c.recency.Back()
	if last == nil {
		return
	}
	e := last.Value.(*entry[S]) //nolint:forcetypeassert // only entries are pushed
	c.recency.Remove(last)
	delete(c.wanted, e.key)
	if c.opts.Evicted != nil {
		c.opts.Evicted()
	}
}

// Len is the number of wanted queries.
func (c *Cache[S]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wanted)
}

// Run re-runs the wanted queries every refresh interval (and at once when a new one comes)
// until ctx ends.
func (c *Cache[S]) Run(ctx context.Context) {
	ticker := c.clock.NewTicker(c.opts.Refresh)
	defer ticker.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-c.wake:
		}
	}
}

// Refresh runs every wanted query once, except those pausing after throttling, and forgets
// the ones nobody asked for within the forget period.
func (c *Cache[S]) Refresh(ctx context.Context) {
	now := c.clock.Now()
	c.mu.Lock()
	var todo []*entry[S]
	for k, e := range c.wanted {
		switch {
		case now.Sub(e.asked) > c.opts.Forget:
			c.recency.Remove(e.elem)
			delete(c.wanted, k)
		case now.Before(e.retryAt):
		default:
			todo = append(todo, e)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(todo, func(a, b *entry[S]) int { return cmp.Compare(a.key, b.key) })
	sem := make(chan struct{}, c.opts.Concurrency)
	var wg sync.WaitGroup
	for _, e := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.refreshOne(ctx, e)
		})
	}
	wg.Wait()
}

func (c *Cache[S]) refreshOne(ctx context.Context, e *entry[S]) {
	fctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	start := c.clock.Now()
	v, err := c.fetch(fctx, e.spec)
	if c.opts.Observe != nil {
		c.opts.Observe(c.clock.Since(start), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.fetched, e.err = true, err
	switch {
	case err == nil:
		e.good, e.hasGood, e.backoff, e.retryAt = v, true, 0, time.Time{}
	case errors.Is(err, ErrThrottled):
		e.backoff = min(max(2*e.backoff, c.opts.Refresh), c.opts.MaxBackoff)
		e.retryAt = c.clock.Now().Add(e.backoff)
	default:
		// Any other failure is the answer until the next refresh: an object that
		// vanished or credentials that stopped working must not keep an old value alive.
		e.hasGood, e.backoff, e.retryAt = false, 0, time.Time{}
	}
}
