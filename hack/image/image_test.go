package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/lockstep-dev/lockstep/internal/ociimage"
)

// imagesDir is where `make image` wrote the archives (LOCKSTEP_IMAGES, else the repository's
// bin/images). Unit-only runs (LOCKSTEP_UNIT_ONLY=1) skip tests that need them; any other run
// fails with the command that builds them.
func imagesDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LOCKSTEP_IMAGES")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "images")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("LOCKSTEP_UNIT_ONLY") == "1" {
			t.Skip("unit-only run: no image archives")
		}
		t.Fatalf("no image archives in %s: run `make image` first (%v)", dir, err)
	}
	return dir
}

func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "chart", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no appVersion in chart/Chart.yaml")
	}
	return string(m[1])
}

func binaries(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "..", "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) < 4 {
		t.Fatalf("binaries %v: want at least the four components", names)
	}
	return names
}

func inspect(t *testing.T, path string) *ociimage.Contents {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ociimage.Inspect(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestArchives checks every binary's archive as `make image` left it: its name, entrypoint and
// user, the binary at /app being the one in bin/, CA certificates, and nothing else to run.
func TestArchives(t *testing.T) {
	t.Parallel()
	dir := imagesDir(t)
	version := appVersion(t)
	for _, name := range binaries(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := inspect(t, filepath.Join(dir, name+".tar"))
			if want := "ghcr.io/lockstep-dev/" + name + ":" + version; c.Ref != want || c.Tag != version {
				t.Errorf("named %q (tag %q), want %q: the chart's default image", c.Ref, c.Tag, want)
			}
			cfg := c.Config.Config
			if strings.Join(cfg.Entrypoint, " ") != "/app" || cfg.User != "65532:65532" {
				t.Errorf("entrypoint %v, user %q", cfg.Entrypoint, cfg.User)
			}
			if c.Config.OS != "linux" || c.Config.Architecture != runtime.GOARCH {
				t.Errorf("platform %s/%s", c.Config.OS, c.Config.Architecture)
			}
			bin, err := os.ReadFile(filepath.Join(dir, "..", name))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(bin)
			if app := c.Files["/app"]; app.SHA256 != hex.EncodeToString(sum[:]) || app.Mode != 0o755 {
				t.Errorf("/app (mode %o) is not bin/%s", app.Mode, name)
			}
			if ca := c.Files[ociimage.CACertsPath]; !strings.Contains(string(ca.Data), "BEGIN CERTIFICATE") {
				t.Errorf("no CA certificates at %s", ociimage.CACertsPath)
			}
			for p := range c.Files {
				if strings.HasPrefix(p, "/bin") || strings.HasPrefix(p, "/usr") || strings.HasPrefix(p, "/sbin") {
					t.Errorf("image holds %s; it should hold no shell or userland", p)
				}
			}
			t.Logf("%s@%s", c.Ref, c.Digest)
		})
	}
}

// TestRebuildGivesSameDigest builds one binary and its image again from the same sources and
// inputs (the archive's own CA bundle and creation time) and expects the binary's bytes and the
// image's digest unchanged.
func TestRebuildGivesSameDigest(t *testing.T) {
	t.Parallel()
	dir := imagesDir(t)
	const name = "cronhpa"
	c := inspect(t, filepath.Join(dir, name+".tar"))
	tmp := t.TempDir()
	bin := filepath.Join(tmp, name)
	if err := buildBinary("../../cmd/"+name, bin, c.Config.Architecture); err != nil {
		t.Fatal(err)
	}
	s, err := spec(bin, "ghcr.io/lockstep-dev", c.Tag, c.Config.Architecture, c.Files[ociimage.CACertsPath].Data, c.Config.Created.Time)
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := write(s, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if digest != c.Digest {
		t.Errorf("rebuilt %s: digest %s, the archive has %s", name, digest, c.Digest)
	}
}
