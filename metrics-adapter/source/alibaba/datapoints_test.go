package alibaba

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

func TestNewestDatapoint(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     float64
		wantTS   int64
		err      error
		anyErr   bool
	}{
		{"newest wins", `[{"timestamp":1000,"Average":1},{"timestamp":3000,"Average":3},{"timestamp":2000,"Average":2}]`, 3, 3000, nil, false},
		{"numbers as strings", `[{"timestamp":"5000","Average":"12.5"}]`, 12.5, 5000, nil, false},
		{"empty", `[]`, 0, 0, series.ErrNoData, false},
		{"blank", ``, 0, 0, series.ErrNoData, false},
		{"no timestamp", `[{"Average":1}]`, 0, 0, series.ErrNoData, false},
		{"no statistic", `[{"timestamp":1000,"Maximum":1}]`, 0, 0, nil, true},
		{"not JSON", `{`, 0, 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ts, err := newestDatapoint(tc.in, "Average", "Qps", "CLB lb-1:80")
			switch {
			case tc.anyErr:
				if err == nil {
					t.Fatalf("got %v at %d, want an error", v, ts)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v at %d, %v; want %v", v, ts, err, tc.err)
				}
			case err != nil || v != tc.want || ts != tc.wantTS:
				t.Fatalf("got %v at %d, %v; want %v at %d", v, ts, err, tc.want, tc.wantTS)
			}
		})
	}
}

// FuzzNewestDatapoint: whatever CloudMonitor sends, the parser returns an error or a finite
// value that is the statistic of the datapoint with the largest timestamp; it never panics.
func FuzzNewestDatapoint(f *testing.F) {
	for _, s := range []string{
		`[{"timestamp":1000,"Average":1},{"timestamp":3000,"Average":3}]`,
		`[{"timestamp":"5000","Average":"12.5","Maximum":20}]`,
		`[{"timestamp":1e30,"Average":"NaN"}]`, `[{"timestamp":-1,"Average":"+Inf"}]`,
		`[]`, ``, `null`, `[null]`, `{"timestamp":1}`, `[{"timestamp":true}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, ts, err := newestDatapoint(in, "Average", "Qps", "CLB lb-1:80")
		if err != nil {
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("non-finite value %v", v)
		}
		var points []map[string]any
		if json.Unmarshal([]byte(in), &points) != nil {
			t.Fatalf("a value from unparsable input %q", in)
		}
		for _, p := range points {
			if pts, ok := number(p["timestamp"]); ok && int64(pts) > ts {
				t.Fatalf("datapoint at %d is newer than the one chosen (%d)", int64(pts), ts)
			}
		}
	})
}
