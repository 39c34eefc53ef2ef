package testbed

import (
	"strings"
	"testing"
)

// The stage that applies every resize at once is kwok's only with IdealResize; the stage that
// answers annotated pods is there in both modes.
func TestIdealResizeStageOnlyWhenAsked(t *testing.T) {
	for _, ideal := range []bool{false, true} {
		docs, err := stageDocuments(nil, ideal)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(docs, "name: lockstep-pod-resize\n"); got != ideal {
			t.Errorf("IdealResize %v: apply-at-once stage present %v", ideal, got)
		}
		if !strings.Contains(docs, "name: lockstep-pod-resize-pending\n") {
			t.Errorf("IdealResize %v: the annotation's pending stage is missing", ideal)
		}
	}
}
