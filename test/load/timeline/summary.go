package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Timeline is a whole run: both sides, second by second, under the same load.
type Timeline struct {
	// Start is when the load started.
	Start time.Time `json:"start"`
	// Tiers are the workloads followed on each side.
	Tiers []Tier `json:"tiers"`
	// Phases of the load, in seconds from Start.
	Phases []Phase `json:"phases"`
	// SLO is the P99 latency the service should keep, in milliseconds.
	SLOMillis float64 `json:"sloMs"`
	Sides     []Side  `json:"sides"`
}

// Phase is a span of the load's schedule, [From, To) in seconds.
type Phase struct {
	Name string `json:"name"`
	From int    `json:"from"`
	To   int    `json:"to"`
}

// Side is one namespace of the run with its scaling policy.
type Side struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// StepLoad is the load of the step phase as one span, its latency quantiles over all its
	// requests (the generator's histograms, not an average of seconds).
	StepLoad Load     `json:"stepLoad"`
	Samples  []Sample `json:"samples"`
	// SampleErrors counts the rounds in which the side could not be read; Summarize refuses a
	// side with any, since its pod-, node- and core-seconds would come out too small.
	SampleErrors int `json:"sampleErrors,omitempty"`
	// Events are what happened to this side's pods: backends started, stopped and resized in
	// place (the harness's notes), and pods moved back from serverless capacity (the cluster's
	// events).
	Events []Event `json:"events,omitempty"`
}

// Event is something that happened at a second of the run.
type Event struct {
	Second int `json:"second"`
	// Reason sorts events for the summary: EventResized, EventMovedBack, or another word.
	Reason string `json:"reason,omitempty"`
	What   string `json:"what"`
}

// Reasons of the events the summary counts.
const (
	// EventResized is a running pod's backend following an in-place resize of its CPU.
	EventResized = "resized"
	// EventMovedBack is a spilled pod moved back to a node (node-autoscaler's MovedBack event).
	EventMovedBack = "MovedBack"
)

// Prices estimate what a side cost: its nodes by the hour when NodeHour is set (each side has
// a node pool of its own), otherwise a requested core for an hour on nodes; and a requested
// core for an hour on serverless capacity (which costs more per core, by the second).
type Prices struct {
	NodeHour           float64 `json:"nodeHour,omitempty"`
	CoreHour           float64 `json:"coreHour"`
	ServerlessCoreHour float64 `json:"serverlessCoreHour"`
}

// SideSummary is what a side did about the step.
type SideSummary struct {
	Name string `json:"name"`
	// Peak is the most replicas each tier's HPA decided during the step.
	Peak map[string]int32 `json:"peak"`
	// DecidedAfter is, per tier, the seconds from the step until its HPA decided its peak
	// (0 when it was already there: a floor raised ahead); -1 when it never did.
	DecidedAfter map[string]int `json:"decidedAfter"`
	// AllDecidedAfter is the latest of DecidedAfter, -1 when some tier never decided.
	AllDecidedAfter int `json:"allDecidedAfter"`
	// ServedAfter is the seconds from the step until every tier's HPA had decided its peak and
	// every tier had that many pods running and answering; -1 when that never happened.
	ServedAfter int `json:"servedAfter"`
	// The step's load: requests sent, not answered well (failed, errors, dropped), P99.
	StepSent   int     `json:"stepSent"`
	StepBad    int     `json:"stepBad"`
	StepP99Ms  float64 `json:"stepP99ms"`
	OverSLOSec int     `json:"overSloSeconds"`
	// Serverless use: pod-seconds and the most pods at once; pods moved back to nodes.
	ServerlessPodSeconds int `json:"serverlessPodSeconds"`
	ServerlessPeak       int `json:"serverlessPeak"`
	MovedBack            int `json:"movedBack"`
	// Resizes counts in-place CPU resizes of running pods, over the whole run.
	Resizes int `json:"resizes"`
	// NodeSeconds the side's registered nodes existed (the virtual node left out).
	NodeSeconds int `json:"nodeSeconds"`
	// CoreSeconds requested on nodes and on serverless capacity, and their estimated cost.
	CoreSeconds           float64 `json:"coreSeconds"`
	ServerlessCoreSeconds float64 `json:"serverlessCoreSeconds"`
	Cost                  float64 `json:"cost"`
}

