package promfake

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// Instant evaluates the PromQL query q over s at at (milliseconds) with ng, failing tb on any
// error: what a test compares the adapter's own calculations against.
func (s *Store) Instant(tb testing.TB, ng *promql.Engine, q string, at int64) promql.Vector {
	tb.Helper()
	query, err := ng.NewInstantQuery(context.Background(), s, nil, q, time.UnixMilli(at))
	if err != nil {
		tb.Fatal(err)
	}
	defer query.Close()
	res := query.Exec(context.Background())
	if res.Err != nil {
		tb.Fatal(res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		tb.Fatal(err)
	}
	return vec
}
