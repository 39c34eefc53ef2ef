package series

import (
	"sync"

	"github.com/lockstep-dev/lockstep/metrics-adapter/calc"
)

// Store holds the recent samples of every raw series, indexed by the objects each belongs to.
// It is safe for concurrent use: scrapes write while API calls read.
type Store struct {
	// writeMu admits one writer (scrape, Failed, Drop, Forget) at a time; mu guards the data
	// and is held by a scrape only per batch, so that readers never wait for a whole scrape.
	writeMu  sync.Mutex
	mu       sync.RWMutex
	capacity int
	// targets holds each target's series by id; no string is built per sample to find one.
	targets map[string]*targetSeries
	index   map[Object]map[*entry]struct{}
	n       int
}

type targetSeries struct {
	byID map[string]*entry
	// scrapes counts successful scrapes; a series not seen in the latest is stale.
	scrapes uint64
	// failed is the error of the target's latest scrape, nil after a good one; name says
	// which target it is in error messages.
	failed error
	name   string
}

type entry struct {
	key    Key
	target *targetSeries
	// seen is the target's scrape count when the series was last in a scrape.
	seen uint64
	ring ring
	// stale is set when the series' target failed a scrape or the series vanished from it;
	// a stale series is left out of queries until it gets a new sample.
	stale bool
}

// NewStore returns a store keeping up to capacity samples per series: enough to cover the
// longest query window at the scrape interval, plus one.
func NewStore(capacity int) *Store {
	if capacity < 2 {
		capacity = 2
	}
	return &Store{
		capacity: capacity,
		targets:  map[string]*targetSeries{},
		index:    map[Object]map[*entry]struct{}{},
	}
}

// Point is one scraped value of a raw series. ID identifies the raw series within its target
// (its metric name and labels); Key is what the profile says it measures.
type Point struct {
	ID  string
	Key Key
	V   float64
}

// scrapeBatch is how many points a scrape records per hold of the lock: about 0.4 ms on a
// slow core, the longest an API call waits for a scrape (instead of the whole scrape, 10 ms
// for 28,000 series).
const scrapeBatch = 1024

// Scrape records one successful scrape of target at t (Unix milliseconds). Series of the
// target missing from points are marked stale, as Prometheus does when a series disappears.
// Readers may see part of a scrape recorded: each series is always consistent, and a query
// computes per series before aggregating.
func (s *Store) Scrape(target string, t int64, points []Point) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	ts := s.targets[target]
	if ts == nil {
		ts = &targetSeries{byID: map[string]*entry{}}
		s.targets[target] = ts
	}
	ts.scrapes++
	ts.failed = nil
	gen := ts.scrapes
	s.mu.Unlock()
	for len(points) > 0 {
		n := min(len(points), scrapeBatch)
		s.mu.Lock()
		s.record(ts, gen, t, points[:n])
		s.mu.Unlock()
		points = points[n:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range ts.byID {
		if e.seen != gen {
			e.stale = true
		}
	}
}

// record adds one batch of a scrape's points. Called with mu held.
func (s *Store) record(ts *targetSeries, gen uint64, t int64, points []Point) {
	for _, p := range points {
		e := ts.byID[p.ID]
		if e == nil {
			e = &entry{key: p.Key, target: ts, ring: newRing(s.capacity)}
			ts.byID[p.ID] = e
			s.n++
			for _, o := range p.Key.objects() {
				set := s.index[o]
				if set == nil {
					set = map[*entry]struct{}{}
					s.index[o] = set
				}
				set[e] = struct{}{}
			}
		}
		if e.ring.add(calc.Sample{T: t, V: p.V}) {
			e.stale = false
		}
		e.seen = gen
	}
}

// Failed records that a scrape of target failed with err; name identifies the target in
// errors. Until its next good scrape (or Drop), every value fed by a series the target exposed
// at its last good scrape is refused (ErrIncomplete) instead of being computed from the other
// targets alone: a sum without one ingress replica's share would look like a drop in traffic.
func (s *Store) Failed(target, name string, err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.targets[target]; ts != nil {
		ts.failed, ts.name = err, name
		for _, e := range ts.byID {
			e.stale = true
		}
	}
}

// Drop removes every series of target: it is gone (its pod was deleted or stopped running), so
// its share of any value is no longer expected.
func (s *Store) Drop(target string) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.targets[target]
	if ts == nil {
		return
	}
	for _, e := range ts.byID {
		s.unindex(e)
	}
	s.n -= len(ts.byID)
	delete(s.targets, target)
}

// unindex removes e from the object index. Called with mu held.
func (s *Store) unindex(e *entry) {
	for _, o := range e.key.objects() {
		delete(s.index[o], e)
		if len(s.index[o]) == 0 {
			delete(s.index, o)
		}
	}
}

// Forget removes series whose newest sample is at or before cutoff (Unix milliseconds), except
// those of targets whose latest scrape failed, and returns how many it removed. Run it
// periodically so that series that stopped being exposed go away.
func (s *Store) Forget(cutoff int64) int {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for target, ts := range s.targets {
		if ts.failed != nil {
			// A failing target's series stay until its pod goes (Drop): they are what
			// makes the values it feeds an error rather than a smaller number.
			continue
		}
		for id, e := range ts.byID {
			if e.ring.n > 0 && e.ring.last().T > cutoff {
				continue
			}
			delete(ts.byID, id)
			s.unindex(e)
			removed++
		}
		if len(ts.byID) == 0 {
			delete(s.targets, target)
		}
	}
	s.n -= removed
	return removed
}

// Len returns the number of series held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// Objects returns the objects of a kind that have series, for discovery (listing metrics).
func (s *Store) Objects(kind ObjectKind) []Object {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Object
	for o := range s.index {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}
