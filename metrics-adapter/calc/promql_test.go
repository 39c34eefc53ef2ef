package calc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/lockstep-dev/lockstep/metrics-adapter/internal/promfake"
)

// The cross-checks load the same samples into an in-memory store and evaluate the query with
// the real PromQL engine, then compare with this package's answer.

func promEngine(t *testing.T) *promql.Engine {
	t.Helper()
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1 << 20, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	t.Cleanup(func() { _ = ng.Close() })
	return ng
}

func appendSeries(t *testing.T, st *promfake.Store, ls labels.Labels, samples []Sample) {
	t.Helper()
	for _, s := range samples {
		if err := st.Append(ls, s.T, s.V); err != nil {
			t.Fatal(err)
		}
	}
}

func promScalar(t *testing.T, ng *promql.Engine, st *promfake.Store, q string, at int64) (float64, bool) {
	t.Helper()
	vec := st.Instant(t, ng, q, at)
	if len(vec) == 0 {
		return 0, false
	}
	if len(vec) != 1 {
		t.Fatalf("%s: %d series, want 1", q, len(vec))
	}
	return vec[0].F, true
}

// counterSamples is a counter scraped roughly every interval with jitter, gaps and resets.
func counterSamples(r *rand.Rand, start int64, n int, interval time.Duration) []Sample {
	out := make([]Sample, 0, n)
	v := float64(r.IntN(1000))
	at := start
	for range n {
		at += interval.Milliseconds() + int64(r.IntN(2000)) - 1000
		if r.IntN(10) == 0 {
			at += interval.Milliseconds() * int64(r.IntN(4)) // a missed scrape or more
		}
		switch r.IntN(25) {
		case 0:
			v = float64(r.IntN(5)) // process restart: counter reset
		default:
			v += float64(r.IntN(500)) + r.Float64()
		}
		out = append(out, Sample{T: at, V: v})
	}
	return out
}

func close(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func TestRateMatchesPromQL(t *testing.T) {
	st := promfake.NewStore()
	ng := promEngine(t)
	r := rand.New(rand.NewPCG(1, 2))
	const base = int64(1_700_000_000_000)
	series := make([][]Sample, 20)
	for i := range series {
		series[i] = counterSamples(r, base, 120, 15*time.Second)
		appendSeries(t, st, labels.FromStrings("__name__", "c", "i", strconv.Itoa(i)), series[i])
	}
	checked := 0
	for i, s := range series {
		for _, rng := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute} {
			for k := range 25 {
				at := base + int64(k)*80_000 + int64(r.IntN(15_000))
				start := at - rng.Milliseconds()
				for fn, ours := range map[string]func([]Sample, int64, int64) (float64, bool){"rate": Rate, "increase": Increase} {
					q := fmt.Sprintf(`%s(c{i="%d"}[%s])`, fn, i, model(rng))
					want, wantOK := promScalar(t, ng, st, q, at)
					got, gotOK := ours(s, start, at)
					if wantOK != gotOK || (wantOK && !close(got, want)) {
						t.Fatalf("%s at %d: got %v (%v), PromQL %v (%v)", q, at, got, gotOK, want, wantOK)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d rate/increase evaluations agree with PromQL", checked)
}

func TestHistogramQuantileMatchesPromQL(t *testing.T) {
	st := promfake.NewStore()
	ng := promEngine(t)
	r := rand.New(rand.NewPCG(3, 4))
	const base = int64(1_700_000_000_000)
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	// Two pods exposing the same histogram, scraped at the same instants; each scrape adds
	// observations to a random bucket range, so the cumulative counts stay monotonic in le.
	type key struct {
		pod int
		le  string
	}
	data := map[key][]Sample{}
	for pod := range 2 {
		counts := make([]float64, len(bounds))
		for n := range 60 {
			at := base + int64(n)*15_000
			added := make([]float64, len(bounds))
			for range r.IntN(200) {
				added[r.IntN(len(bounds))]++
			}
			cum := 0.0
			for j := range bounds {
				cum += added[j]
				counts[j] += cum
				data[key{pod, bounds[j]}] = append(data[key{pod, bounds[j]}], Sample{T: at, V: counts[j]})
			}
		}
	}
	for k, s := range data {
		appendSeries(t, st, labels.FromStrings("__name__", "h_bucket", "pod", strconv.Itoa(k.pod), "le", k.le), s)
	}
	checked := 0
	for _, q := range []float64{0, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		for k := range 20 {
			at := base + 90_000 + int64(k)*40_000 + int64(r.IntN(15_000))
			start := at - time.Minute.Milliseconds()
			var buckets []Bucket
			for j, le := range bounds {
				sum, any := 0.0, false
				for pod := range 2 {
					if v, ok := Rate(data[key{pod, le}], start, at); ok {
						sum, any = sum+v, true
					}
				}
				if any {
					ub, _ := strconv.ParseFloat(bounds[j], 64)
					buckets = append(buckets, Bucket{UpperBound: ub, Count: sum})
				}
			}
			got := HistogramQuantile(q, buckets)
			pq := fmt.Sprintf(`histogram_quantile(%g, sum by (le) (rate(h_bucket[1m])))`, q)
			want, ok := promScalar(t, ng, st, pq, at)
			if !ok {
				want = math.NaN()
			}
			if !close(got, want) {
				t.Fatalf("%s at %d: got %v, PromQL %v", pq, at, got, want)
			}
			checked++
		}
	}
	t.Logf("%d histogram_quantile evaluations agree with PromQL", checked)
}

func model(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) + "s" }
