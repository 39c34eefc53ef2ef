// Package ociimage builds Lockstep's container images without a container engine: one image per
// binary, laid out like the Dockerfile's (distroless static, nonroot): the static binary at /app as
// the entrypoint, CA certificates, /etc/passwd and /etc/group with the nonroot user 65532, /tmp and
// the nonroot home. Images are written as OCI image-layout archives (tar) that containerd imports
// (`ctr images import`) and registries accept (`crane push`).
//
// Builds are reproducible: every timestamp is the given Created time, file order and modes are
// fixed, and layers are compressed deterministically, so the same inputs give the same digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image annotations and user.
const (
	// RefNameAnnotation is the OCI annotation that names the image in an index (its tag).
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ContainerdNameAnnotation is the full reference containerd gives the image on import.
	ContainerdNameAnnotation = "io.containerd.image.name"
	// NonRootUID is the user (and group) the images run as, distroless's nonroot.
	NonRootUID = 65532
	// Entrypoint is where the binary is.
	Entrypoint = "/app"
	// CACertsPath is where the CA bundle is (Go's crypto/x509 looks there first on Linux).
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// Spec is one image to build.
type Spec struct {
	// Repository and Tag name the image (e.g. ghcr.io/lockstep-dev/cronhpa, 0.1.0).
	Repository, Tag string
	// Binary is the static executable, placed at /app.
	Binary []byte
	// CACerts is the PEM bundle placed at CACertsPath.
	CACerts []byte
	// OS and Architecture are the image's platform (linux, amd64).
	OS, Architecture string
	// Created is the image's creation time and every file's modification time.
	Created time.Time
	// Labels are the image config's labels (org.opencontainers.image.*).
	Labels map[string]string
}

// Ref is the image's full reference.
func (s Spec) Ref() string { return s.Repository + ":" + s.Tag }

func (s Spec) validate() error {
	switch {
	case s.Repository == "" || s.Tag == "":
		return fmt.Errorf("image needs a repository and a tag, got %q:%q", s.Repository, s.Tag)
	case len(s.Binary) == 0:
		return fmt.Errorf("image %s: the binary is empty", s.Ref())
	case len(s.CACerts) == 0:
		return fmt.Errorf("image %s: the CA certificate bundle is empty", s.Ref())
	case s.OS == "" || s.Architecture == "":
		return fmt.Errorf("image %s: platform %q/%q is incomplete", s.Ref(), s.OS, s.Architecture)
	}
	return nil
}

// file is one entry of a layer.
type file struct {
	name     string
	mode     int64
	dir      bool
	uid, gid int
	data     []byte
}

// baseFiles is what distroless static nonroot provides that the binaries need.
func baseFiles(caCerts []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootUID)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", NonRootUID)
	return []file{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caCerts},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, dir: true, uid: NonRootUID, gid: NonRootUID},
		{name: "tmp", mode: 0o1777, dir: true},
	}
}

// layerTar writes files as an uncompressed tar with fixed metadata.
func layerTar(files []file, mtime time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func layer(files []file, mtime time.Time) (v1.Layer, error) {
	b, err := layerTar(files, mtime)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// Build builds the image: a base layer (users, CA certificates, /tmp) shared by every Lockstep
// image, and a layer with the binary.
func Build(s Spec) (v1.Image, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	base, err := layer(baseFiles(s.CACerts), s.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: base layer: %w", s.Ref(), err)
	}
	app, err := layer([]file{{name: path.Base(Entrypoint), mode: 0o755, data: s.Binary}}, s.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: binary layer: %w", s.Ref(), err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, app)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref(), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref(), err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = s.OS, s.Architecture
	cfg.Created = v1.Time{Time: s.Created}
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.User = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CACertsPath}
	cfg.Config.Labels = s.Labels
	cfg.History = nil
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref(), err)
	}
	return mutate.CreatedAt(img, v1.Time{Time: s.Created})
}

// WriteArchive writes img as an OCI image-layout archive: oci-layout, index.json naming the image
// (its tag, and its full reference for containerd), and the blobs, in a fixed order with fixed
// metadata, so the archive's bytes depend on the image only.
func WriteArchive(w io.Writer, img v1.Image, ref, tag string) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Size: int64(len(manifest)), Digest: digest,
			Annotations: map[string]string{RefNameAnnotation: tag, ContainerdNameAnnotation: ref},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", indexJSON); err != nil {
		return err
	}
	if err := put(blob(digest), manifest); err != nil {
		return err
	}
	if err := put(blob(cfgName), config); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("reading layer %s: %w", h, err)
		}
		if err := put(blob(h), data); err != nil {
			return err
		}
	}
	return tw.Close()
}
