package test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/test/framework"
	vpainplace "github.com/lockstep-dev/lockstep/vpa-inplace"
	"github.com/lockstep-dev/lockstep/vpa-inplace/controller"
	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// Bench scale: benchVPAs Deployments of benchReplicas pods, each with its VPA.
const (
	benchVPAs     = 1000
	benchReplicas = 5
	benchNS       = "vpa-bench"
	benchWorkers  = 8
)

// BenchmarkUpdaterPass measures vpa-inplace's updater at 1,000 VPAs and 5,000 running pods:
// one pass over every VPA (gather from the cache, decide, act) when nothing needs changing and
// when every pod needs a resize (5,000 pods/resize patches), then the time from a changed
// recommendation to the pods' status reporting the resize with the controller running as in a
// cluster, and the memory of the process that holds the updater's cache.
func BenchmarkUpdaterPass(b *testing.B) {
	for b.Loop() {
		benchUpdaterPass(b)
	}
}

func benchUpdaterPass(b *testing.B) {
	env := framework.Env(b)
	installCRDs(b, env)
	ctx := context.Background()
	// 5,000 pods need room: 50 more nodes of 110 pods.
	if err := env.AddNodes(ctx, "bench-node-", 50, nil); err != nil {
		b.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	c := benchClient(b, cfg)
	framework.Namespace(b, framework.Clientset(b)) // makes sure namespaces work; the bench uses its own
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: objectMeta("", benchNS)}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	framework.Parallel(b, benchVPAs, 16, func(i int) error {
		name := fmt.Sprintf("app-%04d", i)
		d := deployment(benchNS, name, benchReplicas, "100m", "100Mi", nil)
		if err := c.Create(ctx, d); err != nil {
			return err
		}
		return c.Create(ctx, vpaFor(benchNS, name, vpav1.UpdateModeInPlace))
	})
	framework.Eventually(b, 10*time.Minute, func(ctx context.Context) error {
		n, err := countPods(ctx, c, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if err != nil || n < benchVPAs*benchReplicas {
			return fmt.Errorf("%d of %d pods running (err %w)", n, benchVPAs*benchReplicas, err)
		}
		return nil
	})
	b.Logf("%d Deployments, %d pods running, %d VPAs in %s", benchVPAs, benchVPAs*benchReplicas, benchVPAs, time.Since(start).Round(time.Second))

	// Recommendations equal to the pods' requests: the first pass has nothing to do.
	setRecommendations(b, c, "100m")

	// The updater alone on a manager's cache: the bench drives its reconciles.
	reg := prometheus.NewRegistry()
	upd, stopMgr := benchUpdater(b, cfg, reg)
	keys := make([]types.NamespacedName, benchVPAs)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: benchNS, Name: fmt.Sprintf("app-%04d", i)}
	}
	waitCacheRecommendations(b, upd, keys, "100m")
	idle := pass(b, upd, keys)
	b.ReportMetric(idle.Seconds(), "idle-pass-s")
	b.Logf("pass over %d VPAs with nothing to change: %s", benchVPAs, idle.Round(time.Millisecond))

	setRecommendations(b, c, "200m")
	waitCacheRecommendations(b, upd, keys, "200m")
	full := pass(b, upd, keys)
	sent := counterIn(b, reg, "lockstep_vpa_inplace_decisions_total", map[string]string{"action": "Resize"})
	b.ReportMetric(full.Seconds(), "resize-pass-s")
	b.ReportMetric(sent, "resizes-sent")
	b.Logf("pass over %d VPAs resizing every pod: %s, %.0f resize patches", benchVPAs, full.Round(time.Millisecond), sent)
	framework.Eventually(b, 5*time.Minute, func(ctx context.Context) error {
		n, err := countPods(ctx, c, func(p *corev1.Pod) bool { return cpuRequest(p) == 200 && statusCPURequest(p) == 200 })
		if err != nil || n < benchVPAs*benchReplicas {
			return fmt.Errorf("%d of %d pods resized and applied (err %w)", n, benchVPAs*benchReplicas, err)
		}
		return nil
	})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	if mem, err := framework.ProcMemory(os.Getpid()); err == nil {
		b.ReportMetric(mem["VmRSS"], "rss-MiB")
	}
	b.Logf("bench process (test bed clients, the updater's cache of %d pods): heap %.0f MiB", benchVPAs*benchReplicas, float64(ms.HeapInuse)/(1<<20))
	stopMgr()

	// The controller as deployed (recommendations written here instead of by the recommender):
	// a recommendation changes on one VPA every 100 ms; latency to its pods' status.
	ctl.registry = prometheus.NewRegistry()
	opts := testOptions(ctl.registry)
	opts.RecommenderDisabled = true
	opts.Resync = 30 * time.Second // the default: tests shorten it
	mgr, err := vpainplace.New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	// Measure once the controller has synced and looked at every VPA once.
	framework.Eventually(b, 5*time.Minute, func(context.Context) error {
		if n := counter(b, "lockstep_vpa_inplace_updater_reconcile_seconds", nil); n < benchVPAs {
			return fmt.Errorf("%v of %d VPAs reconciled since start", n, benchVPAs)
		}
		return nil
	})
	lat := appliedLatency(b, c, 100)
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.Logf("recommendation change → all 5 pods' status: p50 %s, p95 %s, max %s (%d changes)", pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.95).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), len(lat))
	b.ReportMetric(pct(lat, 0.50).Seconds(), "applied-p50-s")
	b.ReportMetric(pct(lat, 0.95).Seconds(), "applied-p95-s")
	b.ReportMetric(lat[len(lat)-1].Seconds(), "applied-max-s")
}

