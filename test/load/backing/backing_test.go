package backing_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/load/backing"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/dns"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// podCIDR is this package's own loopback range, apart from other packages' tests.
const podCIDR = "127.65.0.0/16"

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{ControllerManager: true, Scheduler: true, Kwok: true, Nodes: 2, KwokPodCIDR: podCIDR})
}

func deployment(ns, name, role string, replicas int32, cpu string) *appsv1.Deployment {
	labels := map[string]string{"app": name, backing.RoleLabel: role}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "api", Image: "demo", Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
					}}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}
}

// A service tier's pods get real demo APIs on their kwok addresses as they come and go, DNS
// follows them, and an in-place CPU resize reaches the running server.
func TestServicePodsAreBackedAndPublished(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	names, runner, done := startRunner(ctx, t, ns, backing.Options{
		// Usage is reported often, so the test sees it soon.
		UsageInterval: 300 * time.Millisecond,
	})
	createCheckout(ctx, t, ns, 2)
	// Another role without a starter, and a pod outside the scenario's roles: never backed.
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "batch", "batch", 1, "100m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	host := backing.ServiceName("checkout", ns)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, names.Addr())
	}}

	// expect waits until DNS names exactly the Running checkout pods, each answering.
	expect := func(replicas int) []string {
		t.Helper()
		var ips []string
		framework.Eventually(t, time.Minute, func(ctx context.Context) error {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=checkout"})
			if err != nil {
				return err
			}
			var running []string
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
					running = append(running, p.Status.PodIP)
				}
			}
			sort.Strings(running)
			if len(running) != replicas {
				return fmt.Errorf("%d running pods, want %d", len(running), replicas)
			}
			addrs, err := resolver.LookupHost(ctx, host)
			if err != nil {
				return err
			}
			sort.Strings(addrs)
			if !slices.Equal(addrs, running) {
				return fmt.Errorf("DNS has %v, running pods %v", addrs, running)
			}
			ips = addrs
			return nil
		})
		for _, ip := range ips {
			if code := call(t, ip); code != http.StatusOK {
				t.Fatalf("pod %s answered %d", ip, code)
			}
		}
		return ips
	}
	first := expect(2)
	for _, ip := range first {
		if !netip.MustParsePrefix(podCIDR).Contains(netip.MustParseAddr(ip)) {
			t.Fatalf("pod address %s is outside %s", ip, podCIDR)
		}
	}

	// Scale up, then down: the pods that went stop answering and leave DNS.
	scale(t, ns, "checkout", 4)
	expect(4)
	scale(t, ns, "checkout", 1)
	last := expect(1)
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		for _, ip := range first {
			if ip != last[0] && call(t, ip) != 0 {
				return fmt.Errorf("the stopped pod at %s still answers", ip)
			}
		}
		return nil
	})

	pod := checkResize(ctx, t, ns, runner)
	checkUsageUnderLoad(t, ns, pod, last[0])

	if backed := runner.Backed(); len(backed) != 1 {
		t.Fatalf("backed pods %v, want only the checkout pod", backed)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code := call(t, last[0]); code != 0 {
		t.Fatalf("after Run returned, the pod at %s still answers (%d)", last[0], code)
	}
}

