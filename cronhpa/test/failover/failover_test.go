// Package failover runs two cronhpa processes (bin/cronhpa) with leader election against a real
// API server, stops the leader just before a scheduled time, and checks that the standby takes
// over and runs that time exactly once.
package failover

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa"
	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{})
}

// leadBefore is how long before the scheduled time the leader is stopped.
const leadBefore = 5 * time.Second

// The leader is stopped 5 s before an @date time. Killed (SIGKILL), it cannot hand over: the
// standby takes over when the lease expires, and the fire is late by at most the lease duration.
// Stopped (SIGTERM), it releases the lease and the standby fires within 3 s. Either way the
// time is run exactly once.
func TestFailover(t *testing.T) {
	env := framework.Env(t)
	bin := filepath.Join("..", "..", "..", "bin", "cronhpa")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: build the controller first (make build)", err)
	}
	crd := filepath.Join("..", "..", "..", "config", "crd", "autoscaling.alibabacloud.com_cronhorizontalpodautoscalers.yaml")
	if err := framework.InstallCRDs(context.Background(), env.Config, crd); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		stop    func(p *testbed.Process) error
		maxLate time.Duration
	}{
		{"SIGKILL", (*testbed.Process).Kill, cronhpa.DefaultLeaseDuration},
		{"SIGTERM", (*testbed.Process).Stop, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lag := failover(t, env, bin, tc.name, tc.stop)
			t.Logf("failover on %s %s before the fire: the fire landed %s after its scheduled time (limit %s)", tc.name, leadBefore, lag.Round(time.Millisecond), tc.maxLate)
			if lag > tc.maxLate {
				t.Fatalf("the fire was %s late, more than %s", lag, tc.maxLate)
			}
		})
	}
}

// controllerProcess is one bin/cronhpa and its metrics address.
type controllerProcess struct {
	proc    *testbed.Process
	metrics string
}

func startController(t *testing.T, env *testbed.Env, bin, name, leaseNS string) controllerProcess {
	t.Helper()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := env.Run(name, bin, "--kubeconfig", env.Kubeconfig, "--leader-elect", "--leader-election-namespace", leaseNS,
		"--webhook-port", "0", "--metrics-bind-address", addr, "--health-probe-bind-address", "0", "--starting-deadline", "1m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	c := controllerProcess{proc: p, metrics: "http://" + addr + "/metrics"}
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		if p.Exited() {
			t.Fatalf("%s exited during start-up; see %s", name, env.LogPath(name))
		}
		_, err := c.counter("lockstep_cronhpa_executions_total", "Succeed")
		return err
	})
	return c
}

// counter reads one series of a counter from the process' metrics (0 when absent).
func (c controllerProcess) counter(name, state string) (float64, error) {
	resp, err := http.Get(c.metrics) //nolint:noctx // a loopback test endpoint
	if err != nil {
		return 0, fmt.Errorf("reading metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("reading metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return 0, fmt.Errorf("parsing metrics: %w", err)
	}
	f := families[name]
	if f == nil {
		return 0, nil
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" && l.GetValue() == state {
				return m.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, nil
}

// failover runs one scenario and returns how late the fire landed.
func failover(t *testing.T, env *testbed.Env, bin, mode string, stop func(*testbed.Process) error) time.Duration {
	cs := framework.Clientset(t)
	c := crClient(t, env)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()

	leader := startController(t, env, bin, "cronhpa-leader-"+strings.ToLower(mode), ns)
	holder := waitLeaseHeld(t, cs, ns, "")
	standby := startController(t, env, bin, "cronhpa-standby-"+strings.ToLower(mode), ns)

	obj, fireAt := createSale(t, cs, c, ns)

	// Watch the Deployment from now on, to time the scale change.
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "shop").String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	time.Sleep(time.Until(fireAt.Add(-leadBefore))) // the moment the leader goes is the test's subject, not a wait for a condition
	stopped := make(chan error, 1)
	go func() { stopped <- stop(leader.proc) }()

	landed := waitLanded(t, w, fireAt)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if newHolder := waitLeaseHeld(t, cs, ns, holder); newHolder == holder {
		t.Fatalf("the lease is still held by the stopped leader %s", holder)
	}

	// Once: the standby ran the time once (the leader was gone before it came due), and keeps it
	// at one.
	framework.Eventually(t, 10*time.Second, func(context.Context) error {
		n, err := standby.counter("lockstep_cronhpa_executions_total", "Succeed")
		if err != nil || n != 1 {
			return fmt.Errorf("standby executions{Succeed} = %v (%w), want 1", n, err)
		}
		return nil
	})
	framework.Consistently(t, 3*time.Second, func(context.Context) error {
		n, err := standby.counter("lockstep_cronhpa_executions_total", "Succeed")
		if err != nil || n != 1 {
			return fmt.Errorf("standby executions{Succeed} = %v (%w), want 1", n, err)
		}
		return nil
	})
	var got v1beta1.CronHorizontalPodAutoscaler
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &got); err != nil {
		t.Fatal(err)
	}
	rec := got.Status.Conditions[0]
	if rec.State != v1beta1.Succeed || rec.LastScheduleTime == nil || !rec.LastScheduleTime.Time.Equal(fireAt) {
		t.Fatalf("job record %+v: want Succeed for %s", rec, fireAt)
	}
	return landed.Sub(fireAt)
}

