package main

import (
	"flag"
	"os"
	"regexp"
	"testing"
)

// notInChart are the flags the chart leaves at their defaults on purpose, with the reason.
var notInChart = map[string]string{
	"pprof-bind-address":   "Go profiles are for debugging: run a copy with the flag, or port-forward",
	"zap-devel":            "development logging; logLevel sets the level",
	"zap-encoder":          "JSON logs are what log collectors read",
	"zap-stacktrace-level": "stack traces on errors are the default",
	"zap-time-encoding":    "the default time encoding is what log collectors read",
}

// Every flag of the binary an operator may need is one the chart passes from its values; the
// others are listed above with a reason, and that list names only real flags.
func TestChartPassesEveryOperatorFlag(t *testing.T) {
	fs := flag.NewFlagSet("vpa-inplace", flag.ContinueOnError)
	bindFlags(fs)
	tmpl, err := os.ReadFile("../../chart/templates/vpa-inplace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	passed := map[string]bool{}
	for _, m := range regexp.MustCompile(`- --([a-z0-9-]+)=`).FindAllSubmatch(tmpl, -1) {
		passed[string(m[1])] = true
	}
	defined := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		defined[f.Name] = true
		if _, skipped := notInChart[f.Name]; !skipped && !passed[f.Name] {
			t.Errorf("--%s is not passed by the chart (add a value, or say in notInChart why not)", f.Name)
		}
	})
	for name := range notInChart {
		if !defined[name] {
			t.Errorf("notInChart names --%s, which the binary does not define", name)
		}
	}
	for name := range passed {
		if !defined[name] {
			t.Errorf("the chart passes --%s, which the binary does not define", name)
		}
	}
}