// checkResize resizes one running checkout pod's CPU in place and waits for its server to
// follow; it returns that pod's name.
func checkResize(ctx context.Context, t *testing.T, ns string, runner *backing.Runner) string {
	t.Helper()
	cs := framework.Clientset(t)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=checkout"})
	if err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			pod = &pods.Items[i]
		}
	}
	patch := []byte(`{"spec":{"containers":[{"name":"api","resources":{"requests":{"cpu":"2"},"limits":{"cpu":"2"}}}]}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "resize"); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		for _, e := range runner.Events() {
			if e.Pod == pod.Name && e.Action == "resized" && e.Detail == "2 cores" {
				return nil
			}
		}
		return fmt.Errorf("no resize of %s among %v", pod.Name, runner.Events())
	})
	return pod.Name
}

// checkUsageUnderLoad sends requests to the pod at ip until its usage annotation shows them.
func checkUsageUnderLoad(t *testing.T, ns, pod, ip string) {
	t.Helper()
	cs := framework.Clientset(t)
	// Load on the pod shows as its CPU usage (kwok's usage annotation, for metrics-server).
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for {
			select {
			case <-stopLoad:
				return
			default:
				call(t, ip)
			}
		}
	}()
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		v := p.Annotations[testbed.UsageCPUAnnotation]
		if q, err := resource.ParseQuantity(v); err != nil || q.MilliValue() < 50 {
			return fmt.Errorf("usage annotation %q under load", v)
		}
		return nil
	})
	close(stopLoad)
	<-loadDone

}

// kwok may give a gone pod's address to a new pod at once: the new pod's backend starts once
// the old one, still draining, has let the address go. The pods here sit on a node nobody
// manages, so the test sets their addresses itself.
func TestAddressReusedWhileDraining(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := unmanagedNode(ctx, t, ns)
	_, runner, done := startRunner(ctx, t, ns, backing.Options{DrainDelay: time.Hour})
	const ip = "127.65.250.1"
	running := func(name string) {
		t.Helper()
		runningServicePod(ctx, t, ns, node, name, ip)
	}
	started := func(pod string) error {
		for _, e := range runner.Events() {
			if e.Pod == pod && e.Action == "failed" {
				t.Fatalf("%s: %s", pod, e.Detail)
			}
			if e.Pod == pod && e.Action == "started" {
				return nil
			}
		}
		return fmt.Errorf("%s not started: %v", pod, runner.Events())
	}
	running("old")
	framework.Eventually(t, 30*time.Second, func(context.Context) error { return started("old") })
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "old", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	running("new")
	// The old backend drains for an hour unless the new pod needs its address.
	framework.Eventually(t, 30*time.Second, func(context.Context) error { return started("new") })
	if code := call(t, ip); code != http.StatusOK {
		t.Fatalf("the new pod at %s answered %d", ip, code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A backend whose address is still taken (by a gone pod's process, say) fails to start; the
// start is tried again with a growing wait, and the pod is served once the address is free.
func TestFailedStartIsRetried(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := unmanagedNode(ctx, t, ns)
	const ip = "127.65.250.2"
	squatter, err := net.Listen("tcp", net.JoinHostPort(ip, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	_, runner, done := startRunner(ctx, t, ns, backing.Options{})
	runningServicePod(ctx, t, ns, node, "late", ip)
	count := func(action string) int {
		n := 0
		for _, e := range runner.Events() {
			if e.Pod == "late" && e.Action == action {
				n++
			}
		}
		return n
	}
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if n := count(backing.ActionRetried); n < 2 {
			return fmt.Errorf("%d retried starts so far", n)
		}
		return nil
	})
	_ = squatter.Close()
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if count(backing.ActionFailed) > 0 {
			t.Fatalf("the start was given up: %v", runner.Events())
		}
		if count(backing.ActionStarted) != 1 {
			return fmt.Errorf("not started yet: %v", runner.Events())
		}
		return nil
	})
	if code := call(t, ip); code != http.StatusOK {
		t.Fatalf("the pod at %s answered %d", ip, code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// unmanagedNode creates a node no kwok manages, for pods whose status the test writes itself.
func unmanagedNode(ctx context.Context, t *testing.T, ns string) string {
	t.Helper()
	cs := framework.Clientset(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "unmanaged-" + ns}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	return node.Name
}

// runningServicePod creates a service pod on node and sets it Running at ip, as a kubelet would.
func runningServicePod(ctx context.Context, t *testing.T, ns, node, name, ip string) {
	t.Helper()
	cs := framework.Clientset(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "checkout", backing.RoleLabel: "service"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "api", Image: "demo"}}},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startRunner runs a Runner backing service pods of ns, with opts' other fields, until ctx
// ends; done receives Run's error.
func startRunner(ctx context.Context, t *testing.T, ns string, opts backing.Options) (*dns.Server, *backing.Runner, chan error) {
	t.Helper()
	names, err := dns.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = names.Close() })
	opts.Namespace, opts.DNS, opts.Prefix, opts.Log = ns, names, netip.MustParsePrefix(podCIDR), testr.New(t)
	opts.Starters = map[string]backing.Starter{"service": backing.ServiceStarter(demoapi.Config{Work: time.Millisecond, CPU: 1, Concurrency: 4, QueueLimit: 50})}
	runner, err := backing.New(framework.Clientset(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	return names, runner, done
}

// createCheckout creates the checkout Service and a Deployment of replicas service pods.
func createCheckout(ctx context.Context, t *testing.T, ns string, replicas int32) {
	t.Helper()
	cs := framework.Clientset(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "checkout"},
		Ports:    []corev1.ServicePort{{Port: 8080}},
	}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "checkout", "service", replicas, "500m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A pod that goes leaves DNS at once and its backend serves out the drain delay before it
// stops, so a proxy's cached lookup never sends a request to a stopped backend.
func TestPodsDrainBeforeStopping(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := testingclock.NewFakeClock(time.Now())
	names, runner, done := startRunner(ctx, t, ns, backing.Options{Clock: clk, DrainDelay: 5 * time.Second})
	createCheckout(ctx, t, ns, 2)
	host := backing.ServiceName("checkout", ns)
	var both []netip.Addr
	framework.Eventually(t, time.Minute, func(context.Context) error {
		if both = names.Lookup(host); len(both) != 2 {
			return fmt.Errorf("DNS has %v, want two pods", both)
		}
		return nil
	})
	scale(t, ns, "checkout", 1)
	var gone netip.Addr
	framework.Eventually(t, time.Minute, func(context.Context) error {
		left := names.Lookup(host)
		if len(left) != 1 {
			return fmt.Errorf("DNS has %v, want one pod", left)
		}
		gone = both[0]
		if gone == left[0] {
			gone = both[1]
		}
		return nil
	})
	// Out of DNS, still serving: the fake clock has not moved.
	if code := call(t, gone.String()); code != http.StatusOK {
		t.Fatalf("the pod that went, at %s, answered %d during its drain delay", gone, code)
	}
	for _, e := range runner.Events() {
		if e.Action == "stopped" {
			t.Fatalf("a backend stopped before its drain delay: %+v", e)
		}
	}
	clk.Step(5 * time.Second)
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if code := call(t, gone.String()); code != 0 {
			return fmt.Errorf("the pod at %s still answers after its drain delay", gone)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	cs := framework.Clientset(t)
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	if _, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// call sends one request to a service pod and returns the status, or 0 if nothing answers.
func call(t *testing.T, ip string) int {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(ip, "8080") + "/checkout")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestWanted(t *testing.T) {
	prefix := netip.MustParsePrefix(podCIDR)
	roles := map[string]backing.Starter{"service": nil, "ingress": nil}
	pod := func(name, role string, phase corev1.PodPhase, ip string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), Labels: map[string]string{backing.RoleLabel: role}},
			Status: corev1.PodStatus{Phase: phase, PodIP: ip}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{}
		}
		return p
	}
	got := backing.Wanted([]*corev1.Pod{
		pod("running", "service", corev1.PodRunning, "127.65.0.5", false),
		pod("ingress", "ingress", corev1.PodRunning, "127.65.0.6", false),
		pod("pending", "service", corev1.PodPending, "", false),
		pod("no-ip", "service", corev1.PodRunning, "", false),
		pod("elsewhere", "service", corev1.PodRunning, "10.244.0.5", false),
		pod("other-loopback", "service", corev1.PodRunning, "127.0.0.1", false),
		pod("deleting", "service", corev1.PodRunning, "127.65.0.7", true),
		pod("no-starter", "batch", corev1.PodRunning, "127.65.0.8", false),
		pod("succeeded", "service", corev1.PodSucceeded, "127.65.0.9", false),
	}, roles, prefix)
	var names []string
	for uid := range got {
		names = append(names, string(uid))
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"ingress", "running"}) {
		t.Fatalf("wanted %v", names)
	}
}

func TestPodCPU(t *testing.T) {
	withRes := func(req, lim string) *corev1.Pod {
		r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
		if req != "" {
			r.Requests[corev1.ResourceCPU] = resource.MustParse(req)
		}
		if lim != "" {
			r.Limits[corev1.ResourceCPU] = resource.MustParse(lim)
		}
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: r}}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want float64
	}{
		{withRes("250m", "1500m"), 1.5},
		{withRes("250m", ""), 0.25},
		{withRes("", ""), 1},
		{&corev1.Pod{}, 1},
	} {
		if got := backing.PodCPU(tc.pod); got != tc.want {
			t.Errorf("PodCPU = %g, want %g", got, tc.want)
		}
	}
}

func TestUsageQuantity(t *testing.T) {
	for _, tc := range []struct {
		secs    float64
		elapsed time.Duration
		limit   float64
		want    string
	}{
		{0.5, time.Second, 2, "500m"},
		{3, time.Second, 2, "2000m"}, // never above the limit
		{0, 5 * time.Second, 1, "0m"},
		{1, 0, 1, "0m"},
		{-1, time.Second, 1, "0m"},
		{0.0004, time.Second, 1, "0m"},
	} {
		if got := backing.UsageQuantity(tc.secs, tc.elapsed, tc.limit); got != tc.want {
			t.Errorf("UsageQuantity(%g, %s, %g) = %s, want %s", tc.secs, tc.elapsed, tc.limit, got, tc.want)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	names, err := dns.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	for name, opts := range map[string]backing.Options{
		"no namespace":       {DNS: names, Prefix: netip.MustParsePrefix(podCIDR)},
		"no DNS":             {Namespace: "x", Prefix: netip.MustParsePrefix(podCIDR)},
		"range not loopback": {Namespace: "x", DNS: names, Prefix: netip.MustParsePrefix("10.244.0.0/16")},
		"no range":           {Namespace: "x", DNS: names},
	} {
		if _, err := backing.New(nil, opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
