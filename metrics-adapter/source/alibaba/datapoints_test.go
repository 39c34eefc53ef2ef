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
	}{
		{"newest wins", `[{"timestamp":1000,"Average":1},{"timestamp":3000,"Average":3},{"timestamp":2000,"Average":2}]`, 3, 3000, nil},
		{"numbers as strings", `[{"timestamp":"5000","Average":"12.5"}]`, 12.5, 5000, nil},
		{"empty", `[]`, 0, 0, series.ErrNoData},
		{"blank", ``, 0, 0, series.ErrNoData},
		{"no timestamp", `[{"Average":1}]`, 0, 0, series.ErrNoData},
		{"no statistic", `[{"timestamp":1000,"Maximum":1}]`, 0, 0, errAny},
		{"not JSON", `{`, 0, 0, errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ts, err := newestDatapoint(tc.in, "Average", "Qps", "CLB lb-1:80")
			switch {
			case tc.err == nil && (err != nil || v != tc.want || ts != tc.wantTS):
				t.Fatalf("got %v at %d, %v; want %v at %d", v, ts, err, tc.want, tc.wantTS)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("got %v at %d, %v; want error %v", v, ts, err, tc.err)
			}
		})
	}
}

var errAny = errors.New("any error")

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
