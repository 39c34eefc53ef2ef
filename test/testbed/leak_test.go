package testbed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// The leak test re-runs this test binary as a child that starts its own test bed and then
// ends in one of three ways; the parent checks what the child left behind.
const (
	leakModeEnv = "LOCKSTEP_TESTBED_LEAK_MODE"
	leakOutEnv  = "LOCKSTEP_TESTBED_LEAK_OUT"
)

type leakReport struct {
	Pids map[string]int `json:"pids"`
	Dir  string         `json:"dir"`
}

// runLeakChild is the child's side; it never returns.
func runLeakChild(mode string) {
	env, err := testbed.Start(context.Background(), testbed.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: start:", err)
		os.Exit(3)
	}
	data, _ := json.Marshal(leakReport{Pids: env.Pids(), Dir: env.Dir})
	if err := os.WriteFile(os.Getenv(leakOutEnv), data, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "child: report:", err)
		os.Exit(3)
	}
	switch mode {
	case "stop":
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "child: stop:", err)
			os.Exit(3)
		}
		os.Exit(0)
	case "panic":
		panic("child test bed: deliberate panic")
	default: // "interrupt": wait for the parent's SIGINT, which ends a test binary at once.
		select {}
	}
}

// processGone reports whether pid no longer runs (absent, or a zombie awaiting its reaper).
func processGone(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// Field 3, after the parenthesised command name, is the state.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func TestNoLeakedProcessesOrDirs(t *testing.T) {
	framework.Env(t) // needs the binaries; skipped in unit-only runs.
	for _, mode := range []string{"stop", "panic", "interrupt"} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), leakModeEnv+"="+mode, leakOutEnv+"="+out)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var report leakReport
			framework.Eventually(t, 2*time.Minute, func(context.Context) error {
				data, err := os.ReadFile(out)
				if err != nil {
					return fmt.Errorf("child has not reported (stderr: %s)", stderr.String())
				}
				return json.Unmarshal(data, &report)
			})
			if mode == "interrupt" {
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			switch {
			case mode == "stop" && err != nil:
				t.Fatalf("child failed: %v\n%s", err, stderr.String())
			case mode != "stop" && !errors.As(err, &exit):
				t.Fatalf("child should have died abnormally, got %v", err)
			}
			if len(report.Pids) != 2 {
				t.Fatalf("child reported %v, want etcd and kube-apiserver", report.Pids)
			}
			framework.Eventually(t, 15*time.Second, func(context.Context) error {
				for name, pid := range report.Pids {
					if !processGone(pid) {
						return fmt.Errorf("%s (pid %d) still running after the child ended by %s", name, pid, mode)
					}
				}
				return nil
			})
			if mode != "stop" {
				// Nothing in the dead child could remove its directory; the next test bed does.
				testbed.SweepStaleDirs()
			}
			if _, err := os.Stat(report.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("test bed directory %s left behind (stat: %v)", report.Dir, err)
			}
		})
	}
}
