package schedule

import (
	"math/bits"
	"time"

	"github.com/robfig/cron/v3"
)

// starBit marks a day-of-month or day-of-week field written as * or ?; robfig/cron sets the top
// bit for that. It decides how the two day fields combine (see dayMatches).
const starBit = 1 << 63

// fields are the bit sets of a parsed cron expression: bit n set means value n matches.
type fields struct {
	second, minute, hour, dom, month, dow uint64
}

func fieldsOf(s *cron.SpecSchedule) fields {
	return fields{second: s.Second, minute: s.Minute, hour: s.Hour, dom: s.Dom, month: s.Month, dow: s.Dow}
}

// dayMatches applies cron's rule for the two day fields: if either is a wildcard, both must
// match; otherwise either may.
func (f fields) dayMatches(day time.Time) bool {
	if f.month&(1<<uint(day.Month())) == 0 {
		return false
	}
	domMatch := f.dom&(1<<uint(day.Day())) != 0
	dowMatch := f.dow&(1<<uint(day.Weekday())) != 0
	if f.dom&starBit != 0 || f.dow&starBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// values lists the set bits of field below limit, ascending.
func values(field uint64, limit int) []int {
	out := make([]int, 0, bits.OnesCount64(field))
	for v := range limit {
		if field&(1<<uint(v)) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// calendar evaluates a cron expression on wall-clock days in loc, with the DST rule of the
// package comment.
type calendar struct {
	fields fields
	loc    *time.Location
}

// Next returns the first activation strictly after t.
func (c *calendar) Next(t time.Time) time.Time {
	local := t.In(c.loc)
	hours, minutes, seconds := values(c.fields.hour, 24), values(c.fields.minute, 60), values(c.fields.second, 60)
	day := time.Date(local.Year(), local.Month(), local.Day(), 12, 0, 0, 0, c.loc) // noon: never in a DST gap
	// Start a day early: a gap-shifted time of the previous day can land after t.
	day = day.AddDate(0, 0, -1)
	for range searchHorizon {
		if c.fields.dayMatches(day) {
			if at := c.firstOnDay(day, hours, minutes, seconds, t); !at.IsZero() {
				return at
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}
}

// firstOnDay returns the earliest activation on day that is after t, skipping whole hours and
// minutes whose last activation is not after t.
func (c *calendar) firstOnDay(day time.Time, hours, minutes, seconds []int, t time.Time) time.Time {
	y, mo, d := day.Date()
	lastMin, lastSec := minutes[len(minutes)-1], seconds[len(seconds)-1]
	for _, h := range hours {
		if !resolveWall(y, mo, d, h, lastMin, lastSec, c.loc).After(t) {
			continue
		}
		for _, m := range minutes {
			if !resolveWall(y, mo, d, h, m, lastSec, c.loc).After(t) {
				continue
			}
			for _, s := range seconds {
				if at := resolveWall(y, mo, d, h, m, s, c.loc); at.After(t) {
					return at
				}
			}
		}
	}
	return time.Time{}
}

// resolveWall maps a wall-clock time in loc to one instant: a time inside a spring-forward gap
// moves forward by the gap's length; a time that occurs twice on a fall-back day maps to its
// first occurrence.
func resolveWall(y int, mo time.Month, d, h, m, s int, loc *time.Location) time.Time {
	at := time.Date(y, mo, d, h, m, s, 0, loc)
	if ah, am, as := at.Clock(); ah != h || am != m || as != s {
		// In a spring-forward gap (Go may pick either offset): read the wall time with the
		// offset in force before the gap, which lands after it by the gap's length.
		_, offBefore := at.Add(-6 * time.Hour).Zone()
		return time.Date(y, mo, d, h, m, s, 0, time.UTC).Add(-time.Duration(offBefore) * time.Second).In(loc)
	}
	_, offNow := at.Zone()
	_, offBefore := at.Add(-6 * time.Hour).Zone()
	if offBefore > offNow {
		// A fall-back transition happened in the last hours: the same wall time may also exist
		// at the earlier (pre-transition) offset.
		earlier := at.Add(-time.Duration(offBefore-offNow) * time.Second)
		if eh, em, es := earlier.In(loc).Clock(); eh == h && em == m && es == s && earlier.In(loc).Day() == d {
			return earlier
		}
	}
	return at
}