// Summary compares the sides.
type Summary struct {
	// StepFrom and StepTo are the step phase's span in seconds.
	StepFrom int           `json:"stepFrom"`
	StepTo   int           `json:"stepTo"`
	Sides    []SideSummary `json:"sides"`
}

// StepPhase names the schedule's phase that the summary measures.
const StepPhase = "step"

// unserved counts a side's pod-seconds of Ready pods that nothing served, and the first second.
func unserved(side Side) (int, int) {
	n, first := 0, -1
	for _, smp := range side.Samples {
		for _, ts := range smp.Tiers {
			if ts.Unserved > 0 && first < 0 {
				first = smp.Second
			}
			n += ts.Unserved
		}
	}
	return n, first
}

// Summarize measures each side against the step phase.
func Summarize(tl *Timeline, prices Prices) (Summary, error) {
	var step *Phase
	for i := range tl.Phases {
		if tl.Phases[i].Name == StepPhase {
			step = &tl.Phases[i]
		}
	}
	if step == nil {
		return Summary{}, fmt.Errorf("the load has no %q phase", StepPhase)
	}
	sum := Summary{StepFrom: step.From, StepTo: step.To}
	for _, side := range tl.Sides {
		if side.SampleErrors > 0 {
			return Summary{}, fmt.Errorf("side %s: %d sampling rounds failed, so its figures would be too small", side.Name, side.SampleErrors)
		}
		if n, first := unserved(side); n > 0 {
			return Summary{}, fmt.Errorf("side %s: %d pod-seconds Ready with nothing serving them (first at second %d): the harness failed to back them, so the side's figures do not measure the autoscaler", side.Name, n, first)
		}
		sum.Sides = append(sum.Sides, summarizeSide(side, tl.Tiers, *step, tl.SLOMillis, prices))
	}
	return sum, nil
}

func summarizeSide(side Side, tiers []Tier, step Phase, slo float64, prices Prices) SideSummary {
	s := SideSummary{Name: side.Name, Peak: map[string]int32{}, DecidedAfter: map[string]int{}, ServedAfter: -1}
	for _, smp := range side.Samples {
		if smp.Second >= step.From && smp.Second < step.To {
			for _, t := range tiers {
				s.Peak[t.Name] = max(s.Peak[t.Name], smp.Tiers[t.Name].Desired)
			}
			if slo > 0 && millis(smp.P99) > slo {
				s.OverSLOSec++
			}
		}
		serverless := 0
		for _, t := range tiers {
			ts := smp.Tiers[t.Name]
			serverless += ts.Serverless
			s.CoreSeconds += ts.CPURequest
			s.ServerlessCoreSeconds += ts.ServerlessCPURequest
		}
		s.ServerlessPodSeconds += serverless
		s.NodeSeconds += smp.Nodes
		s.ServerlessPeak = max(s.ServerlessPeak, serverless)
	}
	s.AllDecidedAfter = 0
	for _, t := range tiers {
		after := firstAfter(side.Samples, step.From, func(smp Sample) bool { return smp.Tiers[t.Name].Desired >= s.Peak[t.Name] })
		s.DecidedAfter[t.Name] = after
		if after < 0 || s.AllDecidedAfter < 0 {
			s.AllDecidedAfter = -1
		} else {
			s.AllDecidedAfter = max(s.AllDecidedAfter, after)
		}
	}
	// Counted from the last tier's decision: before it, more pods can answer than the HPA wants
	// while a pod moves back (the released pod and its replacement both serve).
	if s.AllDecidedAfter >= 0 {
		served := firstAfter(side.Samples, step.From+s.AllDecidedAfter, func(smp Sample) bool {
			for _, t := range tiers {
				if smp.Tiers[t.Name].Backed < int(s.Peak[t.Name]) {
					return false
				}
			}
			return true
		})
		if served >= 0 {
			s.ServedAfter = s.AllDecidedAfter + served
		}
	}
	for _, e := range side.Events {
		switch e.Reason {
		case EventResized:
			s.Resizes++
		case EventMovedBack:
			s.MovedBack++
		}
	}
	l := side.StepLoad
	s.StepSent, s.StepBad, s.StepP99Ms = l.Sent, l.Failed+l.Errors+l.Dropped, millis(l.P99)
	onNodes := s.CoreSeconds / 3600 * prices.CoreHour
	if prices.NodeHour > 0 {
		onNodes = float64(s.NodeSeconds) / 3600 * prices.NodeHour
	}
	s.Cost = onNodes + s.ServerlessCoreSeconds/3600*prices.ServerlessCoreHour
	return s
}

