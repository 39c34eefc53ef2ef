package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Exclusions is a set of calendar days, in one time zone, on which jobs do not run.
type Exclusions struct {
	days []fields
	loc  *time.Location
}

// ParseExclusions reads excludeDates entries: cron expressions (six fields with seconds first,
// as the reference documents, or five) of which only the day fields count — day of month,
// month and day of week. "* * * 15 11 *" excludes every 15 November; "* * * * * 5" every Friday.
func ParseExclusions(entries []string, loc *time.Location) (*Exclusions, error) {
	ex := &Exclusions{loc: loc}
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		if strings.HasPrefix(entry, "@") {
			return nil, fmt.Errorf("excludeDates[%d] %q: descriptors are not allowed, use a cron expression such as \"* * * 15 11 *\"", i, entry)
		}
		parsed, err := parser.Parse(entry)
		if err != nil {
			return nil, fmt.Errorf("excludeDates[%d] %q: %w", i, entry, err)
		}
		s, ok := parsed.(*cron.SpecSchedule)
		if !ok {
			return nil, fmt.Errorf("excludeDates[%d] %q: unsupported form", i, entry)
		}
		ex.days = append(ex.days, fieldsOf(s))
	}
	return ex, nil
}

// Excludes reports whether the calendar day of t, in the exclusions' time zone, is excluded.
func (e *Exclusions) Excludes(t time.Time) bool {
	if e == nil {
		return false
	}
	day := t.In(e.loc)
	for _, f := range e.days {
		if f.dayMatches(day) {
			return true
		}
	}
	return false
}
