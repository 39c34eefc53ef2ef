package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// demoCIDR is this package's loopback range for pods, apart from other packages' tests.
const demoCIDR = "127.68.0.0/16"

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{
		ControllerManager: true, Scheduler: true, Kwok: true, Nodes: 1, KwokPodCIDR: demoCIDR,
		MetricsServer: true, HPASyncPeriod: 5 * time.Second,
	})
}

// TestDemoPlaysAndPlots plays the demo's sale on a short clock and checks what a newcomer gets:
// the introduction, a live line for each shop, the side-by-side figures, and the timeline
// written as JSON and as a PNG that decodes. The scenario's behaviour is checked by
// test/load/scenario.
func TestDemoPlaysAndPlots(t *testing.T) {
	o, err := parseFlags([]string{
		"--repo", filepath.Join("..", ".."), "--out", t.TempDir(), "--pod-cidr", demoCIDR,
		"--rate", "10", "--before", "10s", "--ramp", "5s", "--sale", "20s", "--after", "5s", "--warm-up-lead", "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	path, err := play(context.Background(), framework.Env(t), o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"A flash sale, played twice at once", "sale-lockstep", "sale-baseline",
		"t+0s", "t+20s", "lockstep  gateway", "baseline  gateway",
		"P99 during the step", "requests failed or dropped", "in-place CPU resizes", "estimated cost",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if path != filepath.Join(o.out, "demo.png") {
		t.Errorf("plot written to %s, want demo.png in %s", path, o.out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("the plot is %dx%d", b.Dx(), b.Dy())
	}
	raw, err := os.ReadFile(filepath.Join(o.out, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Summary struct {
			Sides []struct {
				Name string `json:"name"`
			} `json:"sides"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Summary.Sides) != 2 {
		t.Fatalf("demo.json: %d sides, %v", len(doc.Summary.Sides), err)
	}
}

func TestParseFlagsRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pod-cidr", "10.244.0.0/16"}, "loopback"},
		{[]string{"--pod-cidr", "nonsense"}, "loopback"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--factor", "1"}, "at least twice"},
		{[]string{"--sale", "0s"}, "--sale"},
		{[]string{"--warm-up-lead", "5m"}, "--warm-up-lead"},
		{[]string{"--hpa-sync", "100ms"}, "--hpa-sync"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		_, err := parseFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseFlags(%q): %v, want an error naming %q", c.args, err, c.want)
		}
	}
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	if got := o.load.Schedule().Expected(); got != 40*30+60*10+400*90+40*30 {
		t.Errorf("the default load sends %g requests", got)
	}
}
