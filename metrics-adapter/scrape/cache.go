package scrape

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// SeriesCache remembers, for one target, what each series line of the text format maps to,
// so that a scrape parses labels and applies rules only for series it did not see in the
// previous scrape (the approach of Prometheus' scrape cache). Series absent from a scrape
// leave the cache with it. A cache belongs to one target's loop; it is not safe for
// concurrent use.
type SeriesCache struct {
	cur, next map[string]*cachedSeries
}

// NewSeriesCache returns an empty cache.
func NewSeriesCache() *SeriesCache {
	return &SeriesCache{cur: map[string]*cachedSeries{}, next: map[string]*cachedSeries{}}
}

// cachedSeries is how one series line maps: one point per key, nothing when no rule keeps it.
type cachedSeries struct {
	// key is the series line it was made for, kept so that re-keeping it costs nothing.
	key   string
	ids   []string
	keys  []series.Key
	scale []float64
}

// Len is the number of series remembered.
func (c *SeriesCache) Len() int { return len(c.cur) }

func (c *SeriesCache) get(line []byte) (*cachedSeries, bool) {
	e, ok := c.cur[string(line)]
	return e, ok
}

func (c *SeriesCache) keep(e *cachedSeries) {
	c.next[e.key] = e
}

// commit makes this scrape's series the remembered ones.
func (c *SeriesCache) commit() {
	c.cur, c.next = c.next, c.cur
	clear(c.next)
}

// abort forgets what this scrape collected.
func (c *SeriesCache) abort() { clear(c.next) }

// pairs implements profile.LabelSet over parsed label pairs.
type pairs [][2]string

// Get implements profile.LabelSet.
func (p pairs) Get(name string) string {
	for _, kv := range p {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

// mapLine applies the rule for a series line seen for the first time.
func (m *Mapper) mapLine(l textLine, target *profile.Target, services profile.Services) (*cachedSeries, error) {
	e := &cachedSeries{key: string(l.series)}
	r := m.rules[string(l.name)]
	if r == nil {
		return e, nil
	}
	labels, err := parseLabels(l.labels)
	if err != nil {
		return nil, err
	}
	keys, ok := r.Apply(nil, pairs(labels), target, services)
	if !ok {
		return e, nil
	}
	id := textID(string(l.name), labels)
	for _, k := range keys {
		e.ids = append(e.ids, id+"#"+k.Family.String())
		e.keys = append(e.keys, k)
		e.scale = append(e.scale, r.Scale(k.Family))
	}
	return e, nil
}

// normalizeLE writes a bucket bound as a number ("1.0" and "1" are one bucket), or as written
// when it is not one.
func normalizeLE(le string) string {
	if v, err := strconv.ParseFloat(le, 64); err == nil && !math.IsNaN(v) {
		return formatLE(v)
	}
	return le
}

// textID builds a raw series' id for both ingestion paths: the name, the labels other than le
// and quantile in name order, then le normalised as a number.
func textID(name string, labels [][2]string) string {
	ls := make([][2]string, 0, len(labels))
	le := ""
	for _, kv := range labels {
		switch kv[0] {
		case "le":
			le = normalizeLE(kv[1])
		case "quantile":
		default:
			ls = append(ls, kv)
		}
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i][0] < ls[j][0] })
	var b strings.Builder
	b.WriteString(name)
	for _, kv := range ls {
		b.WriteByte('\xff')
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
	}
	if le != "" {
		b.WriteString("\xffle=")
		b.WriteString(le)
	}
	return b.String()
}
