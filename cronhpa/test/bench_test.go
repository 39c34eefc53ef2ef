package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// Fire-jitter benchmark settings: objects fire at distinct instants spread at fireRate per
// second, after every object has been reconciled once.
const (
	fireRate   = 50 // scheduled times per second across all objects
	fireMargin = 15 * time.Second
	// rescheduleRate is a conservative estimate of objects rescheduled (patch + reconcile +
	// status write) per second, used to place the first fire time after all of them.
	rescheduleRate = 60
	benchQPS       = "300"
)

// BenchmarkFireJitter runs the real bin/cronhpa against the test bed with 1,000 and 10,000
// objects, each targeting its own Deployment, and measures the delay from each job's scheduled
// instant to the Deployment's scale change arriving on a watch, and the controller's memory.
// Set LOCKSTEP_BENCH_GOMEMLIMIT to run the controller under a Go soft memory limit.
func BenchmarkFireJitter(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				benchFireJitter(b, n, os.Getenv("LOCKSTEP_BENCH_GOMEMLIMIT"))
			}
		})
	}
}

func benchFireJitter(b *testing.B, n int, memLimit string) {
	env := framework.Env(b)
	c := newClient(b, env)
	ensureCRD(b)
	cs, err := env.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	ns := framework.Namespace(b, cs)
	ctx := context.Background()

	ctrlProc := startBenchController(b, env.Kubeconfig, env.LogDir, fmt.Sprintf("cronhpa-bench-%d%s.log", n, memLimit), benchQPS, memLimit)
	defer func() { _ = ctrlProc.Process.Kill(); _ = ctrlProc.Wait() }()

	// 1. n Deployments and n CronHPAs with a far-future job; wait until all are reconciled.
	createBenchObjects(b, c, ns, n)

	// 2. Watch the Deployments, then move every job to a distinct future instant. Rescheduling
	// costs each object one reconcile and status write; fires start only once all are done, so
	// the figures are the steady-state delay from scheduled instant to applied scale.
	arrivals, stopWatch := watchScaled(b, cs, ns, n)
	margin := fireMargin + time.Duration(n)*time.Second/rescheduleRate
	start := time.Now().Add(margin).Truncate(time.Second).Add(time.Second)
	instants := make([]time.Time, n)
	for i := range n {
		instants[i] = start.Add(time.Duration(i) * time.Second / fireRate).Truncate(time.Second)
	}
	framework.Parallel(b, n, 16, func(i int) error { return patchSchedule(ctx, c, ns, i, instants[i]) })
	waitReconciled(b, c, ns, n)
	if time.Now().After(start) {
		b.Fatalf("rescheduling %d objects took past the first fire time (%s); lower rescheduleRate", n, margin)
	}
	last := instants[n-1]
	deadline := last.Add(2 * time.Minute)
	var lags []time.Duration
	for len(lags) < n && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		lags = collectLags(arrivals, instants)
	}
	stopWatch()
	if len(lags) < n {
		b.Fatalf("only %d of %d objects fired within 2 minutes of the last instant", len(lags), n)
	}
	slices.Sort(lags)
	mem, err := framework.ProcMemory(ctrlProc.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
	b.ReportMetric(mem["VmRSS"], "rss-MiB")
	b.ReportMetric(mem["VmHWM"], "peak-rss-MiB")
	// RSS splits into private memory (heap, stacks) and pages of the executable file.
	b.ReportMetric(mem["RssAnon"], "anon-rss-MiB")
	b.ReportMetric(mem["RssFile"], "file-rss-MiB")
	if addr := os.Getenv("LOCKSTEP_BENCH_PPROF"); addr != "" {
		saveHeapProfile(b, addr, n)
	}
}

