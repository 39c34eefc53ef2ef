package testbed

import (
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