// firstAfter is the seconds from from until the first sample at or after it for which ok
// holds; -1 when none does.
func firstAfter(samples []Sample, from int, ok func(Sample) bool) int {
	for _, smp := range samples {
		if smp.Second >= from && ok(smp) {
			return smp.Second - from
		}
	}
	return -1
}

// WriteJSON writes the timeline and its summary to path.
func WriteJSON(path string, tl *Timeline, sum Summary) error {
	b, err := json.MarshalIndent(struct {
		Summary  Summary   `json:"summary"`
		Timeline *Timeline `json:"timeline"`
	}{sum, tl}, "", " ")
	if err != nil {
		return fmt.Errorf("encoding the timeline: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing the timeline: %w", err)
	}
	return nil
}

// PrintSummary writes the sides' figures side by side.
func PrintSummary(w io.Writer, sum Summary, tiers []Tier, sloMillis float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	names := []string{""}
	for _, s := range sum.Sides {
		names = append(names, s.Name)
	}
	row := func(label string, value func(SideSummary) string) {
		cells := []string{label}
		for _, s := range sum.Sides {
			cells = append(cells, value(s))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	fmt.Fprintln(tw, strings.Join(names, "\t"))
	for _, t := range tiers {
		row(t.Name+" HPA decided its peak", func(s SideSummary) string {
			if s.DecidedAfter[t.Name] == 0 {
				// A floor raised ahead, or a tier the step never moved.
				return fmt.Sprintf("already there (%d replicas)", s.Peak[t.Name])
			}
			return fmt.Sprintf("%s (%d replicas)", seconds(s.DecidedAfter[t.Name]), s.Peak[t.Name])
		})
	}
	row("both tiers decided", func(s SideSummary) string { return seconds(s.AllDecidedAfter) })
	row("all peak pods answering", func(s SideSummary) string { return seconds(s.ServedAfter) })
	row("P99 during the step", func(s SideSummary) string { return fmt.Sprintf("%.0f ms", s.StepP99Ms) })
	row(fmt.Sprintf("seconds over the %.0f ms SLO", sloMillis), func(s SideSummary) string { return fmt.Sprint(s.OverSLOSec) })
	row("requests failed or dropped", func(s SideSummary) string {
		return fmt.Sprintf("%d of %d (%.1f %%)", s.StepBad, s.StepSent, percent(s.StepBad, s.StepSent))
	})
	row("pods on serverless", func(s SideSummary) string {
		return fmt.Sprintf("%d pod-seconds, %d at most, %d moved back", s.ServerlessPodSeconds, s.ServerlessPeak, s.MovedBack)
	})
	row("in-place CPU resizes", func(s SideSummary) string { return fmt.Sprint(s.Resizes) })
	row("cores requested", func(s SideSummary) string {
		return fmt.Sprintf("%.0f core-s (+%.0f serverless)", s.CoreSeconds, s.ServerlessCoreSeconds)
	})
	row("node-seconds", func(s SideSummary) string { return fmt.Sprint(s.NodeSeconds) })
	row("estimated cost", func(s SideSummary) string { return fmt.Sprintf("%.4f", s.Cost) })
	return tw.Flush()
}

func seconds(s int) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%d s", s)
}

func percent(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return math.Round(1000*float64(part)/float64(whole)) / 10
}

// Join gives every second from the first sample's to the last's exactly one sample: the latest
// taken at or before it (a slow sampling round leaves a second without one), with that second's
// load from loads. So per-second sums (pod-, node-, core-seconds, seconds over the SLO) count
// every second once.
func Join(samples []Sample, loads map[int]Load) []Sample {
	if len(samples) == 0 {
		return nil
	}
	sorted := append([]Sample(nil), samples...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Second < sorted[j].Second })
	var out []Sample
	next := 0
	for second := sorted[0].Second; second <= sorted[len(sorted)-1].Second; second++ {
		for next+1 < len(sorted) && sorted[next+1].Second <= second {
			next++
		}
		smp := sorted[next]
		smp.Second = second
		out = append(out, smp.WithLoad(loads[second]))
	}
	return out
}
