package provider

import (
	"errors"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Chain asks each source in turn and answers with the first that knows the object: a source
// returning series.ErrNoSeries passes the query on; any other answer, value or error, is final.
// The embedded scraper usually comes first, a remote backend after it.
type Chain []Source

// Evaluate implements Source.
func (c Chain) Evaluate(q series.Query, now int64) (series.Value, error) {
	err := series.ErrNoSeries
	for _, s := range c {
		var v series.Value
		v, err = s.Evaluate(q, now)
		if !errors.Is(err, series.ErrNoSeries) {
			return v, err
		}
	}
	return series.Value{}, err
}

// Objects implements Source: the objects every source knows.
func (c Chain) Objects(kind series.ObjectKind) []series.Object {
	var out []series.Object
	for _, s := range c {
		out = append(out, s.Objects(kind)...)
	}
	return out
}
