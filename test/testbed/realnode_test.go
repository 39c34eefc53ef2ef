package testbed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

const probeArchiveEnv = "LOCKSTEP_TESTBED_PROBE_ARCHIVE"

// probeArchive builds ./probe into an OCI archive the real node imports.
func probeArchive(t *testing.T) string {
	t.Helper()
	archive, err := testbed.BuildProbeImage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return archive
}

// probePod runs the probe on the real node the way the chart's pods run: restricted security
// context (RuntimeDefault seccomp, non-root, no capabilities, read-only root), a readiness
// probe the kubelet really sends, a CPU limit that lands in a cgroup, no registry.
func probePod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{testbed.RealNodeLabel: "true"},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "probe",
				Image:           testbed.ProbeImage,
				ImagePullPolicy: corev1.PullNever,
				Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// runProbe creates the probe pod in a fresh namespace and waits until it is Ready.
func runProbe(ctx context.Context, cs kubernetes.Interface) (*corev1.Pod, error) {
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "real-"}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		// Pods are refused until the service account controller made "default".
		if _, last = cs.CoreV1().Pods(ns.Name).Create(ctx, probePod("probe"), metav1.CreateOptions{}); last == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last != nil {
		return nil, last
	}
	for time.Now().Before(deadline) {
		pod, err := cs.CoreV1().Pods(ns.Name).Get(ctx, "probe", metav1.GetOptions{})
		if err == nil && podReady(pod) {
			return pod, nil
		}
		if err == nil {
			last = fmt.Errorf("pod not Ready: phase %s, conditions %+v, containers %+v", pod.Status.Phase, pod.Status.Conditions, pod.Status.ContainerStatuses)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, last
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// A real node joins the bed, runs a pod for real (real probes, cgroup limits, the API server
// reached in-cluster), and Stop leaves nothing behind on the host.
func TestRealNodeRunsPodsAndCleansUp(t *testing.T) {
	framework.Env(t) // skipped in unit-only runs, like every bed test.
	ctx := context.Background()
	env, err := testbed.Start(ctx, testbed.Options{ControllerManager: true, Scheduler: true, RealNodes: 1, RealNodeImages: []string{probeArchive(t)}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = env.Stop()
		}
	})
	t.Logf("real node Ready and images imported %s after its first step", env.RealNodeStartup.Round(time.Millisecond))
	cs, err := env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pod, err := runProbe(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod Ready %s after its creation", time.Since(start).Round(time.Millisecond))
	if pod.Spec.NodeName != testbed.RealNodeName || !strings.HasPrefix(pod.Status.PodIP, "10.250.0.") {
		t.Fatalf("pod on %q with IP %q, want the real node and its pod range", pod.Spec.NodeName, pod.Status.PodIP)
	}

	// The test reaches the pod over the bridge; the pod reaches the API server as in a cluster.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + pod.Status.PodIP + ":8080/apiserver")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), testbed.KubernetesVersion) {
		t.Fatalf("the pod's in-cluster call to the API server: HTTP %d: %s", resp.StatusCode, body)
	}

	// The CPU limit is in the pod's cgroup (v1: cfs quota 20000 of 100000; v2: cpu.max).
	if !cgroupHasLimit("/"+filepath.Base(env.Dir), "20000") {
		t.Fatalf("no cgroup under %s carries the pod's 200m CPU limit", filepath.Base(env.Dir))
	}

	// The settings from before the node, recorded once it held the host lock: read any earlier
	// and another package's real node could have had them changed.
	sysctls := testbed.RealNodeSysctls(env)
	dir := env.Dir
	env.KeepDir() // the directory stays to be inspected; Stop still cleans the host.
	stopped = true
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if left := testbed.RealNodeLeftovers(dir); len(left) > 0 {
		t.Fatalf("Stop left on the host: %s", strings.Join(left, "; "))
	}
	if after := testbed.ReadSysctls(); !equalMaps(sysctls, after) {
		t.Fatalf("kernel settings not restored: before %v, after %v", sysctls, after)
	}
}

func cgroupHasLimit(root, quota string) bool {
	found := false
	for _, base := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"} {
		_ = filepath.WalkDir(filepath.Join(base, root), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if name := d.Name(); name == "cpu.cfs_quota_us" || name == "cpu.max" {
				if data, err := os.ReadFile(path); err == nil && strings.HasPrefix(strings.TrimSpace(string(data)), quota) {
					found = true
				}
			}
			return nil
		})
	}
	return found
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// runRealNodeChild is the crash test's child: a bed with a real node running a pod, then killed.
func runRealNodeChild() {
	ctx := context.Background()
	env, err := testbed.Start(ctx, testbed.Options{ControllerManager: true, Scheduler: true, RealNodes: 1, RealNodeImages: []string{os.Getenv(probeArchiveEnv)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: start:", err)
		os.Exit(3)
	}
	cs, err := env.Clientset()
	if err == nil {
		_, err = runProbe(ctx, cs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: probe pod:", err)
		os.Exit(3)
	}
	data, _ := json.Marshal(leakReport{Pids: env.Pids(), Dir: env.Dir})
	if err := os.WriteFile(os.Getenv(leakOutEnv), data, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "child: report:", err)
		os.Exit(3)
	}
	select {} // until the parent kills it.
}

// A test bed killed with its real node running leaves containers, shims, mounts, cgroups and
// the bridge behind; the next test bed to start sweeps all of it.
func TestRealNodeCrashIsSweptAtNextStart(t *testing.T) {
	framework.Env(t)
	out := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leakModeEnv+"=real-node", leakOutEnv+"="+out, probeArchiveEnv+"="+probeArchive(t))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var report leakReport
	// The child may wait for another package's real node first.
	framework.Eventually(t, 35*time.Minute, func(context.Context) error {
		select {
		case err := <-exited:
			t.Fatalf("child ended before reporting: %v\n%s", err, stderr.String())
		default:
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return fmt.Errorf("child has not reported (stderr: %s)", stderr.String())
		}
		return json.Unmarshal(data, &report)
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	if err := <-exited; err == nil {
		t.Fatal("the child exited cleanly; it should have been killed")
	}
	framework.Eventually(t, 15*time.Second, func(context.Context) error {
		for name, pid := range report.Pids {
			if !processGone(pid) {
				return fmt.Errorf("%s (pid %d) still running after the child was killed", name, pid)
			}
		}
		return nil
	})
	// The settings the child's node recorded before it started, which the sweep restores.
	var state struct {
		Sysctls map[string]string `json:"sysctls"`
	}
	if data, err := os.ReadFile(filepath.Join(report.Dir, "realnode.json")); err != nil || json.Unmarshal(data, &state) != nil || len(state.Sysctls) == 0 {
		t.Fatalf("the child's real node state: %v", err)
	}
	sysctls := state.Sysctls
	left := testbed.RealNodeLeftovers(report.Dir)
	if !containsPrefix(left, "shim") || !containsPrefix(left, "bridge") || !containsPrefix(left, "mount") || !containsPrefix(left, "CNI cache") {
		t.Fatalf("the killed child should have left shims, mounts, its bridge and its pod's CNI cache entries behind, found %v", left)
	}
	testbed.SweepStaleDirs()
	if left := testbed.RealNodeLeftovers(report.Dir); len(left) > 0 {
		t.Fatalf("the sweep left: %s", strings.Join(left, "; "))
	}
	if _, err := os.Stat(report.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("test bed directory %s left behind (stat: %v)", report.Dir, err)
	}
	if after := testbed.ReadSysctls(); !equalMaps(sysctls, after) {
		t.Fatalf("kernel settings not restored: before %v, after %v", sysctls, after)
	}
}

func containsPrefix(items []string, prefix string) bool {
	for _, s := range items {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
