package scrape

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Mapper applies one profile's rules to scraped metric families.
type Mapper struct {
	profile profile.Profile
	rules   map[string]*profile.Rule
	// limit is the most series one scrape may expose (DefaultSeriesLimit when zero).
	limit int
}

// NewMapper compiles a profile's rules.
func NewMapper(p profile.Profile) (*Mapper, error) {
	m := &Mapper{profile: p, rules: map[string]*profile.Rule{}, limit: DefaultSeriesLimit}
	for i := range p.Rules {
		r := &p.Rules[i]
		if err := r.Compile(); err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Name, err)
		}
		if _, dup := m.rules[r.Metric]; dup {
			return nil, fmt.Errorf("profile %s: two rules for %s", p.Name, r.Metric)
		}
		m.rules[r.Metric] = r
	}
	return m, nil
}

// Tier is the tier of the mapper's profile.
func (m *Mapper) Tier() profile.Tier { return m.profile.Tier }

// DefaultSeriesLimit is how many series one target may expose, counting every series in the
// exposition whether a rule maps it or not (each costs parsing and a cache entry): above it
// the whole scrape fails, as with Prometheus' sample_limit, so that one exporter with
// exploding label values cannot take the adapter's memory.
const DefaultSeriesLimit = 100_000

// ErrTooManySeries is returned for a scrape above the series limit.
var ErrTooManySeries = errors.New("scrape exceeds the series limit")

// WithLimit returns the mapper with a series limit per scrape (n > 0).
func (m *Mapper) WithLimit(n int) *Mapper {
	c := *m
	c.limit = n
	return &c
}

// Ingest decodes one exposition body and appends the points of every sample a rule maps.
// target is the scraped pod for application profiles, nil for ingress profiles. The text
// format goes through a streaming parser and cache (one per target; nil disables caching);
// protobuf, and text the fast parser does not accept, go through expfmt.
func (m *Mapper) Ingest(dst []series.Point, body io.Reader, format expfmt.Format, target *profile.Target, services profile.Services, cache *SeriesCache) (out []series.Point, err error) {
	// Exporters are untrusted input. expfmt's text parser (prometheus/common v0.70) panics
	// on some malformed bodies, such as "# TYPE a counter\n{}" (found by FuzzIngest): a bad
	// exposition is an error for this scrape, never a crash of the adapter.
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("decoding the exposition: parser panic: %v", r)
		}
	}()
	if format.FormatType() != expfmt.TypeTextPlain {
		return m.ingestExpfmt(dst, body, format, target, services)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return dst, fmt.Errorf("reading the exposition: %w", err)
	}
	if cache == nil {
		cache = NewSeriesCache()
	}
	start := len(dst)
	out, err = m.ingestText(dst, data, target, services, cache)
	if errors.Is(err, errTextSyntax) {
		cache.abort()
		return m.ingestExpfmt(dst[:start], bytes.NewReader(data), format, target, services)
	}
	return out, err
}

// ingestText is the fast path: series seen in the previous scrape cost a map lookup.
func (m *Mapper) ingestText(dst []series.Point, data []byte, target *profile.Target, services profile.Services, cache *SeriesCache) ([]series.Point, error) {
	sc := newTextScanner(data)
	if n := cache.Len(); cap(dst)-len(dst) < n {
		dst = append(make([]series.Point, 0, len(dst)+n+n/8), dst...)
	}
	for lines := 1; ; lines++ {
		l, ok, err := sc.next()
		if err != nil {
			return dst, err
		}
		if !ok {
			cache.commit()
			return dst, nil
		}
		if lines > m.limit {
			cache.abort()
			return dst, fmt.Errorf("%w (%d)", ErrTooManySeries, m.limit)
		}
		e, hit := cache.get(l.series)
		if !hit {
			if e, err = m.mapLine(l, target, services); err != nil {
				return dst, err
			}
		}
		cache.keep(e)
		for i, k := range e.keys {
			dst = append(dst, series.Point{ID: e.ids[i], Key: k, V: l.value * e.scale[i]})
		}
	}
}