// startBenchController runs bin/cronhpa (or LOCKSTEP_BENCH_CRONHPA, to compare another build)
// against the test bed with the given client QPS, logging to logName.
func startBenchController(b *testing.B, kubeconfig, logDir, logName, qps, memLimit string) *exec.Cmd {
	b.Helper()
	bin := os.Getenv("LOCKSTEP_BENCH_CRONHPA")
	if bin == "" {
		var err error
		if bin, err = filepath.Abs(filepath.Join("..", "..", "bin", "cronhpa")); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("%s not built: run `make build` (make bench does)", bin)
	}
	burst, _ := strconv.Atoi(qps)
	ctrlProc := exec.Command(bin, "--kubeconfig="+kubeconfig, "--leader-elect=false", "--webhook-port=0",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--kube-api-qps="+qps, "--kube-api-burst="+strconv.Itoa(2*burst), "--workers=8", "--pprof-bind-address="+os.Getenv("LOCKSTEP_BENCH_PPROF"))
	logFile, err := os.Create(filepath.Join(logDir, logName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = logFile.Close() })
	ctrlProc.Stdout, ctrlProc.Stderr = logFile, logFile
	if memLimit != "" {
		ctrlProc.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	if err := ctrlProc.Start(); err != nil {
		b.Fatal(err)
	}
	return ctrlProc
}

// saveHeapProfile stores the controller's heap profile in the temporary directory, for
// `go tool pprof`, when the bench runs with LOCKSTEP_BENCH_PPROF.
func saveHeapProfile(b *testing.B, addr string, n int) {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
	if err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("cronhpa-heap-%d.pprof", n))
	f, err := os.Create(path)
	if err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	b.Logf("heap profile saved to %s", path)
}

// createBenchObjects creates n Deployments and n CronHPAs on them with a far-future job, and
// waits until all are reconciled.
func createBenchObjects(b *testing.B, c client.Client, ns string, n int) {
	b.Helper()
	ctx := context.Background()
	framework.Parallel(b, n, 16, func(i int) error {
		d := benchDeployment(ns, i)
		if err := c.Create(ctx, d); err != nil {
			return err
		}
		return c.Create(ctx, cronHPA(ns, d.Name, d.Name, v1beta1.Job{Name: "sale", Schedule: "@date 2099-11-11 00:00:00", TargetSize: 2}))
	})
	waitReconciled(b, c, ns, n)
}

// patchSchedule moves bench object i's job to at.
func patchSchedule(ctx context.Context, c client.Client, ns string, i int, at time.Time) error {
	patch := fmt.Sprintf(`{"spec":{"jobs":[{"name":"sale","schedule":"@date %s","targetSize":2}]}}`, at.UTC().Format("2006-01-02 15:04:05"))
	obj := &v1beta1.CronHorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: benchName(i)}}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
}

// waitReconciled waits until the controller has written status for the current generation of
// all n objects in ns.
func waitReconciled(b *testing.B, c client.Client, ns string, n int) {
	b.Helper()
	framework.Eventually(b, 10*time.Minute, func(ctx context.Context) error {
		var list v1beta1.CronHorizontalPodAutoscalerList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, o := range list.Items {
			if o.Status.ObservedGeneration == o.Generation && len(o.Status.Conditions) == 1 {
				done++
			}
		}
		if done < n {
			return fmt.Errorf("%d of %d objects reconciled", done, n)
		}
		return nil
	})
}

func benchName(i int) string { return fmt.Sprintf("shop-%05d", i) }

func benchDeployment(ns string, i int) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	name := benchName(i)
	replicas := int32(1)
	labels := map[string]string{"app": name}
	d.Namespace, d.Name = ns, name
	d.Spec.Replicas = &replicas
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	d.Spec.Template.Labels = labels
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}
	return d
}

// watchScaled records, per Deployment name, when its spec.replicas was first seen at 2.
func watchScaled(b *testing.B, cs kubernetes.Interface, ns string, n int) (*sync.Map, func()) {
	b.Helper()
	w, err := cs.AppsV1().Deployments(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	arrivals := &sync.Map{}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			d, ok := ev.Object.(*appsv1.Deployment)
			if ok && d.Spec.Replicas != nil && *d.Spec.Replicas == 2 {
				arrivals.LoadOrStore(d.Name, time.Now())
			}
		}
	}()
	return arrivals, w.Stop
}

func collectLags(arrivals *sync.Map, instants []time.Time) []time.Duration {
	lags := make([]time.Duration, 0, len(instants))
	for i, at := range instants {
		if v, ok := arrivals.Load(benchName(i)); ok {
			lags = append(lags, v.(time.Time).Sub(at))
		}
	}
	return lags
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
