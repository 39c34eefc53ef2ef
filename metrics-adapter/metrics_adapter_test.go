package metricsadapter

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/provider"
)

// The README's catalog tables list exactly the metrics the adapter serves, with their help.
func TestReadmeCatalogMatchesServed(t *testing.T) {
	body, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]string{}
	section := regexp.MustCompile(`(?s)<!-- catalog:(\w+) -->(.*?)<!-- /catalog -->`)
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| (.+?) \\|$")
	for _, m := range section.FindAllStringSubmatch(string(body), -1) {
		for _, r := range row.FindAllStringSubmatch(m[2], -1) {
			tables[m[1]] = append(tables[m[1]], r[1]+": "+r[2])
		}
	}
	c := provider.DefaultCatalog()
	render := func(ms []provider.Metric, keep func(string) bool) []string {
		var out []string
		for _, m := range ms {
			if keep(m.Name) {
				out = append(out, m.Name+": "+m.Help)
			}
		}
		return out
	}
	all := func(string) bool { return true }
	sls := func(n string) bool { return strings.HasPrefix(n, "sls_") }
	want := map[string][]string{
		"object":   render(c.Object, all),
		"external": render(c.External, func(n string) bool { return !sls(n) }),
		"sls":      render(c.External, sls),
	}
	for _, gr := range c.Resources {
		if !strings.Contains(string(body), "`"+gr.String()+"`") {
			t.Errorf("README does not say metrics are served on %s", gr)
		}
	}
	for name, w := range want {
		got := tables[name]
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("README catalog %q:\n%s\nserved:\n%s", name, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
}
