package promfake

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

func TestStoreServesThePromQLEngine(t *testing.T) {
	st := NewStore()
	const base = int64(1_700_000_000_000)
	for i := range 10 {
		at := base + int64(i)*15_000
		for _, pod := range []string{"a", "b"} {
			if err := st.Append(labels.FromStrings("__name__", "c", "pod", pod), at, float64(i*30)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Append(labels.FromStrings("__name__", "other", "pod", "a"), at, 1); err != nil {
			t.Fatal(err)
		}
	}
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1 << 20, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	defer func() { _ = ng.Close() }()
	eval := func(q string, at int64) promql.Vector {
		t.Helper()
		return st.Instant(t, ng, q, at)
	}
	end := base + 9*15_000
	for _, tc := range []struct {
		query string
		at    int64
		want  []float64
	}{
		{`sum(rate(c[1m]))`, end, []float64{4}},         // two series at 2/s each
		{`rate(c{pod="b"}[1m])`, end, []float64{2}},     // the matcher selects one series
		{`c{pod=~"a|b"}`, end, []float64{270, 270}},     // the newest sample of each
		{`c`, base + 4*15_000 + 1, []float64{120, 120}}, // samples after the time are not seen
		{`c`, base - 1, nil},                            // before the first sample: nothing
		{`count(other)`, end, []float64{1}},             // another name
		{`c{pod="z"}`, end, nil},                        // no such series
		{`c`, end + 6*time.Minute.Milliseconds(), nil},  // past the lookback: stale
	} {
		vec := eval(tc.query, tc.at)
		var got []float64
		for _, s := range vec {
			got = append(got, s.F)
		}
		if !slices.EqualFunc(got, tc.want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
			t.Errorf("%s at %d = %v, want %v", tc.query, tc.at, got, tc.want)
		}
	}
}

func TestStoreRefusesOutOfOrderSamples(t *testing.T) {
	st := NewStore()
	ls := labels.FromStrings("__name__", "c")
	if err := st.Append(ls, 2000, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ls, 1000, 1); err == nil {
		t.Error("an older sample was accepted")
	}
	if err := st.Append(ls, 2000, 5); err == nil {
		t.Error("a different value at the same time was accepted")
	}
	if err := st.Append(ls, 2000, 1); err != nil {
		t.Errorf("the same sample again: %v", err)
	}
	if err := st.Append(ls, 3000, 2); err != nil {
		t.Errorf("a newer sample: %v", err)
	}
}
