package series

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lockstep-dev/lockstep/metrics-adapter/calc"
)

// Measure is what a query computes.
type Measure uint8

// The measures a query can compute.
const (
	// RequestRate is requests per second.
	RequestRate Measure = iota + 1
	// ErrorRatio is the share of requests answered with a server error, 0 to 1.
	ErrorRatio
	// LatencyAverage is the mean request latency in seconds.
	LatencyAverage
	// LatencyQuantile is a latency quantile in seconds (Query.Quantile).
	LatencyQuantile
	// InflowRate is bytes per second received from clients.
	InflowRate
)

// Query asks for one measure over the series of one object, optionally narrowed by Match.
type Query struct {
	Measure Measure
	// Quantile is the quantile (0..1) for LatencyQuantile.
	Quantile float64
	Object   Object
	// Match, when set, keeps only the series whose key it accepts (label selectors).
	Match func(Key) bool
	// Filter holds the exact-value part of the selector Match applies (service, port,
	// ingress, route), for sources that translate it into their backend's query language.
	// Selectors with other operators are only expressed by Match.
	Filter map[string]string
	// Inexact is true when Match checks more than Filter says (set-based selectors); a
	// source that can only apply Filter must refuse such a query rather than widen it.
	Inexact bool
	// Port is the Service port the selector names (a port= label, or the port of an
	// sls.ingress.route), for sources whose targets are per port, like load balancer
	// listeners. Match already applies it to scraped series.
	Port string
	// Window is the rate window, like the range of rate(x[window]).
	Window time.Duration
	// StaleAfter is how old the newest sample may be before the answer is refused.
	StaleAfter time.Duration
}

// Value is a query's answer.
type Value struct {
	V float64
	// Timestamp is the newest sample that contributed, Unix milliseconds.
	Timestamp int64
	// Series is how many raw series contributed.
	Series int
}

// Errors a query returns instead of a made-up number.
var (
	// ErrNoSeries means nothing is known for the object: the metric does not exist for it.
	ErrNoSeries = errors.New("no series for this object")
	// ErrNoData means series exist but not enough recent samples to compute the measure
	// (fewer than two samples in the window, every series stale, or no requests observed
	// for a ratio or latency).
	ErrNoData = errors.New("not enough recent samples")
	// ErrStale means the newest sample is older than the staleness limit.
	ErrStale = errors.New("newest sample is too old")
	// ErrIncomplete means a target that feeds the value could not be read (its scrape
	// failed, or a backend answered for part of the data only): the value would be too small.
	ErrIncomplete = errors.New("part of the data is missing")
)

// Evaluate computes q at now (Unix milliseconds) from memory.
func (s *Store) Evaluate(q Query, now int64) (Value, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := s.index[q.Object]
	if len(set) == 0 {
		return Value{}, ErrNoSeries
	}
	start := now - q.Window.Milliseconds()
	agg := aggregate{buckets: map[float64]float64{}}
	var buf []calc.Sample
	matched := false
	for e := range set {
		if q.Match != nil && !q.Match(e.key) {
			continue
		}
		if !wanted(q.Measure, e.key.Family) {
			continue
		}
		matched = true
		if ts := e.target; ts != nil && ts.failed != nil && e.seen == ts.scrapes {
			// The target exposed this series at its last good scrape and cannot be read
			// now: its share is missing, however long it has been failing, until its pod
			// goes away (Drop).
			return Value{}, fmt.Errorf("%w: scrape target %s feeds this value and its latest scrape failed: %w", ErrIncomplete, ts.name, ts.failed)
		}
		if e.stale {
			continue
		}
		buf = e.ring.appendTo(buf[:0])
		r, ok := calc.Rate(buf, start, now)
		if !ok {
			continue
		}
		agg.add(e.key, r, buf[len(buf)-1].T)
	}
	if !matched {
		return Value{}, ErrNoSeries
	}
	if agg.series == 0 {
		return Value{}, ErrNoData
	}
	if q.StaleAfter > 0 && now-agg.newest > q.StaleAfter.Milliseconds() {
		return Value{}, fmt.Errorf("%w: %s", ErrStale, time.Duration(now-agg.newest)*time.Millisecond)
	}
	v, err := agg.result(q)
	if err != nil {
		return Value{}, err
	}
	return Value{V: v, Timestamp: agg.newest, Series: agg.series}, nil
}

func wanted(m Measure, f Family) bool {
	switch m {
	case RequestRate:
		return f == Requests
	case ErrorRatio:
		return f == Requests || f == ServerErrors
	case LatencyAverage:
		return f == DurationSum || f == DurationCount
	case LatencyQuantile:
		return f == DurationBucket
	case InflowRate:
		return f == RequestBytes
	}
	return false
}

// aggregate sums per-series rates the way sum by (le) (rate(...)) does.
type aggregate struct {
	total, errors, sum, count float64
	buckets                   map[float64]float64
	series                    int
	newest                    int64
}

func (a *aggregate) add(k Key, rate float64, last int64) {
	a.series++
	a.newest = max(a.newest, last)
	switch k.Family {
	case Requests, RequestBytes:
		a.total += rate
		if k.Error {
			a.errors += rate
		}
	case ServerErrors:
		a.errors += rate
	case DurationSum:
		a.sum += rate
	case DurationCount:
		a.count += rate
	case DurationBucket:
		a.buckets[k.LE] += rate
	}
}

func (a *aggregate) result(q Query) (float64, error) {
	switch q.Measure {
	case RequestRate, InflowRate:
		return a.total, nil
	case ErrorRatio:
		if a.total == 0 {
			return 0, fmt.Errorf("%w: no requests in the window", ErrNoData)
		}
		return a.errors / a.total, nil
	case LatencyAverage:
		if a.count == 0 {
			return 0, fmt.Errorf("%w: no requests in the window", ErrNoData)
		}
		return a.sum / a.count, nil
	case LatencyQuantile:
		buckets := make([]calc.Bucket, 0, len(a.buckets))
		for le, c := range a.buckets {
			buckets = append(buckets, calc.Bucket{UpperBound: le, Count: c})
		}
		v := calc.HistogramQuantile(q.Quantile, buckets)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%w: no requests in the window or no +Inf bucket", ErrNoData)
		}
		return v, nil
	}
	return 0, fmt.Errorf("unknown measure %d", q.Measure)
}
