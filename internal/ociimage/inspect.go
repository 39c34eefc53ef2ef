package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// File is a file of an image as its layers leave it.
type File struct {
	Mode     int64
	UID, GID int
	Dir      bool
	Size     int64
	// Data is the content of regular files up to 1 MiB (nil for larger ones); SHA256 is the hex
	// digest of every regular file's content.
	Data   []byte
	SHA256 string
}

// Contents is what an archive holds, read back and checked.
type Contents struct {
	// Ref and Tag are the names in index.json; Digest is the manifest's.
	Ref, Tag, Digest string
	Config           v1.ConfigFile
	// Files maps absolute paths to the files the layers leave.
	Files map[string]File
}

// Inspect reads an OCI image-layout archive that holds one image and checks that every blob
// matches its digest, the manifest references the config and layers present, and the layers'
// uncompressed digests match the config's diff IDs.
func Inspect(r io.Reader) (*Contents, error) {
	entries := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading archive: %w", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", h.Name, err)
		}
		entries[h.Name] = b
	}
	if _, ok := entries["oci-layout"]; !ok {
		return nil, errors.New("no oci-layout file: not an OCI image-layout archive")
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	desc := index.Manifests[0]
	blob := func(h v1.Hash) ([]byte, error) {
		b, ok := entries["blobs/"+h.Algorithm+"/"+h.Hex]
		if !ok {
			return nil, fmt.Errorf("blob %s missing", h)
		}
		if sum := sha256.Sum256(b); h.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != h.Hex {
			return nil, fmt.Errorf("blob %s does not match its digest", h)
		}
		return b, nil
	}
	raw, err := blob(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	rawCfg, err := blob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &Contents{Ref: desc.Annotations[ContainerdNameAnnotation], Tag: desc.Annotations[RefNameAnnotation], Digest: desc.Digest.String(), Files: map[string]File{}}
	if err := json.Unmarshal(rawCfg, &c.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(m.Layers) != len(c.Config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%d layers but %d diff IDs", len(m.Layers), len(c.Config.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		b, err := blob(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if err := readLayer(b, c.Config.RootFS.DiffIDs[i], c.Files); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return c, nil
}

func readLayer(compressed []byte, diffID v1.Hash, files map[string]File) error {
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != diffID.Hex {
		return fmt.Errorf("uncompressed content does not match diff ID %s", diffID)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f := File{Mode: h.Mode, UID: h.Uid, GID: h.Gid, Dir: h.Typeflag == tar.TypeDir, Size: h.Size}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			f.SHA256 = hex.EncodeToString(sum[:])
			if len(data) <= 1<<20 {
				f.Data = data
			}
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = f
	}
}
