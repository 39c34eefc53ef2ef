package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Pinned versions of the control-plane binaries. `make testbed` builds exactly these; the
// Go libraries in go.mod (k8s.io/* v0.37.x) pair with this Kubernetes minor.
const (
	// KubernetesVersion is the kube-apiserver, kube-controller-manager and kube-scheduler version.
	KubernetesVersion = "v1.37.1"
	// EtcdVersion is the etcd server version.
	EtcdVersion = "v3.6.16"
	// KwokVersion is the kwok version that runs fake nodes and pods.
	KwokVersion = "v0.8.0"
	// MetricsServerVersion is the metrics-server version that serves metrics.k8s.io from kwok's
	// emulated kubelet resource metrics.
	MetricsServerVersion = "v0.9.0"

	// ContainerdVersion is the containerd (and shim, ctr) version of the real node.
	ContainerdVersion = "v2.4.2"
	// RuncVersion is the OCI runtime of the real node.
	RuncVersion = "v1.5.3"
	// CNIPluginsVersion is the version of the CNI plugins (bridge, host-local, loopback) that wire
	// the real node's pods to its bridge.
	CNIPluginsVersion = "v1.10.0"
	// CaddyVersion is the reverse proxy of the load harness's ingress tier.
	CaddyVersion = "v2.11.9"
	// PauseVersion tags the real node's sandbox image, built from ./pause.
	PauseVersion = "1"
)

// PauseImage is the real node's sandbox image, pinned in containerd and imported from
// the pause component's archive.
const PauseImage = "lockstep.local/testbed/pause:" + PauseVersion

// BinDirEnv names the environment variable that overrides where binaries are looked up.
const BinDirEnv = "LOCKSTEP_TESTBED_BIN"

// BuildCommand is what a user runs to build the binaries the test bed needs.
const BuildCommand = "make testbed"

// Binary names one control-plane executable and the version directory that holds it.
type Binary struct {
	Name    string
	Version string
	// Component is the directory prefix under bin/testbed: kubernetes, etcd, kwok,
	// metrics-server, or one of the real node's (kubelet, containerd, runc, cni-plugins, pause).
	Component string
	// Archive marks a file that is not executable (an OCI image archive).
	Archive bool
}

// Binaries lists every executable the test bed can start.
var Binaries = []Binary{
	{Name: "etcd", Version: EtcdVersion, Component: "etcd"},
	{Name: "kube-apiserver", Version: KubernetesVersion, Component: "kubernetes"},
	{Name: "kube-controller-manager", Version: KubernetesVersion, Component: "kubernetes"},
	{Name: "kube-scheduler", Version: KubernetesVersion, Component: "kubernetes"},
	{Name: "kwok", Version: KwokVersion, Component: "kwok"},
	{Name: "metrics-server", Version: MetricsServerVersion, Component: "metrics-server"},
	{Name: "kubelet", Version: KubernetesVersion, Component: "kubelet"},
	{Name: "containerd", Version: ContainerdVersion, Component: "containerd"},
	{Name: "containerd-shim-runc-v2", Version: ContainerdVersion, Component: "containerd"},
	{Name: "ctr", Version: ContainerdVersion, Component: "containerd"},
	{Name: "runc", Version: RuncVersion, Component: "runc"},
	{Name: "bridge", Version: CNIPluginsVersion, Component: "cni-plugins"},
	{Name: "host-local", Version: CNIPluginsVersion, Component: "cni-plugins"},
	{Name: "loopback", Version: CNIPluginsVersion, Component: "cni-plugins"},
	{Name: "pause.tar", Version: PauseVersion, Component: "pause", Archive: true},
	{Name: "caddy", Version: CaddyVersion, Component: "caddy"},
}

// RealNodeBinaries are the binaries a real node needs, besides the control plane.
var RealNodeBinaries = []string{"kubelet", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "bridge", "host-local", "loopback", "pause.tar"}

// Dir is the directory under the test bed root that holds this binary: <component>-<version>.
func (b Binary) Dir() string { return b.Component + "-" + b.Version }

// DefaultRoot returns the directory that holds the per-version binary directories: $LOCKSTEP_TESTBED_BIN
// if set, else bin/testbed in the repository that contains the working directory.
func DefaultRoot() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "test", "testbed")); err == nil {
				return filepath.Join(dir, "bin", "testbed"), nil
			}
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no Lockstep repository above %s; set %s to the directory built by %q", wd, BinDirEnv, BuildCommand)
		}
	}
}

// ErrMissingBinary is returned when a binary the test bed needs has not been built.
var ErrMissingBinary = errors.New("test bed binary not built")

// Path returns the full path of the binary under root, or an error that names the command
// that builds it.
func (b Binary) Path(root string) (string, error) {
	path := filepath.Join(root, b.Dir(), b.Name)
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() || (!b.Archive && info.Mode()&0o111 == 0) {
		return "", fmt.Errorf("%w: %s %s is not at %s; run `%s` in the repository root", ErrMissingBinary, b.Name, b.Version, path, BuildCommand)
	}
	return path, nil
}

// BinaryPath returns where a built test bed binary is (root empty: DefaultRoot), or an error
// naming the command that builds it.
func BinaryPath(root, name string) (string, error) {
	if root == "" {
		var err error
		if root, err = DefaultRoot(); err != nil {
			return "", err
		}
	}
	return lookupBinary(root, name)
}

func lookupBinary(root, name string) (string, error) {
	for _, b := range Binaries {
		if b.Name == name {
			return b.Path(root)
		}
	}
	return "", fmt.Errorf("unknown test bed binary %q", name)
}
