package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The real node's fixed host resources. One real node runs on a machine at a time (the host
// lock below): its bridge, pod range and the kubernetes Service address are host-wide.
const (
	// RealNodeName is the real node's Node name.
	RealNodeName = "real-node-0"
	// RealNodeIP is the node's address: the bridge's own address, which the pods use as their
	// gateway (the kubelet refuses a loopback node IP).
	RealNodeIP = "10.250.0.1"
	// RealPodSubnet is the range the real node's pods get addresses from; it stays on this
	// machine (no route leaves the bridge, no masquerading).
	RealPodSubnet = "10.250.0.0/24"
	realBridge    = "lockstep0"
	// kubernetesServiceIP is the kubernetes Service's ClusterIP (the first of
	// --service-cluster-ip-range): pods reach the API server there. With no kube-proxy on the
	// bed, the address sits on the bridge and the test bed forwards it to the API server.
	kubernetesServiceIP = "10.96.0.1"
	// RealNodePrepareCommand prepares a machine for the real node: it builds the kubelet,
	// containerd, runc, the CNI plugins and the pause image, and installs what runc's build needs.
	RealNodePrepareCommand = "make testbed"
	realNodeStateFile      = "realnode.json"
)

// realNodeLockPath is the host lock a real node holds for its whole life.
func realNodeLockPath() string { return filepath.Join(os.TempDir(), "lockstep-real-node.lock") }

// kubeletSysctls are the kernel settings the kubelet and the bridge plugin change; they are
// recorded before the node starts and restored when it is cleaned up.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

// realNodeState is what cleaning up a real node needs; it is written to the test bed directory
// before anything is created, so that the next test bed can clean up after a crash.
type realNodeState struct {
	Dir string `json:"dir"`
	// Network is the CNI network's name (the bed directory's), which names its cache entries.
	Network    string            `json:"network"`
	Bridge     string            `json:"bridge"`
	CgroupRoot string            `json:"cgroupRoot"`
	Socket     string            `json:"socket"`
	Sysctls    map[string]string `json:"sysctls"`
}

// realNode is a running real node: containerd and the kubelet (in Env.procs), the bridge, the
// API server forwarder, and the host lock.
type realNode struct {
	state     realNodeState
	lock      *os.File
	forwarder net.Listener
	ctr       string
}

// checkRealNodeHost says what this machine lacks for a real node, with the command that
// prepares it.
func checkRealNodeHost(opts Options) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the kubelet and containerd manage cgroups, mounts and network links)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "the ip command (Debian's iproute2)")
	}
	if len(cgroupMounts()) == 0 {
		missing = append(missing, "mounted cgroups under /sys/fs/cgroup")
	}
	var unbuilt []string
	for _, name := range RealNodeBinaries {
		if _, err := lookupBinary(opts.BinRoot, name); err != nil {
			unbuilt = append(unbuilt, name)
		}
	}
	if len(unbuilt) > 0 {
		missing = append(missing, fmt.Sprintf("%s built under %s", strings.Join(unbuilt, ", "), opts.BinRoot))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the real node needs %s; prepare this machine with `%s` in the repository root (see test/testbed/README.md)",
		ErrMissingBinary, strings.Join(missing, "; "), RealNodePrepareCommand)
}