func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}

func benchClient(b *testing.B, cfg *rest.Config) client.Client {
	b.Helper()
	s, err := vpainplace.Scheme()
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func countPods(ctx context.Context, c client.Client, ok func(*corev1.Pod) bool) (int, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(benchNS)); err != nil {
		return 0, err
	}
	n := 0
	for i := range pods.Items {
		if ok(&pods.Items[i]) {
			n++
		}
	}
	return n, nil
}

// setRecommendations writes a CPU target (memory 128Mi: no memory change) to every VPA's status.
func setRecommendations(b *testing.B, c client.Client, cpu string) {
	b.Helper()
	start := time.Now()
	framework.Parallel(b, benchVPAs, 16, func(i int) error {
		return setRecommendation(context.Background(), c, fmt.Sprintf("app-%04d", i), cpu)
	})
	b.Logf("recommendation %s written to %d VPAs in %s", cpu, benchVPAs, time.Since(start).Round(time.Millisecond))
}

func setRecommendation(ctx context.Context, c client.Client, name, cpu string) error {
	var v vpav1.VerticalPodAutoscaler
	if err := c.Get(ctx, client.ObjectKey{Namespace: benchNS, Name: name}, &v); err != nil {
		return err
	}
	before := v.DeepCopy()
	v.Status.Recommendation = &vpav1.RecommendedPodResources{ContainerRecommendations: []vpav1.RecommendedContainerResources{{
		ContainerName: "app", Target: rl(cpu, "128Mi"),
	}}}
	return c.Status().Patch(ctx, &v, client.MergeFrom(before))
}

