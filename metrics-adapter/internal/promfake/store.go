package promfake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Store holds float samples in memory and serves them to the PromQL engine as a
// storage.Queryable. It keeps what the engine needs from a TSDB (series selected by label
// matchers, samples in time order) without Prometheus' TSDB package, whose configuration
// imports pull every cloud SDK into the build.
type Store struct {
	mu     sync.RWMutex
	series map[string]*memSeries
}

type memSeries struct {
	lset    labels.Labels
	samples []chunks.Sample
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{series: map[string]*memSeries{}} }

// Append adds a sample to the series lset. Like a TSDB head it refuses a sample older than
// the series' newest one, and a different value at the same timestamp.
func (s *Store) Append(lset labels.Labels, t int64, v float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := lset.String()
	ser := s.series[key]
	if ser == nil {
		ser = &memSeries{lset: lset.Copy()}
		s.series[key] = ser
	}
	if n := len(ser.samples); n > 0 {
		last := ser.samples[n-1]
		switch {
		case t < last.T():
			return fmt.Errorf("out of order sample for %s at %d (newest %d)", key, t, last.T())
		case t == last.T() && v != last.F():
			return fmt.Errorf("duplicate sample for %s at %d", key, t)
		case t == last.T():
			return nil
		}
	}
	ser.samples = append(ser.samples, fsample{t: t, f: v})
	return nil
}

// Querier implements storage.Queryable over the samples in [mint, maxt].
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64
}

func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	var out []storage.Series
	for _, ser := range q.s.series {
		if !matchesAll(ser.lset, matchers) {
			continue
		}
		lo, _ := slices.BinarySearchFunc(ser.samples, mint, func(s chunks.Sample, t int64) int { return cmp.Compare(s.T(), t) })
		hi, found := slices.BinarySearchFunc(ser.samples, maxt, func(s chunks.Sample, t int64) int { return cmp.Compare(s.T(), t) })
		if found {
			hi++
		}
		if lo >= hi {
			continue
		}
		// A copy: the engine reads the samples after the lock is released.
		out = append(out, storage.NewListSeries(ser.lset, slices.Clone(ser.samples[lo:hi])))
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{series: out, i: -1}
}

func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	seen := map[string]bool{}
	for _, ser := range q.s.series {
		if v := ser.lset.Get(name); v != "" && matchesAll(ser.lset, matchers) {
			seen[v] = true
		}
	}
	return sortedKeys(seen), nil, nil
}

func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	seen := map[string]bool{}
	for _, ser := range q.s.series {
		if matchesAll(ser.lset, matchers) {
			ser.lset.Range(func(l labels.Label) { seen[l.Name] = true })
		}
	}
	return sortedKeys(seen), nil, nil
}

func (q *querier) Close() error { return nil }

func matchesAll(lset labels.Labels, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// fsample is one float sample.
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }
