package testbed

import (
	"net"
	"os"
	"path/filepath"
	"strings"
)

// SweepStaleDirs exposes sweepStaleDirs to the external test package.
var SweepStaleDirs = sweepStaleDirs

// ReadSysctls exposes the kernel settings a real node changes and restores.
var ReadSysctls = readSysctls

// RealNodeLeftovers lists what a real node of the test bed in dir left on the host: shims,
// processes in its cgroups, mounts under dir, its cgroups and the bridge.
func RealNodeLeftovers(dir string) []string {
	var out []string
	socket := filepath.Join(dir, "node", "run", "containerd.sock")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), socket) && strings.Contains(string(cmdline), "containerd-shim") {
			out = append(out, "shim pid "+e.Name())
		}
	}
	for _, m := range mountInfo() {
		if strings.HasPrefix(m.point, dir+"/") {
			out = append(out, "mount "+m.point)
		}
	}
	for _, d := range cgroupDirs("/" + filepath.Base(dir)) {
		out = append(out, "cgroup "+d)
	}
	if _, err := net.InterfaceByName(realBridge); err == nil {
		out = append(out, "bridge "+realBridge)
	}
	return out
}
