package timeline

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0, 1}, {0.5, 1}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {10, 10}, {11, 20}, {250, 500}, {2500, 5000},
	} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPlot(t *testing.T) {
	var ls, bl []Sample
	for s := range 60 {
		p99 := 20.0
		if s >= 20 && s < 40 {
			p99 = 4000 // above the scale's cap (10× the SLO): drawn at the top
		}
		ls = append(ls, sample(s, 2, 2, 8, 8, 20))
		bl = append(bl, sample(s, 2, 2, 2, 2, p99))
	}
	tl := &Timeline{Tiers: tiers, SLOMillis: 250, Phases: []Phase{{Name: "baseline", From: 0, To: 20}, {Name: StepPhase, From: 20, To: 40}},
		Sides: []Side{{Name: "lockstep", Samples: ls}, {Name: "baseline", Samples: bl}}}
	img := Plot(tl)
	if b := img.Bounds(); b.Dx() != plotWidth || b.Dy() != headerHeight+4*panelHeight {
		t.Fatalf("plot size %v", b)
	}
	count := map[[4]uint8]int{}
	for y := range img.Bounds().Dy() {
		for x := range img.Bounds().Dx() {
			c := img.RGBAAt(x, y)
			count[[4]uint8{c.R, c.G, c.B, c.A}]++
		}
	}
	for name, c := range map[string][4]uint8{"step shading": {stepShade.R, stepShade.G, stepShade.B, 255}, "P99 and SLO": {red.R, red.G, red.B, 255}, "first tier": {blue.R, blue.G, blue.B, 255}, "second tier": {orange.R, orange.G, orange.B, 255}} {
		if count[c] < 100 {
			t.Errorf("%s: %d pixels", name, count[c])
		}
	}
	// The baseline's P99 spike reaches the top of its panel (capped at 10× the SLO).
	p := panels(tl)[2]
	if got := p.scale(tl); got != 5000 {
		t.Errorf("P99 panel scale %v, want 10× the SLO rounded up to 5000", got)
	}

	path := filepath.Join(t.TempDir(), "timeline.png")
	if err := WritePNG(path, tl); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
	// An empty timeline draws an empty canvas, never panics.
	_ = Plot(&Timeline{})
}
