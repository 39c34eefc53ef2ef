package framework

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// HelmEnv names the helm binary the chart tests run; bin/tools/helm-* when unset.
const HelmEnv = "LOCKSTEP_HELM"

// HelmBinary returns the helm binary `make helm` built, or fails the test with that command.
func HelmBinary(t testing.TB) string {
	t.Helper()
	if h := os.Getenv(HelmEnv); h != "" {
		return h
	}
	if root, err := testbed.DefaultRoot(); err == nil {
		matches, _ := filepath.Glob(filepath.Join(filepath.Dir(root), "tools", "helm-*"))
		if len(matches) > 0 {
			return matches[len(matches)-1]
		}
	}
	t.Fatal("helm is not built: run `make helm` (make test does)")
	return ""
}

// RunHelm runs helm against the test bed with throwaway cache, config and data directories.
func RunHelm(t testing.TB, env *testbed.Env, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(HelmBinary(t), append(args, "--kubeconfig", env.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Helm runs helm and fails the test if it fails; it returns the output.
func Helm(t testing.TB, env *testbed.Env, args ...string) string {
	t.Helper()
	out, err := RunHelm(t, env, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// HelmFails runs helm, expects it to fail, and returns its output.
func HelmFails(t testing.TB, env *testbed.Env, args ...string) string {
	t.Helper()
	out, err := RunHelm(t, env, args...)
	if err == nil {
		t.Errorf("helm %s succeeded, want an error", strings.Join(args, " "))
	}
	return out
}
