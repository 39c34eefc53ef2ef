// Package install_test proves the install path end to end on the test bed's real node: the
// chart installed with helm from `make image`'s archives, every Lockstep pod running for real,
// each component doing its work under its own service account, certificate rotation without
// an unavailable window, and uninstall.
package install_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// components are the chart's four components, each one Deployment, one image and one service
// account named lockstep-<component>.
var components = []string{"cronhpa", "metrics-adapter", "vpa-inplace", "node-autoscaler"}

// ImagesEnv names the directory of `make image`'s archives; ../../bin/images when unset.
const ImagesEnv = "LOCKSTEP_IMAGES"

func TestMain(m *testing.M) {
	opts := testbed.Options{
		ControllerManager: true,
		Scheduler:         true,
		// kwok runs the nodes node-autoscaler's kwok provider launches.
		Kwok:          true,
		RealNodes:     1,
		HPASyncPeriod: 5 * time.Second,
	}
	if !framework.UnitOnly() {
		images, err := realNodeImages()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		opts.RealNodeImages = images
	}
	framework.Main(m, opts)
}

// realNodeImages lists Lockstep's image archives and builds the probe's and the demo API's.
func realNodeImages() ([]string, error) {
	dir := os.Getenv(ImagesEnv)
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "images")
	}
	var out []string
	for _, c := range components {
		archive := filepath.Join(dir, c+".tar")
		if _, err := os.Stat(archive); err != nil {
			return nil, fmt.Errorf("the install test needs the image archives: %w; run `make image` in the repository root (make test does)", err)
		}
		out = append(out, archive)
	}
	// One directory, rebuilt by every run: nothing accumulates.
	tmp := filepath.Join(os.TempDir(), "lockstep-install-probe")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	probe, err := testbed.BuildProbeImage(tmp)
	if err != nil {
		return nil, err
	}
	demoAPI, err := testbed.BuildImage(tmp, demoAPIPackage, demoAPIImage)
	if err != nil {
		return nil, err
	}
	return append(out, probe, demoAPI), nil
}
