// Package procstat reads a process's CPU time from Linux's /proc/<pid>/stat, so the load
// harness can report what a real process (an ingress pod's Caddy) used as its pod's usage.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ticksPerSecond is Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is
// 100 on every architecture Go supports on Linux (sysconf(_SC_CLK_TCK) needs cgo to ask).
const ticksPerSecond = 100

// CPUSeconds is the CPU time (user and system) process pid has used so far.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	return Parse(b)
}

// Parse returns the CPU seconds (utime + stime) in the contents of a /proc/<pid>/stat file. The
// command name, field 2, is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func Parse(stat []byte) (float64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("process stat: no command name")
	}
	// After the name: state (field 3), then fields 4 onwards; utime and stime are 14 and 15.
	fields := bytes.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("process stat: %d fields after the command name, want at least %d", len(fields), stime+1)
	}
	var ticks uint64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseUint(string(fields[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process stat field %d: %w", i+3, err)
		}
		if ticks+n < ticks {
			return 0, errors.New("process stat: CPU time overflows")
		}
		ticks += n
	}
	return float64(ticks) / ticksPerSecond, nil
}
