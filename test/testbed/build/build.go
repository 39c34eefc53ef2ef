// Package build compiles the test bed's control-plane binaries (etcd, Kubernetes, kwok, metrics-server) from the
// Go module proxy at the versions pinned in package testbed, into <root>/<component>-<version>/.
package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Builder builds missing binaries under Root and reports progress to Out.
type Builder struct {
	// Root is the directory that receives <component>-<version>/ subdirectories.
	Root string
	// Out receives one line per step and the output of failed go commands.
	Out io.Writer
}

// All builds every binary the test bed uses that is not already present.
func (b *Builder) All(ctx context.Context) error {
	steps := []struct {
		component string
		version   string
		build     func(context.Context, string) error
	}{
		{"etcd", testbed.EtcdVersion, b.etcd},
		{"kubernetes", testbed.KubernetesVersion, b.kubernetes},
		{"kwok", testbed.KwokVersion, b.goInstall("sigs.k8s.io/kwok/cmd/kwok@" + testbed.KwokVersion)},
		{"metrics-server", testbed.MetricsServerVersion, b.goInstall("sigs.k8s.io/metrics-server/cmd/metrics-server@" + testbed.MetricsServerVersion)},
	}
	for _, s := range steps {
		dir := filepath.Join(b.Root, s.component+"-"+s.version)
		if b.complete(s.component, dir) {
			fmt.Fprintf(b.Out, "testbed: %s %s already built in %s\n", s.component, s.version, dir)
			continue
		}
		start := time.Now()
		fmt.Fprintf(b.Out, "testbed: building %s %s into %s\n", s.component, s.version, dir)
		// Build into a sibling directory and rename, so an interrupted build never looks complete.
		tmp := dir + ".partial"
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("cleaning %s: %w", tmp, err)
		}
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", tmp, err)
		}
		if err := s.build(ctx, tmp); err != nil {
			return fmt.Errorf("building %s %s: %w", s.component, s.version, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("installing %s: %w", dir, err)
		}
		fmt.Fprintf(b.Out, "testbed: built %s %s in %s\n", s.component, s.version, time.Since(start).Round(time.Second))
	}
	return nil
}

// complete reports whether every binary of component is present in dir.
func (b *Builder) complete(component, dir string) bool {
	for _, bin := range testbed.Binaries {
		if bin.Component != component {
			continue
		}
		if _, err := bin.Path(b.Root); err != nil {
			return false
		}
	}
	_, err := os.Stat(dir)
	return err == nil
}

// goEnv is the environment for every go command: a static build that ignores any go.work of
// the caller and may resolve the wrapper modules' requirements from the proxy.
func goEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
}

func (b *Builder) goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		_, _ = b.Out.Write(out.Bytes())
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// wrapperDir makes an empty directory for a wrapper module under <root>/src.
func (b *Builder) wrapperDir(name string) (string, error) {
	dir := filepath.Join(b.Root, "src", name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("cleaning %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	return dir, nil
}

// etcd builds the etcd server through a wrapper module (etcd's own go.mod has replace
// directives, so `go install ...@version` refuses it).
func (b *Builder) etcd(ctx context.Context, out string) error {
	dir, err := b.wrapperDir("etcd-" + testbed.EtcdVersion)
	if err != nil {
		return err
	}
	mod := fmt.Sprintf("module lockstep.local/testbed/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n", testbed.EtcdVersion)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return fmt.Errorf("writing etcd wrapper: %w", err)
	}
	return b.goCmd(ctx, dir, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, "etcd"), "go.etcd.io/etcd/server/v3")
}

// stagingRequire matches the `k8s.io/<module> v0.0.0` requirements in kubernetes' go.mod; each
// one is a staging module that kubernetes resolves with a local replace directive.
var stagingRequire = regexp.MustCompile(`^\s*(k8s\.io/[A-Za-z0-9._/-]+) v0\.0\.0\s*$`)

// KubernetesWrapper returns the go.mod of a module that builds k8s.io/kubernetes at version
// from the proxy: it pins each staging module to its published v0.<minor>.<patch> release.
// kubeGoMod is the content of kubernetes' own go.mod at that version.
func KubernetesWrapper(version string, kubeGoMod []byte) (string, error) {
	if !strings.HasPrefix(version, "v1.") {
		return "", fmt.Errorf("unexpected kubernetes version %q", version)
	}
	// Kubernetes v1.Y.Z publishes its staging modules as v0.Y.Z.
	staging := "v0." + strings.TrimPrefix(version, "v1.")
	goDirective := "go 1.26.0"
	var replaces []string
	sc := bufio.NewScanner(bytes.NewReader(kubeGoMod))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "go ") {
			goDirective = strings.TrimSpace(line)
		}
		if m := stagingRequire.FindStringSubmatch(line); m != nil {
			replaces = append(replaces, fmt.Sprintf("\t%s => %s %s", m[1], m[1], staging))
		}
	}
	if len(replaces) == 0 {
		return "", fmt.Errorf("no staging modules found in kubernetes %s go.mod", version)
	}
	return fmt.Sprintf("module lockstep.local/testbed/kubernetes\n\n%s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n%s\n)\n",
		goDirective, version, strings.Join(replaces, "\n")), nil
}

// kubernetes builds kube-apiserver, kube-controller-manager and kube-scheduler.
func (b *Builder) kubernetes(ctx context.Context, out string) error {
	version := testbed.KubernetesVersion
	dir, err := b.wrapperDir("kubernetes-" + version)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "k8s.io/kubernetes@"+version)
	cmd.Dir = dir
	cmd.Env = goEnv()
	raw, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("downloading k8s.io/kubernetes@%s: %w", version, err)
	}
	var info struct{ GoMod string }
	if err := json.Unmarshal(raw, &info); err != nil {
		return fmt.Errorf("reading go mod download output: %w", err)
	}
	kubeGoMod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return fmt.Errorf("reading kubernetes go.mod: %w", err)
	}
	mod, err := KubernetesWrapper(version, kubeGoMod)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return fmt.Errorf("writing kubernetes wrapper: %w", err)
	}
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags,
			"-X "+pkg+".gitVersion="+version,
			"-X "+pkg+".gitMajor="+major,
			"-X "+pkg+".gitMinor="+minor,
			"-X "+pkg+".gitTreeState=clean",
		)
	}
	return b.goCmd(ctx, dir, "build", "-trimpath", "-ldflags=-s -w "+strings.Join(ldflags, " "), "-o", out+string(filepath.Separator),
		"k8s.io/kubernetes/cmd/kube-apiserver",
		"k8s.io/kubernetes/cmd/kube-controller-manager",
		"k8s.io/kubernetes/cmd/kube-scheduler",
	)
}

// goInstall returns a step that runs `go install pkg@version` into the output directory: for
// modules without replace directives (kwok, metrics-server).
func (b *Builder) goInstall(pkgAtVersion string) func(context.Context, string) error {
	return func(ctx context.Context, out string) error {
		name := filepath.Base(strings.SplitN(pkgAtVersion, "@", 2)[0])
		dir, err := b.wrapperDir(name + "-" + strings.SplitN(pkgAtVersion, "@", 2)[1])
		if err != nil {
			return err
		}
		abs, err := filepath.Abs(out)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", out, err)
		}
		cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "-ldflags=-s -w", pkgAtVersion)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOBIN="+abs)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			_, _ = b.Out.Write(buf.Bytes())
			return fmt.Errorf("go install %s: %w", pkgAtVersion, err)
		}
		return nil
	}
}
