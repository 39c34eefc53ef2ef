package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return loc
}

func at(loc *time.Location, s string) time.Time {
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		panic(err)
	}
	return v
}

// nextN returns the first n activations after from.
func nextN(s Schedule, from time.Time, n int) []time.Time {
	var out []time.Time
	for t := from; len(out) < n; {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func TestNext(t *testing.T) {
	utc := time.UTC
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	shanghai := mustLoad(t, "Asia/Shanghai")
	anchor := at(utc, "2026-11-01 00:00:07")
	tests := map[string]struct {
		spec string
		loc  *time.Location
		from time.Time
		want []time.Time // expressed in UTC
	}{
		"six fields, seconds first (the reference's format)": {
			spec: "30 */1 * * * *", loc: utc, from: at(utc, "2026-11-22 10:00:00"),
			want: []time.Time{at(utc, "2026-11-22 10:00:30"), at(utc, "2026-11-22 10:01:30"), at(utc, "2026-11-22 10:02:30")},
		},
		"five fields": {
			spec: "0 9 * * 1-5", loc: utc, from: at(utc, "2026-11-20 09:00:00"), // a Friday
			want: []time.Time{at(utc, "2026-11-23 09:00:00"), at(utc, "2026-11-24 09:00:00")},
		},
		"question mark in day of week": {
			spec: "0 0 0 1 * ?", loc: utc, from: at(utc, "2026-11-22 00:00:00"),
			want: []time.Time{at(utc, "2026-12-01 00:00:00"), at(utc, "2027-01-01 00:00:00")},
		},
		"descriptor @hourly": {
			spec: "@hourly", loc: utc, from: at(utc, "2026-11-22 10:15:00"),
			want: []time.Time{at(utc, "2026-11-22 11:00:00"), at(utc, "2026-11-22 12:00:00")},
		},
		"descriptor @daily in the object's time zone": {
			spec: "@daily", loc: shanghai, from: at(utc, "2026-11-22 10:15:00"),
			want: []time.Time{at(utc, "2026-11-22 16:00:00"), at(utc, "2026-11-23 16:00:00")},
		},
		"@every counts from the anchor, not from now": {
			spec: "@every 1m30s", loc: utc, from: at(utc, "2026-11-01 00:02:00"),
			want: []time.Time{at(utc, "2026-11-01 00:03:07"), at(utc, "2026-11-01 00:04:37")},
		},
		"@date runs once, in the object's time zone": {
			spec: "@date 2026-11-11 00:00:00", loc: shanghai, from: at(utc, "2026-11-01 00:00:00"),
			want: []time.Time{at(utc, "2026-11-10 16:00:00")},
		},
		"@date in the past never runs": {
			spec: "@date 2020-11-11 00:00:00", loc: utc, from: at(utc, "2026-11-01 00:00:00"),
			want: nil,
		},
		"leap day": {
			spec: "0 0 12 29 2 *", loc: utc, from: at(utc, "2026-03-01 00:00:00"),
			want: []time.Time{at(utc, "2028-02-29 12:00:00"), at(utc, "2032-02-29 12:00:00")},
		},
		"day of month OR day of week when both are set": {
			spec: "0 0 0 13 * 5", loc: utc, from: at(utc, "2026-11-01 00:00:00"), // Fridays, or the 13th
			want: []time.Time{at(utc, "2026-11-06 00:00:00"), at(utc, "2026-11-13 00:00:00"), at(utc, "2026-11-20 00:00:00")},
		},
		"New York spring forward: 02:30 does not exist and runs once at 03:30 EDT": {
			spec: "0 30 2 * * *", loc: ny, from: at(ny, "2027-03-13 00:00:00"),
			want: []time.Time{at(utc, "2027-03-13 07:30:00"), at(utc, "2027-03-14 07:30:00"), at(utc, "2027-03-15 06:30:00")},
		},
		"New York fall back: 01:30 happens twice and runs once, at the first": {
			spec: "0 30 1 * * *", loc: ny, from: at(ny, "2026-10-31 12:00:00"),
			want: []time.Time{at(utc, "2026-11-01 05:30:00"), at(utc, "2026-11-02 06:30:00")},
		},
		"New York fall back: an hourly job does not repeat the doubled hour": {
			spec: "0 30 * * * *", loc: ny, from: at(utc, "2026-11-01 04:00:00"),
			want: []time.Time{at(utc, "2026-11-01 04:30:00"), at(utc, "2026-11-01 05:30:00"), at(utc, "2026-11-01 07:30:00")},
		},
		"Berlin spring forward: 02:30 runs at 03:30 CEST": {
			spec: "0 30 2 * * *", loc: berlin, from: at(utc, "2027-03-27 12:00:00"),
			want: []time.Time{at(utc, "2027-03-28 01:30:00"), at(utc, "2027-03-29 00:30:00")},
		},
		"Berlin fall back: 02:30 runs once, in CEST": {
			spec: "0 30 2 * * *", loc: berlin, from: at(utc, "2026-10-24 12:00:00"),
			want: []time.Time{at(utc, "2026-10-25 00:30:00"), at(utc, "2026-10-26 01:30:00")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(tc.spec, tc.loc, anchor)
			if err != nil {
				t.Fatal(err)
			}
			got := nextN(s, tc.from, len(tc.want)+1)
			if len(tc.want) < len(got) && len(tc.want) > 0 {
				got = got[:len(tc.want)]
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Errorf("activation %d = %s, want %s", i, got[i].UTC(), tc.want[i].UTC())
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct{ spec, want string }{
		"empty":                 {"", "empty"},
		"garbage":               {"every day", "expected"},
		"too many fields":       {"0 0 0 0 0 0 0", "expected"},
		"minute out of range":   {"0 61 * * * *", "above maximum"},
		"bad @date layout":      {"@date 11/11/2026", "@date takes"},
		"@every below 1s":       {"@every 500ms", "at least 1s"},
		"@every not a duration": {"@every often", "@every takes"},
		"zone in the schedule":  {"CRON_TZ=Asia/Shanghai 0 0 * * *", "spec.timezone"},
		"never matches":         {"0 0 0 31 2 *", "never matches"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.spec, time.UTC, time.Time{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.spec, err, tc.want)
			}
		})
	}
}

func TestMostRecent(t *testing.T) {
	utc := time.UTC
	minutely, _ := Parse("0 * * * * *", utc, time.Time{})
	daily, _ := Parse("0 0 9 * * *", utc, time.Time{})
	date, _ := Parse("@date 2026-11-11 00:00:00", utc, time.Time{})
	tests := map[string]struct {
		s          Schedule
		after, now time.Time
		want       time.Time
	}{
		"latest of many":              {minutely, at(utc, "2026-11-22 08:00:00"), at(utc, "2026-11-22 10:17:42"), at(utc, "2026-11-22 10:17:00")},
		"exactly now":                 {minutely, at(utc, "2026-11-22 08:00:00"), at(utc, "2026-11-22 10:17:00"), at(utc, "2026-11-22 10:17:00")},
		"none since after":            {daily, at(utc, "2026-11-22 09:00:00"), at(utc, "2026-11-22 18:00:00"), time.Time{}},
		"after a month of downtime":   {daily, at(utc, "2026-10-01 12:00:00"), at(utc, "2026-11-22 08:00:00"), at(utc, "2026-11-21 09:00:00")},
		"one-shot passed":             {date, at(utc, "2026-11-01 00:00:00"), at(utc, "2026-11-22 00:00:00"), at(utc, "2026-11-11 00:00:00")},
		"one-shot already handled":    {date, at(utc, "2026-11-11 00:00:00"), at(utc, "2026-11-22 00:00:00"), time.Time{}},
		"one-shot not yet due":        {date, at(utc, "2026-11-01 00:00:00"), at(utc, "2026-11-10 23:59:59"), time.Time{}},
		"sub-second now after a tick": {minutely, at(utc, "2026-11-22 10:00:00"), at(utc, "2026-11-22 10:01:00").Add(300 * time.Millisecond), at(utc, "2026-11-22 10:01:00")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := MostRecent(tc.s, tc.after, tc.now)
			if !got.Equal(tc.want) {
				t.Fatalf("MostRecent = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestExclusions(t *testing.T) {
	utc := time.UTC
	shanghai := mustLoad(t, "Asia/Shanghai")
	tests := map[string]struct {
		entries []string
		loc     *time.Location
		day     time.Time
		want    bool
	}{
		"every 15 November, any hour":           {[]string{"* * * 15 11 *"}, utc, at(utc, "2026-11-15 23:30:00"), true},
		"not the 16th":                          {[]string{"* * * 15 11 *"}, utc, at(utc, "2026-11-16 00:00:00"), false},
		"hour fields do not narrow the day":     {[]string{"0 0 3 15 11 *"}, utc, at(utc, "2026-11-15 18:00:00"), true},
		"every Friday":                          {[]string{"* * * * * 5"}, utc, at(utc, "2026-11-20 12:00:00"), true},
		"not Saturday":                          {[]string{"* * * * * 5"}, utc, at(utc, "2026-11-21 12:00:00"), false},
		"day is taken in the object's zone":     {[]string{"* * * 15 11 *"}, shanghai, at(utc, "2026-11-14 17:00:00"), true},
		"five fields work too":                  {[]string{"* * 11 11 *"}, utc, at(utc, "2026-11-11 01:00:00"), true},
		"several entries":                       {[]string{"* * * 1 1 *", "* * * 25 12 *"}, utc, at(utc, "2026-12-25 08:00:00"), true},
		"no entries":                            {nil, utc, at(utc, "2026-12-25 08:00:00"), false},
		"month and day both set, both required": {[]string{"* * * 11 11 *"}, utc, at(utc, "2026-10-11 08:00:00"), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ex, err := ParseExclusions(tc.entries, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := ex.Excludes(tc.day); got != tc.want {
				t.Fatalf("Excludes(%s) = %v, want %v", tc.day, got, tc.want)
			}
		})
	}
	if _, err := ParseExclusions([]string{"@daily"}, utc); err == nil {
		t.Fatal("a descriptor in excludeDates must be an error")
	}
	if _, err := ParseExclusions([]string{"15 November"}, utc); err == nil {
		t.Fatal("free text in excludeDates must be an error")
	}
}
