//go:build e2e

package scenario_test

import (
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/load/loadgen"
)

// hpaSyncPeriod is the controller manager's default, as users run it.
const hpaSyncPeriod = 15 * time.Second

// The full sales event (make e2e): 50 req/s for a minute, a ramp to 100, a step to 500 held for
// four minutes, and back for two.
func TestFullSalesEvent(t *testing.T) {
	playSalesEvent(t, run{
		name:       "full-sales-event",
		schedule:   loadgen.Step(50, 10, time.Minute, time.Minute, 4*time.Minute, 2*time.Minute),
		warmUpLead: time.Minute,
	})
}
