package procstat

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       float64
		err        string
	}{
		{name: "caddy", stat: "4242 (caddy) S 1 4242 4242 0 -1 4194560 2917 0 0 0 153 47 0 0 20 0 9 0 1234 1 2 3", want: 2},
		{name: "a name with spaces and parentheses", stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 1", want: 0.1},
		{name: "no name", stat: "7 a R 1", err: "no command name"},
		{name: "cut short", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 5", err: "fields after the command name"},
		{name: "not a number", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 5 x 0 0", err: "field 15"},
		{name: "overflow", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 18446744073709551615 1 0 0", err: "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.stat))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse: %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// sink keeps the busy loop from being optimised away.
var sink int

// This test process's own CPU time grows while it works.
func TestCPUSecondsOfThisProcess(t *testing.T) {
	before, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		for i := range 10_000_000 {
			sink += i
		}
		after, err := CPUSeconds(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after >= before+0.2 {
			return
		}
	}
	t.Fatal("3 s of busy work did not show as 0.2 s of CPU time")
}

func TestCPUSecondsOfNoProcess(t *testing.T) {
	if _, err := CPUSeconds(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("4242 (caddy) S 1 4242 4242 0 -1 4194560 2917 0 0 0 153 47 0 0 20 0 9 0 1234"))
	f.Add([]byte("7 (a) b) R"))
	f.Fuzz(func(t *testing.T, stat []byte) {
		secs, err := Parse(stat)
		if err == nil && secs < 0 {
			t.Fatalf("negative CPU time %v", secs)
		}
	})
}
