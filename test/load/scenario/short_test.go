//go:build !e2e

package scenario_test

import (
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/load/loadgen"
)

// hpaSyncPeriod is shortened (users run 15 s) so that the short event fits in make test; both
// sides have the same.
const hpaSyncPeriod = 5 * time.Second

// The short sales event (make test): 20 req/s, a ramp to 40, a step to 200 for a minute, and
// back.
func TestShortSalesEvent(t *testing.T) {
	playSalesEvent(t, run{
		name:       "short-sales-event",
		schedule:   loadgen.Step(20, 10, 20*time.Second, 10*time.Second, 60*time.Second, 15*time.Second),
		warmUpLead: 15 * time.Second,
	})
}
