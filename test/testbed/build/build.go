// Package build compiles the test bed's binaries from the Go module proxy at the versions pinned
// in package testbed, into <root>/<component>-<version>/: the control plane (etcd, Kubernetes,
// kwok, metrics-server) and the real node (kubelet, containerd, runc, CNI plugins, and a pause
// image archive built from this repository).
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
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-dev/lockstep/internal/ociimage"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Builder builds missing binaries under Root and reports progress to Out.
type Builder struct {
	// Root is the directory that receives <component>-<version>/ subdirectories.
	Root string
	// Out receives one line per step and the output of failed go commands.
	Out io.Writer
	// Align is a build list (module path → version), normally the calling repository's. Each
	// component built through a wrapper module requires every module it shares with that list
	// at the list's version (the go command still takes a newer one where the component needs
	// it). The shared packages are then the same compile actions as the repository's own
	// static builds (CGO_ENABLED=0, -trimpath) and come from the Go build cache instead of being
	// compiled once more per component. Empty: each component keeps its own versions.
	Align map[string]string
}

// All builds every binary the test bed uses that is not already present.
func (b *Builder) All(ctx context.Context) error {
	steps := []struct {
		component string
		version   string
		build     func(context.Context, string) error
	}{
		// etcd's own go.mod has replace directives, so `go install ...@version` refuses it.
		{"etcd", testbed.EtcdVersion, b.moduleBuild("etcd", "go.etcd.io/etcd/server/v3", testbed.EtcdVersion, "go.etcd.io/etcd/server/v3")},
		{"kubernetes", testbed.KubernetesVersion, b.kubernetes(
			"k8s.io/kubernetes/cmd/kube-apiserver",
			"k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler",
		)},
		{"kwok", testbed.KwokVersion, b.moduleBuild("kwok", "sigs.k8s.io/kwok", testbed.KwokVersion, "sigs.k8s.io/kwok/cmd/kwok")},
		{"metrics-server", testbed.MetricsServerVersion, b.moduleBuild("metrics-server", "sigs.k8s.io/metrics-server", testbed.MetricsServerVersion, "sigs.k8s.io/metrics-server/cmd/metrics-server")},
		// The real node. The kubelet has its own directory so that adding it did not rebuild
		// the control plane's.
		{"kubelet", testbed.KubernetesVersion, b.kubernetes("k8s.io/kubernetes/cmd/kubelet")},
		{"containerd", testbed.ContainerdVersion, b.containerd},
		{"runc", testbed.RuncVersion, b.runc},
		{"cni-plugins", testbed.CNIPluginsVersion, b.goInstall(staticEnv, "",
			"github.com/containernetworking/plugins/plugins/main/bridge@"+testbed.CNIPluginsVersion,
			"github.com/containernetworking/plugins/plugins/ipam/host-local@"+testbed.CNIPluginsVersion,
			"github.com/containernetworking/plugins/plugins/main/loopback@"+testbed.CNIPluginsVersion,
		)},
		{"pause", testbed.PauseVersion, b.pause},
		// The load harness's ingress proxy.
		{"caddy", testbed.CaddyVersion, b.goInstall(staticEnv, "", "github.com/caddyserver/caddy/v2/cmd/caddy@"+testbed.CaddyVersion)},
	}
	root, err := filepath.Abs(b.Root)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", b.Root, err)
	}
	b.Root = root // go commands run in wrapper directories: every output path is absolute.
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
		for _, bin := range testbed.Binaries {
			if _, err := os.Stat(filepath.Join(tmp, bin.Name)); bin.Component == s.component && err != nil {
				return fmt.Errorf("building %s %s: %s was not produced: %w", s.component, s.version, bin.Name, err)
			}
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

// moduleBuild returns a step that builds the command pkg of module at version through a
// wrapper module that requires it (aligned with b.Align), as <output directory>/name.
func (b *Builder) moduleBuild(name, module, version, pkg string) func(context.Context, string) error {
	return func(ctx context.Context, out string) error {
		dir, err := b.wrapperDir(name + "-" + version)
		if err != nil {
			return err
		}
		mod := fmt.Sprintf("module lockstep.local/testbed/%s\n\ngo 1.26.0\n\nrequire %s %s\n", name, module, version)
		if err := b.writeWrapper(ctx, dir, mod); err != nil {
			return err
		}
		return b.goCmd(ctx, dir, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, name), pkg)
	}
}

