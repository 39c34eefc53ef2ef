package testbed

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix starts every temporary test bed directory; the owner's PID follows it.
const dirPrefix = "lockstep-testbed-"

// sweepStaleDirs removes temporary test bed directories whose owning process no longer exists.
// A test binary that panics or is killed cannot run Stop; its children die with it (PDEATHSIG)
// and the next test bed to start removes what it left on disk.
//
// A directory whose bed ran a real node is left to the next real node (which holds the host
// lock while it cleans up), unless the lock is free now.
func sweepStaleDirs() {
	var realNodes bool
	for _, dir := range staleDirs() {
		if _, err := os.Stat(filepath.Join(dir, realNodeStateFile)); err == nil {
			realNodes = true
			continue
		}
		_ = os.RemoveAll(dir)
	}
	if !realNodes {
		return
	}
	if f, err := os.OpenFile(realNodeLockPath(), os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			sweepStaleRealNodes()
		}
		_ = f.Close()
	}
}

// staleDirs returns the temporary test bed directories whose owning process no longer exists.
func staleDirs() []string {
	var out []string
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range matches {
		rest := strings.TrimPrefix(filepath.Base(dir), dirPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			out = append(out, dir)
		}
	}
	return out
}