// benchUpdater builds an updater on a started manager's cache (no controllers: the bench calls
// Reconcile itself) and returns it with a function that stops the manager.
func benchUpdater(b *testing.B, cfg *rest.Config, reg *prometheus.Registry) (*controller.Updater, func()) {
	b.Helper()
	s, err := vpainplace.Scheme()
	if err != nil {
		b.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()}})
	if err != nil {
		b.Fatal(err)
	}
	targets, err := vpainplace.NewTargets(cfg, mgr)
	if err != nil {
		b.Fatal(err)
	}
	recorder, stopEvents, err := eventrec.New(cfg, s, "vpa-inplace-bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.Add(stopEvents); err != nil {
		b.Fatal(err)
	}
	rs := resizer.DefaultConfig()
	u := &controller.Updater{
		Client: mgr.GetClient(), Targets: targets, Model: controller.NewModel(testOptions(reg).Recommender),
		Clock: clock.RealClock{}, Recorder: recorder, Metrics: controller.NewMetrics(reg), Log: ctrl.Log,
		Config: rs, Virtual: controller.VirtualNodes{Selector: labels.Nothing()},
		Name: vpainplace.DefaultRecommenderName, MaxPerWorkload: benchReplicas, MaxInFlight: benchVPAs * benchReplicas, Resync: time.Minute,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("the updater's cache did not start")
	}
	// Informers start on first use: read each kind once (a List waits for its sync).
	for _, l := range []client.ObjectList{&vpav1.VerticalPodAutoscalerList{}, &corev1.PodList{}, &corev1.NodeList{}} {
		if err := mgr.GetClient().List(ctx, l); err != nil {
			b.Fatal(err)
		}
	}
	u.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: benchNS, Name: "app-0000"}}) //nolint:errcheck // warms the remaining informers (HPAs, PDBs, Deployments)
	return u, func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// waitCacheRecommendations waits until the updater's cache shows cpu on every VPA.
func waitCacheRecommendations(b *testing.B, u *controller.Updater, keys []types.NamespacedName, cpu string) {
	b.Helper()
	want := resource.MustParse(cpu)
	framework.Eventually(b, 2*time.Minute, func(ctx context.Context) error {
		for _, k := range keys {
			var v vpav1.VerticalPodAutoscaler
			if err := u.Client.Get(ctx, k, &v); err != nil {
				return err
			}
			if v.Status.Recommendation == nil {
				return fmt.Errorf("%s has no recommendation in the cache", k)
			}
			if got := v.Status.Recommendation.ContainerRecommendations[0].Target[corev1.ResourceCPU]; got.Cmp(want) != 0 {
				return fmt.Errorf("%s recommends %s in the cache, want %s", k, got.String(), cpu)
			}
		}
		return nil
	})
}

// pass reconciles every VPA once with benchWorkers workers and returns the wall time.
func pass(b *testing.B, u *controller.Updater, keys []types.NamespacedName) time.Duration {
	b.Helper()
	start := time.Now()
	var mu sync.Mutex
	var errs []error
	framework.Parallel(b, len(keys), benchWorkers, func(i int) error {
		if _, err := u.Reconcile(context.Background(), reconcile.Request{NamespacedName: keys[i]}); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	if len(errs) > 0 {
		b.Fatalf("%d reconciles failed, first: %v", len(errs), errs[0])
	}
	return time.Since(start)
}

// appliedLatency changes the recommendation of n VPAs, one every 100 ms (alternating 300m and
// 400m), and returns for each the time from the status write to all its pods reporting it.
func appliedLatency(b *testing.B, c client.Client, n int) []time.Duration {
	b.Helper()
	type probe struct {
		name string
		cpu  int64
		at   time.Time
	}
	probes := make(chan probe, n)
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for p := range probes {
				deadline := p.at.Add(time.Minute)
				for time.Now().Before(deadline) {
					var pods corev1.PodList
					if err := c.List(context.Background(), &pods, client.InNamespace(benchNS), client.MatchingLabels{"app": p.name}); err == nil {
						done := 0
						for i := range pods.Items {
							if statusCPURequest(&pods.Items[i]) == p.cpu {
								done++
							}
						}
						if done == len(pods.Items) && done > 0 {
							mu.Lock()
							out = append(out, time.Since(p.at))
							mu.Unlock()
							break
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	for i := range n {
		name := fmt.Sprintf("app-%04d", i*(benchVPAs/n))
		cpu := int64(300 + 100*(i%2))
		at := time.Now()
		if err := setRecommendation(context.Background(), c, name, fmt.Sprintf("%dm", cpu)); err != nil {
			b.Fatal(err)
		}
		probes <- probe{name, cpu, at}
		time.Sleep(100 * time.Millisecond)
	}
	close(probes)
	wg.Wait()
	if len(out) != n {
		b.Errorf("%d of %d recommendation changes reached their pods within a minute", len(out), n)
	}
	return out
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
