package series

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/metrics-adapter/calc"
)

const t0 = int64(1_700_000_000_000)

// feed scrapes target every 15 s for n scrapes; perScrape returns the points at scrape i.
func feed(s *Store, target string, n int, perScrape func(i int) []Point) int64 {
	at := t0
	for i := range n {
		at = t0 + int64(i)*15_000
		s.Scrape(target, at, perScrape(i))
	}
	return at
}

func svc(f Family) Key { return Key{Family: f, Namespace: "shop", Service: "checkout", Ingress: "web"} }

func TestEvaluate(t *testing.T) {
	s := NewStore(16)
	// Two ingress pods each see 10 req/s for checkout, 1 of them a 5xx; latencies fall in
	// the 0.1–0.2 s bucket; 100 bytes per request.
	var last int64
	for _, pod := range []string{"ingress-a", "ingress-b"} {
		last = feed(s, pod, 9, func(i int) []Point {
			n := float64(i) * 15
			ok := svc(Requests)
			bad := svc(Requests)
			bad.Error = true
			pts := []Point{
				{ID: "req{code=200}", Key: ok, V: n * 9},
				{ID: "req{code=503}", Key: bad, V: n},
				{ID: "sum", Key: svc(DurationSum), V: n * 10 * 0.15},
				{ID: "count", Key: svc(DurationCount), V: n * 10},
				{ID: "bytes", Key: svc(RequestBytes), V: n * 1000},
			}
			for _, le := range []float64{0.1, 0.2, math.Inf(1)} {
				k := svc(DurationBucket)
				k.LE = le
				v := n * 10
				if le == 0.1 {
					v = 0
				}
				pts = append(pts, Point{ID: "bucket{le=" + strconv.FormatFloat(le, 'g', -1, 64) + "}", Key: k, V: v})
			}
			return pts
		})
	}
	object := Object{ServiceObject, "shop", "checkout"}
	tests := map[string]struct {
		q       Query
		want    float64
		wantErr error
	}{
		"request rate":     {q: Query{Measure: RequestRate, Object: object}, want: 20},
		"by ingress":       {q: Query{Measure: RequestRate, Object: Object{IngressObject, "shop", "web"}}, want: 20},
		"error ratio":      {q: Query{Measure: ErrorRatio, Object: object}, want: 0.1},
		"average latency":  {q: Query{Measure: LatencyAverage, Object: object}, want: 0.15},
		"p50":              {q: Query{Measure: LatencyQuantile, Quantile: 0.5, Object: object}, want: 0.15},
		"p99":              {q: Query{Measure: LatencyQuantile, Quantile: 0.99, Object: object}, want: 0.199},
		"inflow":           {q: Query{Measure: InflowRate, Object: object}, want: 2000},
		"only errors":      {q: Query{Measure: RequestRate, Object: object, Match: func(k Key) bool { return k.Error }}, want: 2},
		"unknown object":   {q: Query{Measure: RequestRate, Object: Object{ServiceObject, "shop", "cart"}}, wantErr: ErrNoSeries},
		"filtered out":     {q: Query{Measure: RequestRate, Object: object, Match: func(k Key) bool { return k.Port == "9" }}, wantErr: ErrNoSeries},
		"window too short": {q: Query{Measure: RequestRate, Object: object, Window: 10 * time.Second}, wantErr: ErrNoData},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.q.Window == 0 {
				tc.q.Window = time.Minute
			}
			v, err := s.Evaluate(tc.q, last)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err == nil && math.Abs(v.V-tc.want) > 1e-9 {
				t.Fatalf("value %v, want %v", v.V, tc.want)
			}
		})
	}
}

