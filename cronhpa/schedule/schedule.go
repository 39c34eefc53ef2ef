// Package schedule turns CronHPA schedule strings into activation times. It is pure: every
// function takes the current time as an argument, so tests run on a fake clock.
//
// Daylight saving time, the rule Lockstep follows (documented in cronhpa/README.md):
//   - a wall-clock time that does not exist on a spring-forward day (02:30 in New York on the
//     second Sunday of March) runs once, shifted forward by the length of the gap (03:30);
//   - a wall-clock time that occurs twice on a fall-back day (01:30 on the first Sunday of
//     November) runs once, at its first occurrence.
//
// So a job's time of day runs exactly once per matching day, never twice and never skipped.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule yields the activation times of one job.
type Schedule interface {
	// Next returns the first activation strictly after t, or the zero time if there is none.
	Next(t time.Time) time.Time
}

// DateLayout is the layout of one-shot schedules: "@date 2026-11-11 00:00:00".
const DateLayout = "2006-01-02 15:04:05"

// searchHorizon bounds the search for the next matching day. Eight years covers a 29 February
// job across a century year that is not a leap year.
const searchHorizon = 8 * 366

// parser accepts five fields, or six with seconds first (the reference's format), "?" and
// the @yearly/@monthly/@weekly/@daily/@hourly descriptors. @every and @date are handled here.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a job schedule in the time zone loc. anchor is the origin of @every intervals
// (the object's creation time), so that their activation times survive controller restarts.
func Parse(spec string, loc *time.Location, anchor time.Time) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, errors.New("schedule is empty")
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, fmt.Errorf("schedule %q: set the time zone in spec.timezone, not in the schedule", spec)
	case strings.HasPrefix(spec, "@date"):
		return parseDate(spec, loc)
	case strings.HasPrefix(spec, "@every"):
		return parseEvery(spec, anchor)
	}
	parsed, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	s, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %q: unsupported form", spec)
	}
	c := &calendar{fields: fieldsOf(s), loc: loc}
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, fmt.Errorf("schedule %q never matches a date", spec)
	}
	return c, nil
}

// oneShot is "@date YYYY-MM-DD HH:MM:SS": a single activation.
type oneShot struct{ at time.Time }

func parseDate(spec string, loc *time.Location) (Schedule, error) {
	value := strings.TrimSpace(strings.TrimPrefix(spec, "@date"))
	at, err := time.ParseInLocation(DateLayout, value, loc)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: @date takes %q: %w", spec, "YYYY-MM-DD hh:mm:ss", err)
	}
	return oneShot{at: resolveWall(at.Year(), at.Month(), at.Day(), at.Hour(), at.Minute(), at.Second(), loc)}, nil
}

// Next returns the date if it is after t.
func (o oneShot) Next(t time.Time) time.Time {
	if o.at.After(t) {
		return o.at
	}
	return time.Time{}
}

// every is "@every <duration>": activations at anchor + k·interval, k ≥ 1.
type every struct {
	anchor   time.Time
	interval time.Duration
}

func parseEvery(spec string, anchor time.Time) (Schedule, error) {
	value := strings.TrimSpace(strings.TrimPrefix(spec, "@every"))
	d, err := time.ParseDuration(value)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: @every takes a duration such as 1m30s: %w", spec, err)
	}
	if d < time.Second || d%time.Second != 0 {
		return nil, fmt.Errorf("schedule %q: @every needs a whole number of seconds, at least 1s", spec)
	}
	return every{anchor: anchor.Truncate(time.Second), interval: d}, nil
}

// Next returns the first anchor + k·interval after t.
func (e every) Next(t time.Time) time.Time {
	if t.Before(e.anchor) {
		return e.anchor.Add(e.interval)
	}
	k := t.Sub(e.anchor)/e.interval + 1
	return e.anchor.Add(k * e.interval)
}

// MostRecent returns the latest activation t with after < t ≤ now, or the zero time if there is
// none. It asks Next O(log((now-after)/1s)) times, so a long downtime costs little.
func MostRecent(s Schedule, after, now time.Time) time.Time {
	after = after.Truncate(time.Second)
	first := s.Next(after)
	if first.IsZero() || first.After(now) {
		return time.Time{}
	}
	// Invariant: Next(lo) ≤ now < Next(hi). Activations are whole seconds, so when hi-lo is
	// one second, Next(lo) is the last activation not after now.
	lo, hi := after, now.Truncate(time.Second)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
		if n := s.Next(mid); !n.IsZero() && !n.After(now) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s.Next(lo)
}
