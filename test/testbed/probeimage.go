package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lockstep-dev/lockstep/internal/ociimage"
)

// ProbeImage is the image of ./probe, the test bed's own workload for pods on the real node.
const ProbeImage = "lockstep.local/testbed/probe:1"

// probePackage is ./probe's import path; go builds it from anywhere in the module.
const probePackage = "github.com/lockstep-dev/lockstep/test/testbed/probe"

// BuildProbeImage compiles ./probe (static) and writes it as an OCI archive named ProbeImage
// into dir, for Options.RealNodeImages or Env.ImportImages. It returns the archive's path.
func BuildProbeImage(dir string) (string, error) {
	return BuildImage(dir, probePackage, ProbeImage)
}

// BuildImage compiles the Go package pkg of this module (static) and writes it as an OCI archive
// of image ref (repository:tag) into dir, named after the package's last element, for
// Options.RealNodeImages or Env.ImportImages. It returns the archive's path.
func BuildImage(dir, pkg, ref string) (string, error) {
	repo, tag, ok := strings.Cut(ref, ":")
	if !ok || repo == "" || tag == "" {
		return "", fmt.Errorf("image %q: want repository:tag", ref)
	}
	name := filepath.Base(pkg)
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("reading the %s binary: %w", name, err)
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return "", fmt.Errorf("reading the CA bundle (Debian's ca-certificates): %w", err)
	}
	img, err := ociimage.Build(ociimage.Spec{Repository: repo, Tag: tag, Binary: binary, CACerts: certs, OS: "linux", Architecture: runtime.GOARCH, Created: time.Unix(0, 0).UTC()})
	if err != nil {
		return "", err
	}
	archive := filepath.Join(dir, name+".tar")
	f, err := os.Create(archive)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", archive, err)
	}
	if err := ociimage.WriteArchive(f, img, ref, tag); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("writing %s: %w", archive, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", archive, err)
	}
	return archive, nil
}