// lockRealNode takes the host's real-node lock, waiting up to wait for another test bed's node to
// finish, then cleans up what crashed real nodes left behind.
func lockRealNode(ctx context.Context, wait time.Duration) (*os.File, error) {
	f, err := os.OpenFile(realNodeLockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the real node lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("another test bed's real node holds %s (waited %s): %w", realNodeLockPath(), wait, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	sweepStaleRealNodes()
	// A bridge left without a state file (a crash between its creation and the state's) goes too.
	_ = exec.Command("ip", "link", "del", realBridge).Run()
	return f, nil
}

// startRealNode brings up containerd and the kubelet on a fresh bridge and waits for the node to
// be Ready. The host lock is already held.
func (e *Env) startRealNode(ctx context.Context) error {
	rn := e.realNode
	dir := filepath.Join(e.Dir, "node")
	rn.state = realNodeState{
		Dir:        dir,
		Network:    filepath.Base(e.Dir),
		Bridge:     realBridge,
		CgroupRoot: "/" + filepath.Base(e.Dir),
		Socket:     filepath.Join(dir, "run", "containerd.sock"),
		Sysctls:    readSysctls(),
	}
	for _, sub := range []string{"run", "containerd", "kubelet", "pod-logs", "cni", "ipam"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("creating real node directory: %w", err)
		}
	}
	data, err := json.Marshal(rn.state)
	if err != nil {
		return fmt.Errorf("encoding real node state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(e.Dir, realNodeStateFile), data, 0o600); err != nil {
		return fmt.Errorf("writing real node state: %w", err)
	}
	if err := makeCgroupRoot(rn.state.CgroupRoot); err != nil {
		return err
	}
	if err := createBridge(); err != nil {
		return err
	}
	if err := rn.forwardAPIServer(strings.TrimPrefix(e.APIServerURL, "https://")); err != nil {
		return err
	}
	if err := e.startContainerd(ctx); err != nil {
		return err
	}
	pause, err := lookupBinary(e.opts.BinRoot, "pause.tar")
	if err != nil {
		return err
	}
	if err := e.ImportImages(ctx, append([]string{pause}, e.opts.RealNodeImages...)...); err != nil {
		return err
	}
	return e.startKubelet(ctx)
}

// createBridge makes the node's bridge with the node address and the kubernetes Service address.
func createBridge() error {
	steps := [][]string{
		{"link", "add", realBridge, "type", "bridge"},
		{"addr", "add", RealNodeIP + "/24", "dev", realBridge},
		{"addr", "add", kubernetesServiceIP + "/32", "dev", realBridge},
		{"link", "set", realBridge, "up"},
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// forwardAPIServer relays the kubernetes Service address (port 443) to the API server on
// loopback, which pods cannot reach: the TLS session passes through unchanged, and the API
// server's certificate names 10.96.0.1.
func (rn *realNode) forwardAPIServer(target string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(kubernetesServiceIP, "443"))
	if err != nil {
		return fmt.Errorf("listening on the kubernetes Service address: %w", err)
	}
	rn.forwarder = l
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go relay(in, target)
		}
	}()
	return nil
}

func relay(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

func (e *Env) startContainerd(ctx context.Context) error {
	rn := e.realNode
	dir := rn.state.Dir
	runc, err := lookupBinary(e.opts.BinRoot, "runc")
	if err != nil {
		return err
	}
	bridge, err := lookupBinary(e.opts.BinRoot, "bridge")
	if err != nil {
		return err
	}
	containerd, err := lookupBinary(e.opts.BinRoot, "containerd")
	if err != nil {
		return err
	}
	if rn.ctr, err = lookupBinary(e.opts.BinRoot, "ctr"); err != nil {
		return err
	}
	cniConf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}`, rn.state.Network, realBridge, filepath.Join(dir, "ipam"), RealPodSubnet, RealNodeIP)
	if err := os.WriteFile(filepath.Join(dir, "cni", "10-lockstep.conflist"), []byte(cniConf), 0o644); err != nil {
		return fmt.Errorf("writing the CNI configuration: %w", err)
	}
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %q

  [plugins.'io.containerd.cri.v1.runtime']
    # The sandbox has no CAP_SYS_RESOURCE: never lower a process's OOM score below ours.
    restrict_oom_score_adj = true
    # Network namespaces under this node's directory, so that cleaning up finds them.
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%q]
      conf_dir = %q

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
`, filepath.Join(dir, "containerd"), filepath.Join(dir, "run"), rn.state.Socket, rn.state.Socket+".ttrpc",
		PauseImage, runc, filepath.Dir(bridge), filepath.Join(dir, "cni"))
	configPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return fmt.Errorf("writing the containerd configuration: %w", err)
	}
	// containerd finds its shim next to itself or on PATH.
	env := append(os.Environ(), "PATH="+filepath.Dir(containerd)+string(os.PathListSeparator)+os.Getenv("PATH"))
	p, err := e.startWithEnv("containerd", env, []string{"--config", configPath, "--log-level", "warn"})
	if err != nil {
		return err
	}
	for {
		if p.exited() {
			return p.earlyExitError()
		}
		if err := exec.CommandContext(ctx, rn.ctr, "--address", rn.state.Socket, "version").Run(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd not serving on %s; log %s:\n%s", rn.state.Socket, p.logPath, p.logTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ImportImages imports OCI image archives into the real node's containerd (namespace k8s.io),
// so that pods run them with imagePullPolicy IfNotPresent or Never and no registry.
func (e *Env) ImportImages(ctx context.Context, archives ...string) error {
	if e.realNode == nil || e.realNode.ctr == "" {
		return errors.New("the test bed has no real node (Options.RealNodes)")
	}
	for _, archive := range archives {
		cmd := exec.CommandContext(ctx, e.realNode.ctr, "--address", e.realNode.state.Socket, "--namespace", "k8s.io",
			"images", "import", "--all-platforms", "--snapshotter", "overlayfs", archive)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("importing %s into the real node: %w: %s", archive, err, out)
		}
	}
	return nil
}

func (e *Env) startKubelet(ctx context.Context) error {
	rn := e.realNode
	dir := rn.state.Dir
	nodeIP := net.ParseIP(RealNodeIP)
	client, err := e.CA.Sign(CertRequest{CommonName: "system:node:" + RealNodeName, Organization: []string{"system:nodes"}, Client: true})
	if err != nil {
		return err
	}
	cfg, err := identityConfigFromPair(e.CA, e.APIServerURL, client)
	if err != nil {
		return err
	}
	kubeconfig, err := writeKubeconfig(cfg, e.Dir, "kubelet")
	if err != nil {
		return err
	}
	serving, err := e.CA.Sign(CertRequest{CommonName: RealNodeName, DNSNames: []string{RealNodeName}, IPs: []net.IP{nodeIP}, Server: true})
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(e.Dir, "kubelet-serving")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	healthzPort, err := FreePort()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
podLogsDir: %q
maxPods: 110
serializeImagePulls: false
# Imported images must stay: no registry can bring them back.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
nodeStatusUpdateFrequency: 2s
syncFrequency: 10s
fileCheckFrequency: 5s
`, RealNodeIP, port, healthzPort, certFile, keyFile, e.pki.caFile, rn.state.Socket, rn.state.CgroupRoot, filepath.Join(dir, "pod-logs"))
	configPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return fmt.Errorf("writing the kubelet configuration: %w", err)
	}
	p, err := e.start("kubelet", []string{
		"--config=" + configPath,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(dir, "kubelet"),
		"--cert-dir=" + filepath.Join(dir, "kubelet", "pki"),
		"--hostname-override=" + RealNodeName,
		"--node-ip=" + RealNodeIP,
		"--node-labels=" + RealNodeLabel + "=true",
		"--v=1",
	})
	if err != nil {
		return err
	}
	cs, err := e.Clientset()
	if err != nil {
		return err
	}
	for {
		if p.exited() {
			return p.earlyExitError()
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err == nil && nodeReady(node) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("real node %s not Ready; kubelet log %s:\n%s", RealNodeName, p.logPath, p.logTail(30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RealNodeLabel marks the real node, for pods that must run for real (nodeSelector).
const RealNodeLabel = "testbed.lockstep.dev/real-node"

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stop cleans the node up after its processes (kubelet, containerd) were stopped.
func (rn *realNode) stop() error {
	if rn.forwarder != nil {
		_ = rn.forwarder.Close()
	}
	err := cleanRealNode(rn.state)
	if err == nil && rn.state.Dir != "" {
		// Clean: nothing is left for a later sweep (the directory may be kept for its logs).
		_ = os.Remove(filepath.Join(filepath.Dir(rn.state.Dir), realNodeStateFile))
	}
	if rn.lock != nil {
		_ = rn.lock.Close() // releases the flock.
	}
	return err
}

// cleanRealNode removes everything a real node made on the host: it kills the pods' processes
// and the containerd shims, unmounts everything under the node's directory, and removes the
// pods' cgroups, the bridge and the CNI cache entries, and puts the kernel settings back.
func cleanRealNode(st realNodeState) error {
	var errs []error
	if st.CgroupRoot != "" && st.CgroupRoot != "/" {
		killCgroupProcesses(st.CgroupRoot)
	}
	if st.Socket != "" {
		killShims(st.Socket)
	}
	if st.Dir != "" {
		if err := unmountUnder(st.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if st.CgroupRoot != "" && st.CgroupRoot != "/" {
		if err := removeCgroups(st.CgroupRoot); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Bridge != "" {
		if _, err := net.InterfaceByName(st.Bridge); err == nil {
			if out, err := exec.Command("ip", "link", "del", st.Bridge).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("deleting bridge %s: %w: %s", st.Bridge, err, out))
			}
		}
	}
	removeContainerLogLinks(st.Dir)
	for _, f := range st.cniCacheFiles(cniCacheDir) {
		_ = os.Remove(f)
	}
	restoreSysctls(st.Sysctls)
	return errors.Join(errs...)
}

// sweepStaleRealNodes cleans up real nodes of test beds whose process is gone; the caller holds
// the host lock.
func sweepStaleRealNodes() {
	for _, dir := range staleDirs() {
		data, err := os.ReadFile(filepath.Join(dir, realNodeStateFile))
		if err != nil {
			continue
		}
		var st realNodeState
		if json.Unmarshal(data, &st) != nil {
			continue
		}
		if cleanRealNode(st) == nil {
			_ = os.RemoveAll(dir)
		}
	}
}

// cgroupMounts returns the mount points of the cgroup hierarchies (v1 controllers and v2).
func cgroupMounts() []string {
	var out []string
	for _, m := range mountInfo() {
		if m.fsType == "cgroup" || m.fsType == "cgroup2" {
			out = append(out, m.point)
		}
	}
	return out
}

type mount struct{ point, fsType string }

// mountInfo parses /proc/self/mountinfo.
func mountInfo() []mount {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mount
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, mount{point: unescapeMount(fields[4]), fsType: fields[sep+1]})
	}
	return out
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy; cpuset children start
// with no CPUs or memory nodes on v1, so they get their parent's.
func makeCgroupRoot(root string) error {
	for _, mnt := range cgroupMounts() {
		dir := filepath.Join(mnt, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if parent, err := os.ReadFile(filepath.Join(mnt, f)); err == nil {
				_ = os.WriteFile(filepath.Join(dir, f), parent, 0o644)
			}
		}
	}
	return nil
}

// cgroupDirs returns root's cgroup directories in every hierarchy, deepest first.
func cgroupDirs(root string) []string {
	var dirs []string
	for _, mnt := range cgroupMounts() {
		_ = filepath.WalkDir(filepath.Join(mnt, root), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// killCgroupProcesses SIGKILLs every process in root's cgroups until none is left (10 s at most).
func killCgroupProcesses(root string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		alive := 0
		for _, dir := range cgroupDirs(root) {
			data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					alive++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if alive == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killShims SIGKILLs the containerd shims serving the containerd at socket: they outlive
// containerd by design.
func killShims(socket string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && strings.Contains(string(cmdline), socket) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder detaches every mount below dir, deepest first, until none is left.
func unmountUnder(dir string) error {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for range 10 {
		var points []string
		for _, m := range mountInfo() {
			if strings.HasPrefix(m.point, prefix) {
				points = append(points, m.point)
			}
		}
		if len(points) == 0 {
			return nil
		}
		// Longest path first: children before parents.
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	return fmt.Errorf("mounts left under %s", dir)
}

// removeCgroups removes root's cgroups in every hierarchy, retrying while the last processes exit.
func removeCgroups(root string) error {
	var left []string
	for range 50 {
		left = left[:0]
		for _, dir := range cgroupDirs(root) {
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
				left = append(left, dir)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cgroups left: %s", strings.Join(left, ", "))
}

// removeContainerLogLinks removes the kubelet's /var/log/containers links into dir.
func removeContainerLogLinks(dir string) {
	if dir == "" {
		return
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, dir+"/") {
			_ = os.Remove(l)
		}
	}
}

// cniCacheDir is where libcni (in containerd) caches each attachment's result; a pod killed
// without a CNI DEL leaves its entries.
const cniCacheDir = "/var/lib/cni/results"

// cniCacheFiles returns the node's entries in the CNI cache directory cacheDir.
func (st realNodeState) cniCacheFiles(cacheDir string) []string {
	network := st.Network
	if network == "" && st.Dir != "" {
		network = filepath.Base(filepath.Dir(st.Dir)) // a state file from before the field
	}
	return cniCacheFiles(cacheDir, network, st.Dir)
}

// cniCacheFiles returns the CNI cache entries in cacheDir of the real node whose network is
// named network and whose directory is dir: named after the network, or, for containerd's own
// loopback network, naming a network namespace under dir.
func cniCacheFiles(cacheDir, network, dir string) []string {
	if network == "" || dir == "" {
		return nil
	}
	name := network
	var out []string
	entries, _ := os.ReadDir(cacheDir)
	for _, e := range entries {
		path := filepath.Join(cacheDir, e.Name())
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, path)
			continue
		}
		var entry struct {
			NetNS string `json:"netns"`
		}
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &entry) == nil && strings.HasPrefix(entry.NetNS, dir+"/") {
			out = append(out, path)
		}
	}
	return out
}

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			out[k] = strings.TrimSpace(string(v))
		}
	}
	return out
}

func restoreSysctls(values map[string]string) {
	for k, v := range values {
		if !strings.Contains(k, "..") {
			_ = os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644)
		}
	}
}
