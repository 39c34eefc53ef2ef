package build

import (
	"slices"
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
		"requires staging modules at the matching v0 release and replaces only v0.0.0": {
			version: "v1.37.1",
			goMod:   kubeGoMod,
			want: []string{
				"require k8s.io/kubernetes v1.37.1",
				"\tk8s.io/api v0.37.1\n",
				"\tk8s.io/sample-apiserver v0.37.1\n",
				"k8s.io/api v0.0.0 => k8s.io/api v0.37.1",
				"k8s.io/sample-apiserver v0.0.0 => k8s.io/sample-apiserver v0.37.1",
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

func TestAlignRequirements(t *testing.T) {
	align := map[string]string{
		"github.com/lockstep-dev/lockstep": "",
		"golang.org/x/net":                 "v0.60.0",
		"google.golang.org/grpc":           "v1.83.2",
		"k8s.io/api":                       "v0.37.1",
		"github.com/only/ours":             "v1.0.0",
	}
	tests := map[string]struct {
		list     map[string]string
		required map[string]string
		want     []Module
	}{
		"shared modules at other versions are raised to ours, in path order": {
			list: map[string]string{"lockstep.local/testbed/x": "", "golang.org/x/net": "v0.57.0", "google.golang.org/grpc": "v1.82.1", "k8s.io/api": "v0.37.1", "github.com/only/theirs": "v2.0.0"},
			want: []Module{{"golang.org/x/net", "v0.60.0"}, {"google.golang.org/grpc", "v1.83.2"}},
		},
		"a module the component needs newer stays once required": {
			list:     map[string]string{"golang.org/x/net": "v0.61.0", "google.golang.org/grpc": "v1.83.2"},
			required: map[string]string{"golang.org/x/net": "v0.60.0"},
		},
		"a module first seen after a raise is raised in the next round": {
			list:     map[string]string{"golang.org/x/net": "v0.60.0", "github.com/only/ours": "v0.9.0"},
			required: map[string]string{"golang.org/x/net": "v0.60.0"},
			want:     []Module{{"github.com/only/ours", "v1.0.0"}},
		},
		"nothing shared": {
			list: map[string]string{"example.com/a": "v1.0.0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := AlignRequirements(tc.list, align, tc.required)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
