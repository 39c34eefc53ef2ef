package testbed

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestUnescapeMount(t *testing.T) {
	tests := map[string]string{
		"/tmp/plain":              "/tmp/plain",
		`/tmp/with\040space`:      "/tmp/with space",
		`/tmp/tab\011and\134back`: "/tmp/tab\tand\\back",
		`/tmp/short\04`:           `/tmp/short\04`,
		`/tmp/not\999octal`:       `/tmp/not\999octal`,
	}
	for in, want := range tests {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// A machine that cannot run the real node gets an error naming what is missing and the command
// that prepares it, never a skip.
func TestRealNodeHostCheckNamesThePrepareCommand(t *testing.T) {
	_, err := Start(t.Context(), Options{BinRoot: t.TempDir(), RealNodes: 1})
	if err == nil {
		t.Fatal("a real node started without its binaries")
	}
	for _, want := range []string{"kubelet", "containerd", "runc", "pause.tar", "`" + RealNodePrepareCommand + "`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := Start(t.Context(), Options{RealNodes: 2}); err == nil || !strings.Contains(err.Error(), "0 or 1") {
		t.Errorf("two real nodes: %v, want a refusal", err)
	}
}

func TestKwokPodCIDRDefaultsAndValidation(t *testing.T) {
	o, err := Options{BinRoot: "x"}.withDefaults()
	if err != nil || o.KwokPodCIDR != "10.244.0.0/16" {
		t.Fatalf("default: %q, %v", o.KwokPodCIDR, err)
	}
	if _, err := (Options{BinRoot: "x", KwokPodCIDR: "127.64.0.0/16"}).withDefaults(); err != nil {
		t.Fatalf("a loopback range: %v", err)
	}
	if _, err := (Options{BinRoot: "x", KwokPodCIDR: "not-a-range"}).withDefaults(); err == nil {
		t.Fatal("a bad range was accepted")
	}
}

// The cleanup finds the node's CNI cache entries by its network's name (the bed directory's),
// whatever network namespace they name, and leaves other networks' entries alone; a state file
// written before the network was recorded gives the same name.
func TestCNICacheEntriesOfTheNode(t *testing.T) {
	cache := t.TempDir()
	write := func(name, netns string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(cache, name), []byte(`{"netns":"`+netns+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const bed = "/tmp/lockstep-testbed-1-abc"
	write("lockstep-testbed-1-abc-0123-eth0", "/var/run/netns/cni-1") // the bridge network's
	write("cni-loopback-4567-lo", bed+"/node/run/netns/cni-2")        // containerd's loopback, in the node's netns
	write("lockstep-testbed-2-def-89ab-eth0", "/var/run/netns/cni-3") // another bed's
	write("kindnet-cdef-eth0", "/var/run/netns/cni-4")                // another CNI's
	want := []string{"cni-loopback-4567-lo", "lockstep-testbed-1-abc-0123-eth0"}
	for name, st := range map[string]realNodeState{
		"recorded network":     {Dir: bed + "/node", Network: "lockstep-testbed-1-abc"},
		"state from before it": {Dir: bed + "/node"},
	} {
		var got []string
		for _, f := range st.cniCacheFiles(cache) {
			got = append(got, filepath.Base(f))
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: entries %v, want %v", name, got, want)
		}
	}
}
