// Package leaderelect holds the leader election timing Lockstep's controllers share, and the
// flags that set it.
package leaderelect

import (
	"flag"
	"fmt"
	"time"
)

// Defaults. A standby sees the lease expire 10 s after it last saw it renewed (up to one retry
// period after the renewal) and tries again every retry period (jitter up to 1.2×): a crashed
// leader is replaced within 10 + 2 × 1.2 × 1 ≈ 12.4 s. On shutdown the leader releases the
// lease, so a rolling update hands over at once.
const (
	DefaultLeaseDuration = 10 * time.Second
	DefaultRenewDeadline = 7 * time.Second
	DefaultRetryPeriod   = time.Second
)

// Timing is a leader election's lease duration, renew deadline and retry period.
type Timing struct {
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Defaults returns the default timing.
func Defaults() Timing {
	return Timing{LeaseDuration: DefaultLeaseDuration, RenewDeadline: DefaultRenewDeadline, RetryPeriod: DefaultRetryPeriod}
}

// BindFlags registers --leader-elect-lease-duration, --leader-elect-renew-deadline and
// --leader-elect-retry-period on fs, defaulting to t.
func (t *Timing) BindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&t.LeaseDuration, "leader-elect-lease-duration", t.LeaseDuration, "how long a standby waits after the leader's last renewal before taking over (a crashed leader is replaced within about this plus the retry period)")
	fs.DurationVar(&t.RenewDeadline, "leader-elect-renew-deadline", t.RenewDeadline, "how long the leader keeps trying to renew before it stops acting")
	fs.DurationVar(&t.RetryPeriod, "leader-elect-retry-period", t.RetryPeriod, "how often the leader renews and standbys try to take over")
}

// Validate checks the timing the way client-go requires it:
// lease > renew deadline > 1.2 × retry period > 0.
func Validate(lease, renew, retry time.Duration) error {
	switch {
	case retry <= 0:
		return fmt.Errorf("leader election retry period must be positive, got %s", retry)
	case lease <= renew:
		return fmt.Errorf("leader election lease duration (%s) must be longer than the renew deadline (%s)", lease, renew)
	case float64(renew) <= 1.2*float64(retry):
		return fmt.Errorf("leader election renew deadline (%s) must be longer than 1.2 times the retry period (%s)", renew, retry)
	}
	return nil
}
