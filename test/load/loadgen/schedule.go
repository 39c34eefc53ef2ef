package loadgen

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxDuration bounds a schedule: results are kept per second, so a run's memory follows its length.
const MaxDuration = 6 * time.Hour

// Phase is one stretch of a schedule: the rate moves linearly from From to To requests per
// second over Duration (equal rates hold it).
type Phase struct {
	Name     string
	Duration time.Duration
	From, To float64
}

// Schedule is the phases of a run, in order.
type Schedule []Phase

// Validate refuses empty or unbounded schedules, negative or non-finite rates.
func (s Schedule) Validate() error {
	if len(s) == 0 {
		return errors.New("the schedule has no phase")
	}
	var total time.Duration
	for i, p := range s {
		switch {
		case p.Duration <= 0:
			return fmt.Errorf("phase %d (%s): duration %s must be positive", i, p.Name, p.Duration)
		case p.From < 0 || p.To < 0 || math.IsNaN(p.From) || math.IsNaN(p.To) || math.IsInf(p.From, 0) || math.IsInf(p.To, 0):
			return fmt.Errorf("phase %d (%s): rates %g → %g must be finite and not negative", i, p.Name, p.From, p.To)
		}
		total += p.Duration
	}
	if total > MaxDuration {
		return fmt.Errorf("the schedule lasts %s, more than %s", total, MaxDuration)
	}
	return nil
}

// Duration is the schedule's total length.
func (s Schedule) Duration() time.Duration {
	var total time.Duration
	for _, p := range s {
		total += p.Duration
	}
	return total
}

// At returns the phase and the target rate at offset t (the last phase's end rate past the end).
func (s Schedule) At(t time.Duration) (Phase, float64) {
	for _, p := range s {
		if t < p.Duration {
			return p, p.From + (p.To-p.From)*t.Seconds()/p.Duration.Seconds()
		}
		t -= p.Duration
	}
	if len(s) == 0 {
		return Phase{}, 0
	}
	last := s[len(s)-1]
	return last, last.To
}

// Expected is the number of requests the schedule sends in total (the integral of its rate).
func (s Schedule) Expected() float64 {
	var n float64
	for _, p := range s {
		n += (p.From + p.To) / 2 * p.Duration.Seconds()
	}
	return n
}

// SendTime is the offset at which request k (counting from 0) leaves: when the integral of the
// rate reaches k. The spacing is deterministic, so two runs of a schedule send alike, and each
// second holds the requests its rate asks for. ok is false once the schedule sends no more.
func (s Schedule) SendTime(n float64) (time.Duration, bool) {
	var start time.Duration
	for _, p := range s {
		d := p.Duration.Seconds()
		in := (p.From + p.To) / 2 * d
		if n < in {
			a, b := p.From, (p.To-p.From)/d // rate a + b·t
			var t float64
			if math.Abs(b) < 1e-12 {
				t = n / a
			} else {
				// a·t + b·t²/2 = n
				t = (-a + math.Sqrt(math.Max(a*a+2*b*n, 0))) / b
			}
			return start + time.Duration(math.Min(math.Max(t, 0), d)*float64(time.Second)), true
		}
		n -= in
		start += p.Duration
	}
	return 0, false
}

// Step is the sales-event shape: a baseline, a ramp to twice it, a step to factor times the
// baseline, held, and back to the baseline.
func Step(baseline, factor float64, warm, ramp, hold, cool time.Duration) Schedule {
	return Schedule{
		{Name: "baseline", Duration: warm, From: baseline, To: baseline},
		{Name: "ramp", Duration: ramp, From: baseline, To: 2 * baseline},
		{Name: "step", Duration: hold, From: factor * baseline, To: factor * baseline},
		{Name: "back", Duration: cool, From: baseline, To: baseline},
	}
}
