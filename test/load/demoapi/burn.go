package demoapi

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

// BurnCPU spins until the calling thread has used work of CPU time. A CPU limit stretches the
// wall time it takes, as it does a real request's. Without a thread CPU clock it spins for
// work on clk instead.
func BurnCPU(clk clock.PassiveClock, work time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	used, ok := threadCPU()
	if !ok {
		for start := clk.Now(); clk.Since(start) < work; {
		}
		return
	}
	for until := used + work; ; {
		now, ok := threadCPU()
		if !ok || now >= until {
			return
		}
	}
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
