package chart_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// TestMonitoring renders the optional ServiceMonitors and the Grafana dashboard and checks that
// every Lockstep metric the dashboard queries is one the code defines.
func TestMonitoring(t *testing.T) {
	env := framework.Env(t)
	out := helm(t, env, "template", "lockstep", ".", "--namespace", "lockstep-system", "--validate=false", "--kube-version", "1.37.1",
		"--set", "dashboard.enabled=true", "--set", "nodeAutoscaler.enabled=true",
		"--set", "cronhpa.serviceMonitor.enabled=true", "--set", "metricsAdapter.serviceMonitor.enabled=true",
		"--set", "vpaInplace.serviceMonitor.enabled=true", "--set", "nodeAutoscaler.serviceMonitor.enabled=true")
	monitors, dashboard := 0, ""
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		switch {
		case obj.Kind == "ServiceMonitor":
			monitors++
		case obj.Kind == "ConfigMap" && obj.Metadata.Name == "lockstep-dashboard":
			dashboard = obj.Data["lockstep.json"]
		}
	}
	if monitors != 4 {
		t.Errorf("%d ServiceMonitors, want one per component", monitors)
	}
	var d struct {
		Panels []struct {
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(dashboard), &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	defined := definedMetrics(t)
	queried := 0
	names := regexp.MustCompile(`lockstep_[a-z_]+`)
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			for _, name := range names.FindAllString(target.Expr, -1) {
				queried++
				base := strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count")
				if !defined[base] {
					t.Errorf("the dashboard queries %s, which no component defines", name)
				}
			}
		}
	}
	if queried < 10 {
		t.Errorf("the dashboard queries %d Lockstep series", queried)
	}
}

// definedMetrics collects metric names from the components' sources: full names in quotes and
// Namespace/Subsystem/Name triples.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	full := regexp.MustCompile(`"(lockstep_[a-z_]+)"`)
	parts := regexp.MustCompile(`Namespace: *(?:"lockstep"|ns), *Subsystem: *(?:"([a-z_]+)"|sub), *Name: *"([a-z_]+)"`)
	subConst := regexp.MustCompile(`sub\s*=\s*(?:"lockstep",\s*)?"([a-z_]+)"`)
	out := map[string]bool{}
	for _, dir := range []string{"../cronhpa", "../metrics-adapter", "../vpa-inplace", "../node-autoscaler"} {
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range full.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = true
			}
			sub := ""
			if m := subConst.FindStringSubmatch(string(b)); m != nil {
				sub = m[1]
			}
			for _, m := range parts.FindAllStringSubmatch(string(b), -1) {
				s := m[1]
				if s == "" {
					s = sub
				}
				out["lockstep_"+s+"_"+m[2]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
