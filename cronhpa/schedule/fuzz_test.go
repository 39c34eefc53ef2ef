package schedule

import (
	"testing"
	"time"
)

// FuzzParse checks that any schedule string either fails to parse or yields activations that
// move strictly forward, and that MostRecent never returns a time outside its window.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"30 */1 * * * *", "0 9 * * 1-5", "@hourly", "@every 1m30s", "@date 2026-11-11 00:00:00",
		"0 0 0 29 2 *", "? ? ? ? ? ?", "*/0 * * * * *", "@every -1s", "0 30 2 * * *", "0-59/7 1,2,3 * * JAN-DEC SUN-SAT",
	} {
		f.Add(seed, int64(1795000000))
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		if unix < 0 || unix > 1<<34 {
			return
		}
		now := time.Unix(unix, 0)
		s, err := Parse(spec, ny, now.Add(-time.Hour))
		if err != nil {
			return
		}
		prev := now
		for range 5 {
			next := s.Next(prev)
			if next.IsZero() {
				break
			}
			if !next.After(prev) {
				t.Fatalf("Next(%s) = %s does not move forward for %q", prev, next, spec)
			}
			prev = next
		}
		after := now.Add(-48 * time.Hour)
		if mr := MostRecent(s, after, now); !mr.IsZero() && (!mr.After(after) || mr.After(now)) {
			t.Fatalf("MostRecent = %s outside (%s, %s] for %q", mr, after, now, spec)
		}
	})
}

// FuzzParseExclusions checks that excludeDates parsing never panics.
func FuzzParseExclusions(f *testing.F) {
	for _, seed := range []string{"* * * 15 11 *", "* * * * * 5", "* * 11 11 *", "@daily", "", "* * * 32 13 *"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		ex, err := ParseExclusions([]string{entry}, time.UTC)
		if err != nil {
			return
		}
		_ = ex.Excludes(time.Unix(1795000000, 0))
	})
}
