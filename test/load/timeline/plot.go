package timeline

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Plot layout, in pixels.
const (
	plotWidth    = 1400
	panelHeight  = 170
	headerHeight = 40
	marginLeft   = 56
	marginRight  = 16
	marginTop    = 22
	marginBottom = 18
)

// Plot colours.
var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{30, 30, 30, 255}
	grey      = color.RGBA{150, 150, 150, 255}
	stepShade = color.RGBA{255, 243, 205, 255}
	blue      = color.RGBA{31, 119, 180, 255}
	orange    = color.RGBA{255, 127, 14, 255}
	green     = color.RGBA{44, 160, 44, 255}
	red       = color.RGBA{214, 39, 40, 255}
	purple    = color.RGBA{148, 103, 189, 255}
	cyan      = color.RGBA{23, 190, 207, 255}
)

// series is one line of a panel.
type series struct {
	label  string
	color  color.RGBA
	dashed bool
	value  func(Sample) float64
}

// panel is one row of the plot: the same lines for every side, on one scale.
type panel struct {
	title string
	lines []series
	// limit is a horizontal reference line (the SLO); 0 for none.
	limit float64
	// cap bounds the scale (latency can spike far above what is worth seeing); 0 for none.
	cap float64
}

func tier(name string, f func(TierSample) float64) func(Sample) float64 {
	return func(s Sample) float64 { return f(s.Tiers[name]) }
}

func panels(tl *Timeline) []panel {
	var replicas []series
	colors := []color.RGBA{blue, orange, green, purple}
	for i, t := range tl.Tiers {
		c := colors[i%len(colors)]
		replicas = append(replicas,
			series{label: t.Workload + " HPA", color: c, dashed: true, value: tier(t.Name, func(ts TierSample) float64 { return float64(ts.Desired) })},
			series{label: t.Workload + " answering", color: c, value: tier(t.Name, func(ts TierSample) float64 { return float64(ts.Backed) })})
	}
	placement := []series{{label: "nodes Ready", color: black, value: func(s Sample) float64 { return float64(s.NodesReady) }}}
	placement = append(placement,
		series{label: "pending pods", color: purple, value: func(s Sample) float64 { return sumTiers(s, func(ts TierSample) int { return ts.Pending }) }},
		series{label: "serverless pods", color: cyan, value: func(s Sample) float64 { return sumTiers(s, func(ts TierSample) int { return ts.Serverless }) }},
		series{label: "moving back", color: cyan, dashed: true, value: func(s Sample) float64 { return sumTiers(s, func(ts TierSample) int { return ts.MovingBack }) }})
	return []panel{
		{title: "replicas", lines: replicas},
		{title: "requests per second", lines: []series{
			{label: "target", color: grey, dashed: true, value: func(s Sample) float64 { return s.Rate }},
			{label: "answered OK", color: green, value: func(s Sample) float64 { return float64(s.OK) }},
			{label: "failed or dropped", color: red, value: func(s Sample) float64 { return float64(s.Failed + s.Errors + s.Dropped) }},
		}},
		{title: "P99 latency (ms)", limit: tl.SLOMillis, cap: 10 * tl.SLOMillis, lines: []series{
			{label: "P99", color: red, value: func(s Sample) float64 { return millis(s.P99) }},
		}},
		{title: "placement", lines: placement},
	}
}

func sumTiers(s Sample, f func(TierSample) int) float64 {
	n := 0
	for _, ts := range s.Tiers {
		n += f(ts)
	}
	return float64(n)
}

// Plot draws the timeline: a column per side, a row per panel (replicas, requests, P99,
// placement), each row on one scale for all sides, the step shaded.
func Plot(tl *Timeline) *image.RGBA {
	rows := panels(tl)
	height := headerHeight + len(rows)*panelHeight
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	if len(tl.Sides) == 0 {
		return img
	}
	colWidth := plotWidth / len(tl.Sides)
	last := 1
	for _, side := range tl.Sides {
		for _, s := range side.Samples {
			last = max(last, s.Second)
		}
	}
	for col, side := range tl.Sides {
		text(img, col*colWidth+marginLeft, 24, black, side.Name+" ("+side.Namespace+")")
	}
	for row, p := range rows {
		top := headerHeight + row*panelHeight
		scale := p.scale(tl)
		for col, side := range tl.Sides {
			area := image.Rect(col*colWidth+marginLeft, top+marginTop, (col+1)*colWidth-marginRight, top+panelHeight-marginBottom)
			drawPanel(img, area, p, side, tl.Phases, last, scale)
			if col == 0 {
				text(img, area.Min.X, top+14, black, p.title)
			}
		}
	}
	return img
}

// scale is the panel's top value: the largest sample over every side (at most cap), the
// limit, rounded up to a readable number.
func (p panel) scale(tl *Timeline) float64 {
	top := p.limit
	for _, side := range tl.Sides {
		for _, s := range side.Samples {
			for _, l := range p.lines {
				top = math.Max(top, l.value(s))
			}
		}
	}
	if p.cap > 0 {
		top = math.Min(top, p.cap)
	}
	return niceCeil(top)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 || math.IsNaN(v) {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*exp {
			return m * exp
		}
	}
	return 10 * exp
}

func drawPanel(img *image.RGBA, area image.Rectangle, p panel, side Side, phases []Phase, last int, top float64) {
	x := func(second int) int { return area.Min.X + second*area.Dx()/last }
	y := func(v float64) int {
		v = math.Max(0, math.Min(v, top))
		return area.Max.Y - int(math.Round(v/top*float64(area.Dy())))
	}
	for _, ph := range phases {
		if ph.Name == StepPhase {
			draw.Draw(img, image.Rect(x(ph.From), area.Min.Y, x(min(ph.To, last)), area.Max.Y), &image.Uniform{stepShade}, image.Point{}, draw.Src)
		}
	}
	// Axes and the scale's top.
	line(img, area.Min.X, area.Max.Y, area.Max.X, area.Max.Y, grey, false)
	line(img, area.Min.X, area.Min.Y, area.Min.X, area.Max.Y, grey, false)
	text(img, area.Min.X-marginLeft+4, area.Min.Y+10, grey, formatValue(top))
	text(img, area.Min.X-marginLeft+4, area.Max.Y, grey, "0")
	text(img, area.Max.X-40, area.Max.Y+14, grey, fmt.Sprintf("%d s", last))
	if p.limit > 0 {
		line(img, area.Min.X, y(p.limit), area.Max.X, y(p.limit), red, true)
	}
	legendX := area.Min.X + 8
	for _, l := range p.lines {
		prevX, prevY := -1, 0
		for _, s := range side.Samples {
			px, py := x(s.Second), y(l.value(s))
			if prevX >= 0 {
				line(img, prevX, prevY, px, py, l.color, l.dashed)
			}
			prevX, prevY = px, py
		}
		text(img, legendX, area.Min.Y+12, l.color, l.label)
		legendX += 8 + 7*len(l.label)
	}
}

func formatValue(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// line draws from (x0, y0) to (x1, y1), two pixels wide; dashed leaves gaps.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dashed bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for n := 0; ; n++ {
		if !dashed || (n/6)%2 == 0 {
			img.SetRGBA(x0, y0, c)
			img.SetRGBA(x0, y0+1, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func text(img *image.RGBA, x, y int, c color.RGBA, s string) {
	d := &font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// WritePNG draws the timeline into a PNG file at path.
func WritePNG(path string, tl *Timeline) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating the plot: %w", err)
	}
	if err := png.Encode(f, Plot(tl)); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	return nil
}
