package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const sample = `# Chart intro paragraph.

# The image.
image:
  # Registry of the images.
  registry: ghcr.io/x
  # @enum Always IfNotPresent Never
  pullPolicy: IfNotPresent
# Replicas | count.
replicas: 2
# @duration
budget: 30s
# @type string|number
ratio: "0.1"
# Free-form.
# @open
resources:
  requests: {cpu: 50m}
nodeSelector: {}
tolerations: []
`

func TestGenerate(t *testing.T) {
	raw, rows, err := Generate([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	props := s["properties"].(map[string]any)
	if s["additionalProperties"] != false {
		t.Error("unknown top-level keys are allowed")
	}
	image := props["image"].(map[string]any)
	if image["additionalProperties"] != false || image["description"] != "The image." {
		t.Errorf("image: %v", image)
	}
	pp := image["properties"].(map[string]any)["pullPolicy"].(map[string]any)
	if len(pp["enum"].([]any)) != 3 || pp["type"] != "string" {
		t.Errorf("pullPolicy: %v", pp)
	}
	for key, want := range map[string]string{"replicas": "integer", "budget": "string", "resources": "object", "nodeSelector": "object", "tolerations": "array"} {
		if got := props[key].(map[string]any)["type"]; got != want {
			t.Errorf("%s: type %v, want %s", key, got, want)
		}
	}
	if props["budget"].(map[string]any)["pattern"] != durationPattern {
		t.Error("budget has no duration pattern")
	}
	if types, ok := props["ratio"].(map[string]any)["type"].([]any); !ok || len(types) != 2 {
		t.Errorf("ratio types: %v", props["ratio"])
	}
	if _, ok := props["resources"].(map[string]any)["properties"]; ok {
		t.Error("an @open object's children are checked")
	}
	table := Table(rows)
	for _, want := range []string{
		"| `image.registry` | string | `\"ghcr.io/x\"` | Registry of the images. |",
		"| `image.pullPolicy` | string | `\"IfNotPresent\"` | One of `Always`, `IfNotPresent`, `Never`. |",
		"| `replicas` | integer | `2` | Replicas \\| count. |",
		"| `resources` | object | `{\"requests\":{\"cpu\":\"50m\"}}` | Free-form. |",
		"| `ratio` | string or number |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestBadInput(t *testing.T) {
	for name, src := range map[string]string{
		"unknown annotation": "# @bogus\nx: 1\n",
		"not a mapping":      "- 1\n",
	} {
		if _, _, err := Generate([]byte(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := replaceTable([]byte("no markers"), "t"); err == nil {
		t.Error("README without markers accepted")
	}
}