// ingestExpfmt decodes with expfmt into metric families, for protobuf and unusual text.
func (m *Mapper) ingestExpfmt(dst []series.Point, body io.Reader, format expfmt.Format, target *profile.Target, services profile.Services) ([]series.Point, error) {
	dec := expfmt.NewDecoder(body, format)
	var keys []series.Key
	seen := 0
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if errors.Is(err, io.EOF) {
				return dst, nil
			}
			return dst, fmt.Errorf("decoding the exposition: %w", err)
		}
		samples := expand(&mf)
		if seen += len(samples); seen > m.limit {
			return dst, fmt.Errorf("%w (%d)", ErrTooManySeries, m.limit)
		}
		for _, s := range samples {
			r := m.rules[s.name]
			if r == nil {
				continue
			}
			var ok bool
			keys, ok = r.Apply(keys[:0], s, target, services)
			if !ok {
				continue
			}
			id := s.id()
			for _, k := range keys {
				dst = append(dst, series.Point{ID: id + "#" + k.Family.String(), Key: k, V: s.value * r.Scale(k.Family)})
			}
		}
	}
}

// sample is one scraped value with its labels; it implements profile.LabelSet.
type sample struct {
	name   string
	labels []*dto.LabelPair
	le     string
	value  float64
}

// Get implements profile.LabelSet; le is kept apart from the other labels.
func (s sample) Get(name string) string {
	if name == "le" {
		return s.le
	}
	for _, l := range s.labels {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// id identifies the raw series the same way the text path does (textID).
func (s sample) id() string {
	pairs := make([][2]string, 0, len(s.labels)+1)
	for _, l := range s.labels {
		pairs = append(pairs, [2]string{l.GetName(), l.GetValue()})
	}
	if s.le != "" {
		pairs = append(pairs, [2]string{"le", s.le})
	}
	return textID(s.name, pairs)
}

// expand flattens a family into the samples Prometheus would store: counters and untyped
// values as they are, histograms as _bucket (with le, +Inf included), _sum and _count,
// summaries as _sum and _count. Gauges are not counters and are skipped.
func expand(mf *dto.MetricFamily) []sample {
	name := mf.GetName()
	var out []sample
	for _, m := range mf.GetMetric() {
		var labels []*dto.LabelPair
		le := ""
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "le":
				// A bucket exposed without a histogram TYPE line keeps its bound.
				le = l.GetValue()
			case "quantile":
			default:
				labels = append(labels, l)
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, sample{name: name, labels: labels, le: le, value: m.GetCounter().GetValue()})
		case dto.MetricType_UNTYPED:
			out = append(out, sample{name: name, labels: labels, le: le, value: m.GetUntyped().GetValue()})
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			out = append(out,
				sample{name: name + "_sum", labels: labels, value: sm.GetSampleSum()},
				sample{name: name + "_count", labels: labels, value: float64(sm.GetSampleCount())})
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out = appendHistogram(out, name, labels, m.GetHistogram())
		default:
		}
	}
	return out
}

func appendHistogram(out []sample, name string, labels []*dto.LabelPair, h *dto.Histogram) []sample {
	count := h.GetSampleCountFloat()
	if count == 0 {
		count = float64(h.GetSampleCount())
	}
	sawInf := false
	for _, b := range h.GetBucket() {
		c := b.GetCumulativeCountFloat()
		if c == 0 {
			c = float64(b.GetCumulativeCount())
		}
		if math.IsInf(b.GetUpperBound(), 1) {
			sawInf = true
		}
		out = append(out, sample{name: name + "_bucket", labels: labels, le: formatLE(b.GetUpperBound()), value: c})
	}
	if !sawInf {
		out = append(out, sample{name: name + "_bucket", labels: labels, le: "+Inf", value: count})
	}
	return append(out,
		sample{name: name + "_sum", labels: labels, value: h.GetSampleSum()},
		sample{name: name + "_count", labels: labels, value: count})
}

func formatLE(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
