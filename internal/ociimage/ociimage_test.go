package ociimage

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func spec() Spec {
	return Spec{
		Repository: "ghcr.io/lockstep-dev/cronhpa", Tag: "0.1.0",
		Binary:  []byte("\x7fELF pretend binary"),
		CACerts: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		OS:      "linux", Architecture: "amd64",
		Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Labels:  map[string]string{"org.opencontainers.image.version": "0.1.0"},
	}
}

func archive(t *testing.T, s Spec) []byte {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, img, s.Ref(), s.Tag); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBuildLayout(t *testing.T) {
	c, err := Inspect(bytes.NewReader(archive(t, spec())))
	if err != nil {
		t.Fatal(err)
	}
	if c.Ref != "ghcr.io/lockstep-dev/cronhpa:0.1.0" || c.Tag != "0.1.0" {
		t.Errorf("names %q %q", c.Ref, c.Tag)
	}
	cfg := c.Config.Config
	if len(cfg.Entrypoint) != 1 || cfg.Entrypoint[0] != "/app" || cfg.User != "65532:65532" {
		t.Errorf("entrypoint %v user %q, want [/app] 65532:65532", cfg.Entrypoint, cfg.User)
	}
	if c.Config.OS != "linux" || c.Config.Architecture != "amd64" || !c.Config.Created.Equal(spec().Created) {
		t.Errorf("platform %s/%s created %s", c.Config.OS, c.Config.Architecture, c.Config.Created)
	}
	for _, tc := range []struct {
		path string
		mode int64
		uid  int
		dir  bool
		data string
	}{
		{"/app", 0o755, 0, false, "\x7fELF pretend binary"},
		{"/etc/ssl/certs/ca-certificates.crt", 0o644, 0, false, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
		{"/tmp", 0o1777, 0, true, ""},
		{"/home/nonroot", 0o700, 65532, true, ""},
	} {
		f, ok := c.Files[tc.path]
		switch {
		case !ok:
			t.Errorf("%s missing; files: %v", tc.path, c.Files)
		case f.Mode != tc.mode || f.UID != tc.uid || f.Dir != tc.dir || string(f.Data) != tc.data:
			t.Errorf("%s: mode %o uid %d dir %t data %q", tc.path, f.Mode, f.UID, f.Dir, f.Data)
		}
	}
	if !strings.Contains(string(c.Files["/etc/passwd"].Data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user: %q", c.Files["/etc/passwd"].Data)
	}
	for name := range c.Files {
		if strings.HasPrefix(name, "/bin") || strings.HasPrefix(name, "/usr") {
			t.Errorf("unexpected %s: the image has no shell or userland", name)
		}
	}
}

func TestReproducible(t *testing.T) {
	a, b := archive(t, spec()), archive(t, spec())
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same inputs differ")
	}
	other := spec()
	other.Binary = []byte("\x7fELF another binary")
	ca, _ := Inspect(bytes.NewReader(a))
	cb, err := Inspect(bytes.NewReader(archive(t, other)))
	if err != nil {
		t.Fatal(err)
	}
	if ca.Digest == cb.Digest {
		t.Error("a different binary gave the same digest")
	}
}

func TestBadSpec(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"no tag":       func(s *Spec) { s.Tag = "" },
		"no binary":    func(s *Spec) { s.Binary = nil },
		"no CA bundle": func(s *Spec) { s.CACerts = nil },
		"no platform":  func(s *Spec) { s.Architecture = "" },
	} {
		s := spec()
		mod(&s)
		if _, err := Build(s); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

func TestInspectRefusesCorruption(t *testing.T) {
	a := archive(t, spec())
	if bytes.Contains(a, []byte("pretend")) {
		t.Fatal("the binary should be compressed in the archive")
	}
	// Rewrite the archive with one byte of every blob flipped in turn: each must be caught.
	var names []string
	tr := tar.NewReader(bytes.NewReader(a))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if strings.HasPrefix(h.Name, "blobs/") {
			names = append(names, h.Name)
		}
	}
	if len(names) != 4 {
		t.Fatalf("blobs %v, want manifest, config and two layers", names)
	}
	for _, victim := range names {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(a))
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			b, _ := io.ReadAll(tr)
			if h.Name == victim {
				b[len(b)/2] ^= 0xff
			}
			_ = tw.WriteHeader(h)
			_, _ = tw.Write(b)
		}
		_ = tw.Close()
		if _, err := Inspect(&out); err == nil {
			t.Errorf("corrupting %s passed inspection", victim)
		}
	}
}