// createSale creates the Deployment and a CronHorizontalPodAutoscaler whose one @date job comes
// due leadBefore + 4 s from now, waits until the leader has scheduled it, and returns it with
// the scheduled time.
func createSale(t *testing.T, cs kubernetes.Interface, c client.Client, ns string) (*v1beta1.CronHorizontalPodAutoscaler, time.Time) {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fireAt := time.Now().Add(leadBefore + 4*time.Second).Truncate(time.Second)
	obj := &v1beta1.CronHorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sale"},
		Spec: v1beta1.CronHorizontalPodAutoscalerSpec{
			ScaleTargetRef: v1beta1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "shop"},
			Jobs:           []v1beta1.Job{{Name: "start", Schedule: "@date " + fireAt.UTC().Format("2006-01-02 15:04:05"), TargetSize: 5}},
		},
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	// The leader has seen the object before it goes.
	framework.Eventually(t, 10*time.Second, func(ctx context.Context) error {
		var got v1beta1.CronHorizontalPodAutoscaler
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &got); err != nil {
			return err
		}
		if len(got.Status.Conditions) == 0 || got.Status.Conditions[0].NextScheduleTime == nil {
			return fmt.Errorf("not scheduled yet: %+v", got.Status)
		}
		return nil
	})

	return obj, fireAt
}

// waitLanded returns when the watched Deployment is scaled to 5.
func waitLanded(t *testing.T, w watch.Interface, fireAt time.Time) time.Time {
	t.Helper()
	var landed time.Time
	deadline := time.After(time.Until(fireAt) + 30*time.Second)
	for landed.IsZero() {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			if dep, isDep := ev.Object.(*appsv1.Deployment); isDep && ptr.Deref(dep.Spec.Replicas, 0) == 5 {
				landed = time.Now()
			}
		case <-deadline:
			t.Fatalf("the fire at %s never landed", fireAt.Format(time.TimeOnly))
		}
	}
	return landed
}

// waitLeaseHeld waits until the cronhpa lease in ns is held by someone other than notBy, and
// returns the holder.
func waitLeaseHeld(t *testing.T, cs kubernetes.Interface, ns, notBy string) string {
	t.Helper()
	var holder string
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		l, err := cs.CoordinationV1().Leases(ns).Get(ctx, "lockstep-cronhpa", metav1.GetOptions{})
		if err != nil {
			return err
		}
		holder = ptr.Deref(l.Spec.HolderIdentity, "")
		if holder == "" || holder == notBy {
			return fmt.Errorf("lease held by %q", holder)
		}
		return nil
	})
	return holder
}

func crClient(t *testing.T, env *testbed.Env) client.Client {
	t.Helper()
	scheme, err := cronhpa.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
