package build

import (
	"strings"
	"testing"
)

func TestKubernetesWrapper(t *testing.T) {
	kubeGoMod := `module k8s.io/kubernetes

go 1.26.0

require (
	github.com/spf13/cobra v1.10.2
	k8s.io/api v0.0.0
	k8s.io/sample-apiserver v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
)
`
	tests := map[string]struct {
		version  string
		goMod    string
		want     []string
		wantNot  []string
		wantErrs string
	}{
		"pins staging modules to the matching v0 release": {
			version: "v1.37.1",
			goMod:   kubeGoMod,
			want: []string{
				"require k8s.io/kubernetes v1.37.1",
				"k8s.io/api => k8s.io/api v0.37.1",
				"k8s.io/sample-apiserver => k8s.io/sample-apiserver v0.37.1",
				"go 1.26.0",
			},
			wantNot: []string{"cobra", "./staging"},
		},
		"no staging modules is an error": {
			version:  "v1.37.1",
			goMod:    "module k8s.io/kubernetes\n\ngo 1.26.0\n",
			wantErrs: "no staging modules",
		},
		"non-v1 version is an error": {
			version:  "v2.0.0",
			goMod:    kubeGoMod,
			wantErrs: "unexpected kubernetes version",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := KubernetesWrapper(tc.version, []byte(tc.goMod))
			if tc.wantErrs != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrs) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErrs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("wrapper lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("wrapper contains %q:\n%s", w, got)
				}
			}
		})
	}
}