func TestStaleness(t *testing.T) {
	s := NewStore(16)
	k := svc(Requests)
	last := feed(s, "ingress-a", 5, func(i int) []Point { return []Point{{ID: "r", Key: k, V: float64(i) * 150}} })
	q := Query{Measure: RequestRate, Object: Object{ServiceObject, "shop", "checkout"}, Window: time.Minute, StaleAfter: 30 * time.Second}
	if v, err := s.Evaluate(q, last); err != nil || v.V != 10 {
		t.Fatalf("fresh: %v, %v", v, err)
	}
	// Asked 31 s after the last scrape without a new one: refused, not zero.
	if _, err := s.Evaluate(q, last+31_000); !errors.Is(err, ErrStale) {
		t.Fatalf("late: %v, want ErrStale", err)
	}
	// A failed scrape refuses the value the target fed at once.
	s.Failed("ingress-a", "ingress-nginx pod ingress/a", errors.New("HTTP 503"))
	if _, err := s.Evaluate(q, last); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("after a failed scrape: %v, want ErrIncomplete", err)
	}
	// The next good scrape brings the series back.
	s.Scrape("ingress-a", last+15_000, []Point{{ID: "r", Key: k, V: 5 * 150}})
	if _, err := s.Evaluate(q, last+15_000); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// A series missing from a scrape is stale; its sibling is not.
	other := k
	other.Service = "cart"
	s.Scrape("ingress-a", last+30_000, []Point{{ID: "other", Key: other, V: 1}})
	if _, err := s.Evaluate(q, last+30_000); !errors.Is(err, ErrNoData) {
		t.Fatalf("vanished series: %v, want ErrNoData", err)
	}
	// Forget drops old series and their index entries.
	if n := s.Forget(last + 15_000); n != 1 || s.Len() != 1 {
		t.Fatalf("forgot %d, %d left; want 1, 1", n, s.Len())
	}
	if _, err := s.Evaluate(q, last+30_000); !errors.Is(err, ErrNoSeries) {
		t.Fatalf("forgotten: %v, want ErrNoSeries", err)
	}
}

// Two ingress replicas carry half the traffic each. When one cannot be scraped while its pod
// still runs, every aggregate it fed is refused, naming it; never the other half alone. Once
// its pod is gone (Drop), the value is the survivor's.
func TestFailedTargetMakesAggregatesIncomplete(t *testing.T) {
	s := NewStore(16)
	k := svc(Requests)
	bucket := svc(DurationBucket)
	bucket.LE = math.Inf(1)
	sum, count := svc(DurationSum), svc(DurationCount)
	var last int64
	for _, pod := range []string{"ingress-a", "ingress-b"} {
		last = feed(s, pod, 5, func(i int) []Point {
			n := float64(i) * 150
			return []Point{{ID: "r", Key: k, V: n}, {ID: "b", Key: bucket, V: n}, {ID: "s", Key: sum, V: n / 10}, {ID: "c", Key: count, V: n}}
		})
	}
	svcObj := Object{ServiceObject, "shop", "checkout"}
	queries := map[string]Query{
		"service rate":      {Measure: RequestRate, Object: svcObj, Window: time.Minute},
		"namespace rate":    {Measure: RequestRate, Object: Object{NamespaceObject, "shop", ""}, Window: time.Minute},
		"ingress rate":      {Measure: RequestRate, Object: Object{IngressObject, "shop", "web"}, Window: time.Minute},
		"error ratio":       {Measure: ErrorRatio, Object: svcObj, Window: time.Minute},
		"average latency":   {Measure: LatencyAverage, Object: svcObj, Window: time.Minute},
		"quantile latency":  {Measure: LatencyQuantile, Quantile: 0.99, Object: svcObj, Window: time.Minute},
		"selected by match": {Measure: RequestRate, Object: svcObj, Window: time.Minute, Match: func(Key) bool { return true }},
	}
	if v, err := s.Evaluate(queries["service rate"], last); err != nil || v.V != 20 {
		t.Fatalf("both replicas: %v, %v; want 20", v, err)
	}
	s.Failed("ingress-b", "ingress-nginx pod ingress/b", errors.New("HTTP 503"))
	for name, q := range queries {
		_, err := s.Evaluate(q, last)
		if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "ingress/b") {
			t.Errorf("%s with one replica unreadable: %v, want ErrIncomplete naming ingress/b", name, err)
		}
	}
	// A good scrape of b clears it.
	s.Scrape("ingress-b", last+15_000, []Point{{ID: "r", Key: k, V: 5 * 150}, {ID: "b", Key: bucket, V: 5 * 150}, {ID: "s", Key: sum, V: 75}, {ID: "c", Key: count, V: 5 * 150}})
	if _, err := s.Evaluate(queries["service rate"], last+15_000); err != nil {
		t.Fatalf("after b recovered: %v", err)
	}
	// b fails again, then its pod is deleted: a's share is the whole value.
	s.Failed("ingress-b", "ingress-nginx pod ingress/b", errors.New("connection refused"))
	s.Drop("ingress-b")
	if v, err := s.Evaluate(queries["service rate"], last); err != nil || v.V != 10 {
		t.Fatalf("after b's pod is gone: %v, %v; want a's 10", v, err)
	}
	if s.Len() != 4 {
		t.Fatalf("%d series held after dropping b, want a's 4", s.Len())
	}
	// A failing target blocks only the series it exposed at its last good scrape: one whose
	// checkout series had vanished before it failed does not block checkout.
	other := k
	other.Service = "cart"
	s.Scrape("ingress-c", t0, []Point{{ID: "r", Key: k, V: 1}})
	s.Scrape("ingress-c", t0+15_000, []Point{{ID: "cart", Key: other, V: 1}})
	s.Failed("ingress-c", "ingress-nginx pod ingress/c", errors.New("timeout"))
	if v, err := s.Evaluate(queries["service rate"], last); err != nil || v.V != 10 {
		t.Fatalf("with a failed target that no longer served checkout: %v, %v; want 10", v, err)
	}
	// However long a target fails, its share stays missing: Forget keeps its series.
	s.Forget(last + 3_600_000)
	cart := Query{Measure: RequestRate, Object: Object{ServiceObject, "shop", "cart"}, Window: time.Minute}
	if _, err := s.Evaluate(cart, last+3_600_000); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("an hour into the failure: %v, want ErrIncomplete", err)
	}
}