// writeWrapper writes a wrapper module's go.mod and aligns its requirements with b.Align.
func (b *Builder) writeWrapper(ctx context.Context, dir, goMod string) error {
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, "go.mod"), err)
	}
	if len(b.Align) == 0 {
		return nil
	}
	required := map[string]string{}
	for range 10 {
		list, err := buildList(ctx, dir)
		if err != nil {
			return err
		}
		raise := AlignRequirements(list, b.Align, required)
		if len(raise) == 0 {
			return nil
		}
		args := []string{"mod", "edit"}
		for _, m := range raise {
			required[m.Path] = m.Version
			args = append(args, "-require="+m.Path+"@"+m.Version)
		}
		if err := b.goCmd(ctx, dir, args...); err != nil {
			return err
		}
	}
	return fmt.Errorf("aligning %s with the repository's build list did not settle in 10 rounds", dir)
}

// Module is a module path at a version.
type Module struct{ Path, Version string }

// AlignRequirements returns the requirements to add to a wrapper module whose build list is
// list so that every module it shares with align is required at align's version; required
// holds those added before, which are not added again (the component needs a newer version).
func AlignRequirements(list, align, required map[string]string) []Module {
	var out []Module
	for path, v := range list {
		want, ok := align[path]
		if !ok || want == "" || v == "" || want == v || required[path] == want {
			continue
		}
		out = append(out, Module{path, want})
	}
	slices.SortFunc(out, func(a, b Module) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// buildList is `go list -m all` of the module in dir: path → selected version (empty for the
// main module).
func buildList(ctx context.Context, dir string) (map[string]string, error) {
	return ModuleList(ctx, dir, goEnv())
}

// ModuleList runs `go list -m all` in dir with env and returns path → selected version (empty
// for the main module).
func ModuleList(ctx context.Context, dir string, env []string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "all")
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m all in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	list := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		path, version, _ := strings.Cut(line, " ")
		if path != "" {
			list[path] = version
		}
	}
	return list, nil
}

// stagingRequire matches the `k8s.io/<module> v0.0.0` requirements in kubernetes' go.mod; each
// one is a staging module that kubernetes resolves with a local replace directive.
var stagingRequire = regexp.MustCompile(`^\s*(k8s\.io/[A-Za-z0-9._/-]+) v0\.0\.0\s*$`)

// KubernetesWrapper returns the go.mod of a module that builds k8s.io/kubernetes at version
// from the proxy: it requires each staging module at its published v0.<minor>.<patch> release
// and replaces only the v0.0.0 that kubernetes' go.mod names, so the selected staging modules
// are the plain releases (the same module versions, and so the same compile actions, as in
// any module that requires them). kubeGoMod is the content of kubernetes' own go.mod at that
// version.
func KubernetesWrapper(version string, kubeGoMod []byte) (string, error) {
	if !strings.HasPrefix(version, "v1.") {
		return "", fmt.Errorf("unexpected kubernetes version %q", version)
	}
	// Kubernetes v1.Y.Z publishes its staging modules as v0.Y.Z.
	staging := "v0." + strings.TrimPrefix(version, "v1.")
	goDirective := "go 1.26.0"
	var requires, replaces []string
	sc := bufio.NewScanner(bytes.NewReader(kubeGoMod))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "go ") {
			goDirective = strings.TrimSpace(line)
		}
		if m := stagingRequire.FindStringSubmatch(line); m != nil {
			requires = append(requires, fmt.Sprintf("\t%s %s", m[1], staging))
			replaces = append(replaces, fmt.Sprintf("\t%s v0.0.0 => %s %s", m[1], m[1], staging))
		}
	}
	if len(replaces) == 0 {
		return "", fmt.Errorf("no staging modules found in kubernetes %s go.mod", version)
	}
	return fmt.Sprintf("module lockstep.local/testbed/kubernetes\n\n%s\n\nrequire k8s.io/kubernetes %s\n\nrequire (\n%s\n)\n\nreplace (\n%s\n)\n",
		goDirective, version, strings.Join(requires, "\n"), strings.Join(replaces, "\n")), nil
}

// kubernetes returns a step that builds the given k8s.io/kubernetes commands.
func (b *Builder) kubernetes(pkgs ...string) func(context.Context, string) error {
	return func(ctx context.Context, out string) error { return b.kubernetesCommands(ctx, out, pkgs) }
}

