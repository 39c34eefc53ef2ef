package demoapi

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBurnCPU checks that a burnt request really uses its work as CPU time, which is what a
// real pod's kubelet measures and its CPU limit throttles.
func TestBurnCPU(t *testing.T) {
	before := processCPU(t)
	BurnCPU(clock.RealClock{}, 50*time.Millisecond)
	if used := processCPU(t) - before; used < 45*time.Millisecond {
		t.Fatalf("burning 50 ms used %s of CPU", used)
	}
}
