package provider

import (
	"errors"
	"fmt"

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

// ObjectIndex tells whether the object a query is about exists in the cluster; known is false
// for kinds it cannot tell.
type ObjectIndex interface {
	Exists(o series.Object) (exists, known bool)
}

// ExistingOnly passes to src only the queries about objects that exist. Remote sources register
// (and keep refreshing) every query they are asked, so without it any caller could make them
// hold and refresh a query per made-up name. A query about a missing object has no series.
func ExistingOnly(index ObjectIndex, src Source) Source {
	return existingOnly{index: index, src: src}
}

type existingOnly struct {
	index ObjectIndex
	src   Source
}

// Evaluate implements Source.
func (e existingOnly) Evaluate(q series.Query, now int64) (series.Value, error) {
	if exists, known := e.index.Exists(q.Object); known && !exists {
		return series.Value{}, fmt.Errorf("%w: %s/%s does not exist", series.ErrNoSeries, q.Object.Namespace, q.Object.Name)
	}
	return e.src.Evaluate(q, now) //nolint:wrapcheck // a source's answer passes through
}

// Objects implements Source.
func (e existingOnly) Objects(kind series.ObjectKind) []series.Object { return e.src.Objects(kind) }