func (b *Builder) kubernetesCommands(ctx context.Context, out string, pkgs []string) error {
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
	if err := b.writeWrapper(ctx, dir, mod); err != nil {
		return err
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
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w " + strings.Join(ldflags, " "), "-o", out + string(filepath.Separator)}, pkgs...)
	return b.goCmd(ctx, dir, args...)
}

// staticEnv builds without cgo: the binaries need nothing from the host.
var staticEnv = []string{"CGO_ENABLED=0"}

// goInstall returns a step that runs `go install` of packages given as path@version (one
// module, one version) into the output directory, with extra environment and build tags: for
// modules without replace directives.
func (b *Builder) goInstall(env []string, tags string, pkgsAtVersion ...string) func(context.Context, string) error {
	return func(ctx context.Context, out string) error {
		first := pkgsAtVersion[0]
		pkg, version, _ := strings.Cut(first, "@")
		dir, err := b.wrapperDir(filepath.Base(pkg) + "-" + version)
		if err != nil {
			return err
		}
		abs, err := filepath.Abs(out)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", out, err)
		}
		args := []string{"install", "-trimpath", "-ldflags=-s -w"}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkgsAtVersion...)...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "GOWORK=off", "GOBIN="+abs), env...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			_, _ = b.Out.Write(buf.Bytes())
			return fmt.Errorf("go install %s: %w", strings.Join(pkgsAtVersion, " "), err)
		}
		return nil
	}
}

// containerd builds containerd, ctr and the runc shim, static. btrfs needs cgo headers and the
// shim does not serve gRPC, as in containerd's own release builds.
func (b *Builder) containerd(ctx context.Context, out string) error {
	v := testbed.ContainerdVersion
	const mod = "github.com/containerd/containerd/v2/cmd/"
	if err := b.goInstall(staticEnv, "no_btrfs", mod+"containerd@"+v, mod+"ctr@"+v)(ctx, out); err != nil {
		return err
	}
	return b.goInstall(staticEnv, "no_grpc", mod+"containerd-shim-runc-v2@"+v)(ctx, out)
}

// SeccompPrepareCommand installs what runc's build needs from Debian.
const SeccompPrepareCommand = "apt-get install -y --no-install-recommends libseccomp-dev"

// runc builds runc with cgo (its nsenter is C) and seccomp (pods with the RuntimeDefault
// profile, which restricted security contexts require), linked against Debian's libseccomp.
func (b *Builder) runc(ctx context.Context, out string) error {
	if err := exec.CommandContext(ctx, "pkg-config", "--exists", "libseccomp").Run(); err != nil {
		return fmt.Errorf("runc needs libseccomp's headers and pkg-config (%w); run `%s` (make testbed does)", err, SeccompPrepareCommand)
	}
	return b.goInstall([]string{"CGO_ENABLED=1"}, "seccomp urfave_cli_no_docs", "github.com/opencontainers/runc@"+testbed.RuncVersion)(ctx, out)
}

// PausePackage is the Go package of the real node's sandbox process.
const PausePackage = "github.com/lockstep-dev/lockstep/test/testbed/pause"

// hostCACerts is the CA bundle every image carries (Debian's ca-certificates).
const hostCACerts = "/etc/ssl/certs/ca-certificates.crt"

// pause builds the sandbox process from this repository and wraps it in an OCI archive named
// testbed.PauseImage.
func (b *Builder) pause(ctx context.Context, out string) error {
	bin := filepath.Join(out, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, PausePackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if outp, err := cmd.CombinedOutput(); err != nil {
		_, _ = b.Out.Write(outp)
		return fmt.Errorf("building %s: %w", PausePackage, err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading the pause binary: %w", err)
	}
	certs, err := os.ReadFile(hostCACerts)
	if err != nil {
		return fmt.Errorf("reading the CA bundle (Debian's ca-certificates): %w", err)
	}
	repo, tag, _ := strings.Cut(testbed.PauseImage, ":")
	spec := ociimage.Spec{Repository: repo, Tag: tag, Binary: binary, CACerts: certs, OS: "linux", Architecture: runtime.GOARCH, Created: time.Unix(0, 0).UTC()}
	img, err := ociimage.Build(spec)
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "pause.tar"))
	if err != nil {
		return fmt.Errorf("creating the pause archive: %w", err)
	}
	if err := ociimage.WriteArchive(f, img, spec.Ref(), tag); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the pause archive: %w", err)
	}
	return f.Close()
}