func TestRingKeepsNewest(t *testing.T) {
	r := newRing(3)
	for i := range 5 {
		r.add(calcSample(int64(i)))
	}
	if r.add(calcSample(2)) {
		t.Fatal("an out-of-order sample was accepted")
	}
	got := r.appendTo(nil)
	if len(got) != 3 || got[0].T != 2 || got[2].T != 4 {
		t.Fatalf("ring holds %v, want T 2..4", got)
	}
}

func calcSample(t int64) calc.Sample { return calc.Sample{T: t, V: float64(t)} }

// A scrape larger than one batch is recorded while queries run (go test -race checks the
// locking); every series ends up with the scrape's sample and series that vanished are stale.
func TestScrapeInBatchesWhileReading(t *testing.T) {
	s := NewStore(8)
	const n = 3*scrapeBatch + 17
	points := func(i int, count int) []Point {
		pts := make([]Point, count)
		for j := range pts {
			k := svc(Requests)
			k.Service = "svc-" + strconv.Itoa(j%50)
			pts[j] = Point{ID: "req{s=" + strconv.Itoa(j) + "}", Key: k, V: float64(i * 15)}
		}
		return pts
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 6 {
			// The last scrape lacks the last 17 series.
			count := n
			if i == 5 {
				count = n - 17
			}
			s.Scrape("ingress-a", t0+int64(i)*15_000, points(i, count))
		}
	}()
	q := Query{Measure: RequestRate, Object: Object{Kind: ServiceObject, Namespace: "shop", Name: "svc-7"}, Window: time.Minute}
	for {
		_, _ = s.Evaluate(q, t0+75_000)
		select {
		case <-done:
			if s.Len() != n {
				t.Fatalf("%d series, want %d", s.Len(), n)
			}
			stale := 0
			for _, e := range s.targets["ingress-a"].byID {
				if e.stale {
					stale++
				} else if e.ring.last().T != t0+75_000 {
					t.Fatalf("a series missed the last scrape")
				}
			}
			if stale != 17 {
				t.Fatalf("%d stale series, want the 17 that vanished", stale)
			}
			return
		default:
		}
	}
}
