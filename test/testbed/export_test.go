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

// RealNodeSysctls returns the kernel settings the bed's real node recorded before it started,
// which cleaning up restores.
func RealNodeSysctls(e *Env) map[string]string {
	out := map[string]string{}
	if e.realNode != nil {
		for k, v := range e.realNode.state.Sysctls {
			out[k] = v
		}
	}
	return out
}

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
	for _, f := range cniCacheFiles(cniCacheDir, filepath.Base(dir), dir) {
		out = append(out, "CNI cache "+f)
	}
	if _, err := net.InterfaceByName(realBridge); err == nil {
		out = append(out, "bridge "+realBridge)
	}
	return out
}
