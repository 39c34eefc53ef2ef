package scenario

import (
	"flag"
	"fmt"
	"time"

	"github.com/lockstep-dev/lockstep/test/load/loadgen"
)

// Load is the sales event's load per side and its timing, as the demo and the kind load test
// take them from flags.
type Load struct {
	// Rate is the requests per second before and after the sale; the ramp goes to twice it and
	// the sale is Factor times it.
	Rate, Factor float64
	// Before, Ramp, Sale and After are the phases' lengths (loadgen.Step).
	Before, Ramp, Sale, After time.Duration
	// WarmUpLead is how long before the sale Lockstep's CronHPAs raise the floors.
	WarmUpLead time.Duration
}

// DefaultLoad is `make demo`'s sale: 40 requests per second, 400 for 90 s.
var DefaultLoad = Load{Rate: 40, Factor: 10, Before: 30 * time.Second, Ramp: 10 * time.Second,
	Sale: 90 * time.Second, After: 30 * time.Second, WarmUpLead: 15 * time.Second}

// Bind registers the load's flags on fs with def's values as defaults.
func (l *Load) Bind(fs *flag.FlagSet, def Load) {
	fs.Float64Var(&l.Rate, "rate", def.Rate, "requests per second each shop gets before and after the sale")
	fs.Float64Var(&l.Factor, "factor", def.Factor, "the sale's load as a multiple of --rate")
	fs.DurationVar(&l.Before, "before", def.Before, "time at --rate before the ramp")
	fs.DurationVar(&l.Ramp, "ramp", def.Ramp, "time ramping to twice --rate before the sale")
	fs.DurationVar(&l.Sale, "sale", def.Sale, "how long the sale's load lasts")
	fs.DurationVar(&l.After, "after", def.After, "time at --rate after the sale")
	fs.DurationVar(&l.WarmUpLead, "warm-up-lead", def.WarmUpLead, "how long before the sale Lockstep's CronHPAs raise the floors")
}

// Schedule is the load generator's schedule.
func (l Load) Schedule() loadgen.Schedule {
	return loadgen.Step(l.Rate, l.Factor, l.Before, l.Ramp, l.Sale, l.After)
}

// Validate refuses a load the sale cannot be played with, naming the flag.
func (l Load) Validate() error {
	if l.Rate <= 0 {
		return fmt.Errorf("--rate %g: want more than 0 requests per second", l.Rate)
	}
	if l.Factor < 2 {
		return fmt.Errorf("--factor %g: the sale must be at least twice --rate", l.Factor)
	}
	if err := l.Schedule().Validate(); err != nil {
		return fmt.Errorf("the load (--before, --ramp, --sale, --after): %w", err)
	}
	if l.WarmUpLead < 0 || l.WarmUpLead > l.Before+l.Ramp {
		return fmt.Errorf("--warm-up-lead %s: want between 0 and --before plus --ramp (%s)", l.WarmUpLead, l.Before+l.Ramp)
	}
	return nil
}
