package testbed

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// stagesFS holds the built-in kwok stages: node readiness, the pod lifecycle and in-place resize.
//
//go:embed stages/*.yaml
var stagesFS embed.FS

// kwokNodeAnnotation marks the nodes kwok manages; the test bed's kwok manages only those.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// idealResizeStage applies every resize at once; without Options.IdealResize the resize
// checker answers instead.
const idealResizeStage = "stages/pod-resize.yaml"

// stageDocuments returns the built-in stages followed by extra, as one multi-document YAML
// stream; the ideal resize stage only when idealResize is set.
func stageDocuments(extra []string, idealResize bool) (string, error) {
	names, err := fs.Glob(stagesFS, "stages/*.yaml")
	if err != nil {
		return "", fmt.Errorf("listing built-in stages: %w", err)
	}
	sort.Strings(names)
	docs := make([]string, 0, len(names)+len(extra))
	for _, name := range names {
		if name == idealResizeStage && !idealResize {
			continue
		}
		data, err := stagesFS.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", name, err)
		}
		docs = append(docs, string(data))
	}
	docs = append(docs, extra...)
	return strings.Join(docs, "\n---\n"), nil
}
