// Command image builds Lockstep's binaries and their OCI image archives without a container
// engine. Each package (cmd/<name>) is built as a static, reproducible Linux binary into --bin-dir
// (`make build` stops there: --out ""), then packed as <out>/<name>.tar, named
// <registry>/<name>:<tag> (`make image`), and its reference, digest and size are printed. Same
// sources, toolchain, CA bundle and time give the same digests.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/lockstep-dev/lockstep/internal/ociimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "bin/images", `directory the archives are written to ("": build the binaries only)`)
	binDir := flag.String("bin-dir", "bin/image-bin", "directory the static binaries are built into")
	registry := flag.String("registry", "ghcr.io/lockstep-dev", "registry and namespace of the images (the chart's image.registry)")
	tag := flag.String("tag", "", "image tag (the chart's appVersion)")
	caCerts := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates put in the images")
	epoch := flag.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "creation time of the images and their files, in seconds since 1970 (the last commit's time)")
	arch := flag.String("arch", runtime.GOARCH, "architecture to build for")
	flag.Parse()
	if flag.NArg() == 0 || (*out != "" && *tag == "") {
		return errors.New("usage: image [--out DIR --tag T] [flags] PACKAGE")
	}
	if err := os.MkdirAll(*binDir, 0o750); err != nil {
		return err
	}
	if *out == "" {
		for _, pkg := range flag.Args() {
			if err := buildBinary(pkg, filepath.Join(*binDir, filepath.Base(pkg)), *arch); err != nil {
				return err
			}
		}
		return nil
	}
	secs, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("--source-date-epoch %q: want seconds since 1970: %w", *epoch, err)
	}
	certs, err := os.ReadFile(*caCerts)
	if err != nil {
		return fmt.Errorf("reading CA certificates (Debian: apt-get install ca-certificates): %w", err)
	}
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	for _, pkg := range flag.Args() {
		bin := filepath.Join(*binDir, filepath.Base(pkg))
		if err := buildBinary(pkg, bin, *arch); err != nil {
			return err
		}
		s, err := spec(bin, *registry, *tag, *arch, certs, time.Unix(secs, 0).UTC())
		if err != nil {
			return err
		}
		digest, size, err := write(s, *out)
		if err != nil {
			return err
		}
		fmt.Printf("%s@%s %s (%.1f MiB)\n", s.Ref(), digest, filepath.Join(*out, filepath.Base(bin)+".tar"), float64(size)/(1<<20))
	}
	return nil
}

// buildBinary builds the package as a static, reproducible Linux binary: no cgo, no paths, no
// VCS stamp and no build ID, so the bytes depend on the sources and the toolchain only.
func buildBinary(pkg, out, arch string) error {
	cmd := exec.Command("go", "build", //nolint:gosec // the packages are the tool's arguments
		"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	return nil
}

// spec is the image of one binary.
func spec(bin, registry, tag, arch string, certs []byte, created time.Time) (ociimage.Spec, error) {
	data, err := os.ReadFile(bin) //nolint:gosec // the binary just built
	if err != nil {
		return ociimage.Spec{}, err
	}
	name := filepath.Base(bin)
	return ociimage.Spec{
		Repository: registry + "/" + name, Tag: tag, Binary: data, CACerts: certs,
		OS: "linux", Architecture: arch, Created: created,
		Labels: map[string]string{
			"org.opencontainers.image.title":   name,
			"org.opencontainers.image.version": tag,
			"org.opencontainers.image.source":  "https://github.com/lockstep-dev/lockstep",
		},
	}, nil
}

// write builds the image and writes its archive into dir as <name>.tar.
func write(s ociimage.Spec, dir string) (digest string, size int, err error) {
	img, err := ociimage.Build(s)
	if err != nil {
		return "", 0, err
	}
	var buf bytes.Buffer
	if err := ociimage.WriteArchive(&buf, img, s.Ref(), s.Tag); err != nil {
		return "", 0, fmt.Errorf("writing %s: %w", s.Ref(), err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", 0, err
	}
	name := s.Labels["org.opencontainers.image.title"]
	if err := os.WriteFile(filepath.Join(dir, name+".tar"), buf.Bytes(), 0o644); err != nil { //nolint:gosec // images are public
		return "", 0, err
	}
	return d.String(), buf.Len(), nil
}
