package scrape

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// acceptHeader asks for protobuf (cheapest to parse), else the text format. expfmt decodes
// both; OpenMetrics-only exporters also serve text 0.0.4 when asked for it.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// MaxBodyBytes bounds one scrape's body; a longer body fails the scrape (it is never cut and
// parsed as if it were whole).
const MaxBodyBytes = 64 << 20

// ErrBodyTooLarge is returned for a body longer than MaxBodyBytes.
var ErrBodyTooLarge = fmt.Errorf("scrape body exceeds %d bytes", MaxBodyBytes)

// Observer receives the outcome of every scrape (for the adapter's own metrics).
type Observer interface {
	Scraped(profile string, took time.Duration, points int, err error)
}

// Scraper runs one scrape loop per target and writes what it scrapes to a series.Store.
type Scraper struct {
	store    *series.Store
	clock    clock.WithTicker
	client   *http.Client
	interval time.Duration
	timeout  time.Duration
	mappers  map[string]*Mapper
	services profile.Services
	observer Observer
	log      logr.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// Options configure a Scraper.
type Options struct {
	Store    *series.Store
	Clock    clock.WithTicker
	Client   *http.Client
	Interval time.Duration
	Timeout  time.Duration
	Profiles map[string]profile.Profile
	// SeriesLimit is the most series one target may expose (DefaultSeriesLimit when zero).
	SeriesLimit int
	Services    profile.Services
	Observer    Observer
	Log         logr.Logger
}

// New compiles the profiles and returns an idle scraper; Sync starts loops.
func New(o Options) (*Scraper, error) {
	if o.Interval <= 0 || o.Timeout <= 0 || o.Timeout > o.Interval {
		return nil, fmt.Errorf("scrape interval %s and timeout %s: both must be positive and the timeout no longer than the interval", o.Interval, o.Timeout)
	}
	s := &Scraper{store: o.Store, clock: o.Clock, client: o.Client, interval: o.Interval, timeout: o.Timeout,
		mappers: map[string]*Mapper{}, services: o.Services, observer: o.Observer, log: o.Log, running: map[string]context.CancelFunc{}}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	for name, p := range o.Profiles {
		m, err := NewMapper(p)
		if err != nil {
			return nil, err
		}
		if o.SeriesLimit > 0 {
			m = m.WithLimit(o.SeriesLimit)
		}
		s.mappers[name] = m
	}
	return s, nil
}

// HasProfile says whether a profile name is known.
func (s *Scraper) HasProfile(name string) bool { return s.mappers[name] != nil }

// Sync makes the running loops match targets: new targets start, vanished ones (their pod was
// deleted or stopped running) stop and their series are dropped at once.
func (s *Scraper) Sync(ctx context.Context, targets []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		if s.mappers[t.Profile] == nil {
			s.log.Info("Unknown profile; target skipped", "profile", t.Profile, "url", t.URL)
			continue
		}
		want[t.Key] = t
	}
	for key, cancel := range s.running {
		if _, ok := want[key]; !ok {
			cancel()
			delete(s.running, key)
			s.store.Drop(key)
		}
	}
	for key, t := range want {
		if _, ok := s.running[key]; ok {
			continue
		}
		loopCtx, cancel := context.WithCancel(ctx)
		s.running[key] = cancel
		s.wg.Go(func() { s.loop(loopCtx, t) })
	}
}

// Targets returns how many targets are being scraped.
func (s *Scraper) Targets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// Wait blocks until every loop has stopped (after the context given to Sync is done).
func (s *Scraper) Wait() { s.wg.Wait() }

// loop scrapes t every interval, starting at an offset derived from its key so that targets
// spread over the interval instead of scraping at once.
func (s *Scraper) loop(ctx context.Context, t Target) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.Key))
	offset := time.Duration(h.Sum64() % uint64(s.interval)) //nolint:gosec // the interval is positive (checked in New)
	// The first scrape comes early (a fraction of the offset) so a new target is served soon.
	first := s.clock.NewTimer(offset / 8)
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C():
	}
	ticker := s.clock.NewTicker(s.interval)
	defer ticker.Stop()
	cache := NewSeriesCache()
	for {
		s.scrapeOnce(ctx, t, cache)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// scrapeOnce scrapes t once and records the result in the store.
func (s *Scraper) scrapeOnce(ctx context.Context, t Target, cache *SeriesCache) {
	start := s.clock.Now()
	points, err := s.fetch(ctx, t, cache)
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	took := s.clock.Since(start)
	switch {
	case errors.Is(err, ErrTooManySeries), errors.Is(err, ErrBodyTooLarge):
		// A limit is a misbehaving exporter, not a passing failure: say so at the default level.
		s.store.Failed(t.Key, t.Name, err)
		s.log.Info("Scrape refused: the target exceeds a limit", "target", t.Name, "url", t.URL, "err", err.Error())
	case err != nil:
		s.store.Failed(t.Key, t.Name, err)
		s.log.V(1).Info("Scrape failed", "target", t.Name, "url", t.URL, "err", err.Error())
	default:
		// Samples carry the scrape's start time, as in Prometheus.
		s.store.Scrape(t.Key, start.UnixMilli(), points)
	}
	if s.observer != nil {
		s.observer.Scraped(t.Profile, took, len(points), err)
	}
}

func (s *Scraper) fetch(ctx context.Context, t Target, cache *SeriesCache) ([]series.Point, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprintf("%g", s.timeout.Seconds()))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scraping %s: HTTP %d", t.URL, resp.StatusCode)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	body := &boundedReader{r: io.LimitReader(resp.Body, MaxBodyBytes+1), left: MaxBodyBytes}
	return s.mappers[t.Profile].Ingest(nil, body, format, t.Pod, s.services, cache)
}

// boundedReader reads at most left bytes and fails with ErrBodyTooLarge on more.
type boundedReader struct {
	r    io.Reader
	left int64
}

// Read implements io.Reader.
func (b *boundedReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, ErrBodyTooLarge
	}
	return n, err //nolint:wrapcheck // io.EOF must pass as it is
}
