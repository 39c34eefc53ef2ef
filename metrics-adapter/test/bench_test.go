package test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// Settings of the API benchmark: 2,000 HPAs polling every 15 s, each naming its own Service,
// over two ingress controller replicas that each expose 14 series per Service.
const (
	benchServices   = 2000
	benchHPAPeriod  = 15 * time.Second
	benchLoad       = 40 * time.Second
	benchInterval   = 15 * time.Second
	freshnessTrials = 6
)

// BenchmarkAPILatency measures the adapter serving 2,000 HPAs (≈133 requests per second)
// while holding ≥50,000 series scraped every 15 s: latency at the adapter (HTTPS straight to its
// port) and through the aggregator, its RSS, and freshness — the delay from a step in a scraped
// counter to the API answering with it.
func BenchmarkAPILatency(b *testing.B) {
	for b.Loop() {
		benchAPILatency(b)
	}
}

func benchAPILatency(b *testing.B) {
	env := framework.Env(b)
	ctx := context.Background()
	cs, err := env.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	ns := framework.Namespace(b, cs)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	framework.Parallel(b, benchServices, 16, func(i int) error {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: benchService(i)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		_, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		return err
	})
	exp, err := startBenchExporter(ns, benchServices)
	if err != nil {
		b.Fatal(err)
	}
	defer exp.srv.Close()
	var ingress strings.Builder
	for _, replica := range []string{"a", "b"} {
		if err := createDeployment(ctx, cs, loopbackDeployment(systemNS, "bench-ingress-"+replica, 1, nil)); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
		fmt.Fprintf(&ingress, "- profile: ingress-nginx\n  namespace: %s\n  selector: app=bench-ingress-%s\n  port: \"%d\"\n  path: /%s\n", systemNS, replica, exp.port(), replica)
	}
	// A hostile ingress pod, started after the measurements at 56,000 series, exports
	// hostileSeries series from /hostile.
	fmt.Fprintf(&ingress, "- profile: ingress-nginx\n  namespace: %s\n  selector: app=bench-hostile\n  port: \"%d\"\n  path: /hostile\n", systemNS, exp.port())
	// LOCKSTEP_BENCH_FRONT_PROXY=always measures the library's per-request certificate
	// verification instead of the cache (the figures before and after it).
	frontProxy := "cached"
	if v := os.Getenv("LOCKSTEP_BENCH_FRONT_PROXY"); v != "" {
		frontProxy = v
	}
	port, proc, err := startAdapter(ctx, env, cs, "metrics-adapter-bench",
		fmt.Sprintf("scrapeInterval: %s\nfrontProxyVerification: %s\ningress:\n%s", benchInterval, frontProxy, ingress.String()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = proc.Stop() }()
	framework.APIServicesAvailable(b, env, 2*time.Minute, "v1beta2.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io")

	direct := directClient(b, env.Config, port)
	aggregated := unthrottled(b, env.Config)
	queries := benchQueries(ns)
	// Every Service has two samples from both replicas once the last query answers.
	framework.Eventually(b, 3*time.Minute, func(ctx context.Context) error {
		_, err := getMetric(ctx, direct, queries[len(queries)-1])
		return err
	})
	series := adapterGauge(b, direct, "lockstep_metrics_adapter_series")

	if dir := os.Getenv("LOCKSTEP_BENCH_PROFILE_DIR"); dir != "" {
		// A CPU profile of the adapter while it serves the direct load (its API server
		// serves /debug/pprof).
		go func() {
			body, err := direct.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "30").DoRaw(context.Background())
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "metrics-adapter-cpu.pprof"), body, 0o600)
			}
			if err != nil {
				b.Logf("CPU profile: %v", err)
			}
		}()
	}
	directLat, directErrs := load(direct, queries)
	// The adapter's own view of the aggregated calls: what share its HTTP stack finished
	// within 5 ms (the histogram's first bucket), to tell its part from the API server's.
	const metricsAPIs = `verb="GET"`
	adapterBefore := adapterBuckets(b, direct, "apiserver_request_duration_seconds", metricsAPIs)
	cpuBefore := procCPUSeconds(b, proc.Pid())
	aggLat, aggErrs := load(aggregated, queries)
	aggCPU := procCPUSeconds(b, proc.Pid()) - cpuBefore
	adapterAfter := adapterBuckets(b, direct, "apiserver_request_duration_seconds", metricsAPIs)
	// The same load on a plain read the API server answers from its watch cache: what the
	// API server itself costs on this machine, without any aggregated API behind it.
	baseLat, baseErrs := loadWith(aggregated, baselineQueries(ns), func(ctx context.Context, cs kubernetes.Interface, path string) error {
		return cs.CoreV1().RESTClient().Get().AbsPath(path).Param("resourceVersion", "0").Do(ctx).Error()
	})
	fresh := freshness(b, direct, exp, ns)
	inside := adapterHistogramQuantile(b, direct, "lockstep_metrics_adapter_api_duration_seconds", 0.99)
	if dir := os.Getenv("LOCKSTEP_BENCH_PROFILE_DIR"); dir != "" {
		body, err := direct.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/heap").DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "metrics-adapter-heap.pprof"), body, 0o600)
		}
		if err != nil {
			b.Logf("heap profile: %v", err)
		}
	}
	mem, err := framework.ProcMemory(proc.Pid())
	if err != nil {
		b.Fatal(err)
	}
	hostileRSS, hostilePeak, hostileErrs := hostilePhase(b, cs, direct, queries, proc.Pid())
	b.ReportMetric(hostileRSS, "rss-with-hostile-MiB")
	b.ReportMetric(hostilePeak, "peak-rss-with-hostile-MiB")
	b.ReportMetric(float64(hostileErrs), "errors-with-hostile")
	b.ReportMetric(series, "series")
	b.ReportMetric(float64(len(directLat))/benchLoad.Seconds(), "req/s")
	b.ReportMetric(inside*1000, "provider-p99-ms")
	b.ReportMetric(ms(pct(directLat, 50)), "adapter-p50-ms")
	b.ReportMetric(ms(pct(directLat, 99)), "adapter-p99-ms")
	b.ReportMetric(ms(pct(aggLat, 50)), "aggregator-p50-ms")
	b.ReportMetric(ms(pct(aggLat, 99)), "aggregator-p99-ms")
	b.ReportMetric(100*servedWithin(adapterBefore, adapterAfter, 0.005), "aggregated-in-adapter-within-5ms-%")
	// The adapter's CPU while it served the aggregated load (scrapes included), in cores.
	b.ReportMetric(aggCPU/benchLoad.Seconds(), "adapter-cores-aggregated")
	b.ReportMetric(ms(pct(baseLat, 50)), "apiserver-alone-p50-ms")
	b.ReportMetric(ms(pct(baseLat, 99)), "apiserver-alone-p99-ms")
	b.ReportMetric(float64(directErrs+aggErrs+baseErrs), "errors")
	b.ReportMetric(ms(pct(fresh, 50)), "freshness-p50-ms")
	b.ReportMetric(ms(pct(fresh, 100)), "freshness-max-ms")
	b.ReportMetric(mem["VmRSS"], "rss-MiB")
}

func benchService(i int) string { return fmt.Sprintf("svc-%05d", i) }

// benchQueries is what 2,000 HPAs ask: a third each on an Object metric, a latency quantile
// and Alibaba's External sls_ingress_qps, each on its own Service.
func benchQueries(ns string) []string {
	out := make([]string, benchServices)
	for i := range out {
		svc := benchService(i)
		switch i % 3 {
		case 0:
			out[i] = fmt.Sprintf("%s/namespaces/%s/services/%s/requests_per_second", customV1beta2, ns, svc)
		case 1:
			out[i] = fmt.Sprintf("%s/namespaces/%s/services/%s/request_latency_p99_seconds", customV1beta2, ns, svc)
		default:
			out[i] = fmt.Sprintf("%s/namespaces/%s/sls_ingress_qps?labelSelector=sls.ingress.route%%3D%s-%s-80", externalV1, ns, ns, svc)
		}
	}
	return out
}

// baselineQueries reads each bench Service itself, once per HPA's query.
func baselineQueries(ns string) []string {
	out := make([]string, benchServices)
	for i := range out {
		out[i] = fmt.Sprintf("/api/v1/namespaces/%s/services/%s", ns, benchService(i))
	}
	return out
}

// load sends the queries round-robin at the rate 2,000 HPAs polling every 15 s produce, for
// benchLoad, and returns each request's latency and the number of errors.
func load(cs kubernetes.Interface, queries []string) ([]time.Duration, int) {
	return loadWith(cs, queries, func(ctx context.Context, cs kubernetes.Interface, path string) error {
		_, err := getMetric(ctx, cs, path)
		return err
	})
}

// loadWith is load with another request.
func loadWith(cs kubernetes.Interface, queries []string, get func(context.Context, kubernetes.Interface, string) error) ([]time.Duration, int) {
	interval := benchHPAPeriod / time.Duration(len(queries))
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	work := make(chan string, 1024)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for q := range work {
				start := time.Now()
				err := get(context.Background(), cs, q)
				took := time.Since(start)
				if err != nil {
					errs.Add(1)
					continue
				}
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			}
		})
	}
	ticker := time.NewTicker(interval)
	end := time.Now().Add(benchLoad)
	for i := 0; time.Now().Before(end); i++ {
		<-ticker.C
		work <- queries[i%len(queries)]
	}
	ticker.Stop()
	close(work)
	wg.Wait()
	return lat, int(errs.Load())
}

// freshness bumps a Service's counter by 3,600 requests (a step of 60 per second over the
// one-minute window) and measures how long until the API's answer includes it; each trial
// uses another Service and starts at another point of the scrape cycle.
func freshness(b *testing.B, cs kubernetes.Interface, exp *benchExporter, ns string) []time.Duration {
	b.Helper()
	var out []time.Duration
	for trial := range freshnessTrials {
		path := fmt.Sprintf("%s/namespaces/%s/services/%s/requests_per_second", customV1beta2, ns, benchService(trial))
		before, err := getMetric(context.Background(), cs, path)
		if err != nil {
			b.Fatal(err)
		}
		// The last trial saw a scrape just now; start each trial at another point of the cycle.
		time.Sleep(time.Duration(trial) * benchInterval / freshnessTrials)
		exp.bump(trial, 3600)
		start := time.Now()
		for {
			v, err := getMetric(context.Background(), cs, path)
			if err == nil && v > before+30 {
				out = append(out, time.Since(start))
				break
			}
			if time.Since(start) > 3*benchInterval {
				b.Fatalf("trial %d: the step never showed (value %v, before %v, err %v)", trial, v, before, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

func directClient(b *testing.B, base *rest.Config, port int) kubernetes.Interface {
	cfg := rest.CopyConfig(base)
	cfg.Host = fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg.QPS, cfg.Burst = -1, 0
	// The adapter's certificate comes from the test bed's CA; its client CA (from the
	// extension-apiserver-authentication ConfigMap) accepts the admin client certificate.
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

func unthrottled(b *testing.B, base *rest.Config) kubernetes.Interface {
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// adapterGauge reads one gauge from the adapter's /metrics.
func adapterGauge(b *testing.B, cs kubernetes.Interface, name string) float64 {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	b.Fatalf("%s not in the adapter's metrics", name)
	return 0
}

// adapterHistogramQuantile estimates a quantile of one of the adapter's histograms (all
// label values together) from its /metrics, by linear interpolation within buckets.
func adapterHistogramQuantile(b *testing.B, cs kubernetes.Interface, name string, q float64) float64 {
	counts := adapterBuckets(b, cs, name, "")
	bounds := slices.Sorted(maps.Keys(counts))
	if len(bounds) == 0 {
		b.Fatalf("%s not in the adapter's metrics", name)
	}
	total := counts[bounds[len(bounds)-1]]
	rank, lower, below := q*total, 0.0, 0.0
	for _, ub := range bounds {
		if counts[ub] >= rank {
			if math.IsInf(ub, 1) {
				return lower
			}
			return lower + (ub-lower)*(rank-below)/(counts[ub]-below)
		}
		lower, below = ub, counts[ub]
	}
	return lower
}

// adapterBuckets reads the cumulative bucket counts of one of the adapter's histograms, all
// series whose labels contain match added together.
func adapterBuckets(b *testing.B, cs kubernetes.Interface, name, match string) map[float64]float64 {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	counts := map[float64]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, name+"_bucket{") || !strings.Contains(line, match) {
			continue
		}
		_, rest, _ := strings.Cut(line, `le="`)
		le, rest, _ := strings.Cut(rest, `"`)
		ub, err1 := strconv.ParseFloat(le, 64)
		v, err2 := strconv.ParseFloat(strings.TrimSpace(rest[strings.LastIndexByte(rest, ' ')+1:]), 64)
		if err1 == nil && err2 == nil {
			counts[ub] += v
		}
	}
	return counts
}

// servedWithin is the share of the metric API calls the adapter's own HTTP stack (TLS,
// authentication, authorization, the provider) finished within the bucket bound le, between
// two snapshots of its apiserver_request_duration_seconds.
func servedWithin(before, after map[float64]float64, le float64) float64 {
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	return (after[le] - before[le]) / total
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return time.Duration(math.MaxInt64)
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// hostileSeries is how many series the hostile target exports: ten times the default limit.
const hostileSeries = 1_000_000

// hostilePhase starts the hostile ingress pod and, once the adapter has refused it, asks for
// the other Services at the full HPA rate; it returns the adapter's RSS and peak RSS (MiB) and
// the failed calls for the other Services meanwhile.
func hostilePhase(b *testing.B, cs, direct kubernetes.Interface, queries []string, pid int) (rss, peak float64, errs int) {
	ctx := context.Background()
	if err := createDeployment(ctx, cs, loopbackDeployment(systemNS, "bench-hostile", 1, nil)); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	defer func() { _ = cs.AppsV1().Deployments(systemNS).Delete(ctx, "bench-hostile", metav1.DeleteOptions{}) }()
	framework.Eventually(b, 2*time.Minute, func(context.Context) error {
		if n := adapterCounter(b, direct, "lockstep_metrics_adapter_scrape_limit_exceeded_total"); n < 1 {
			return fmt.Errorf("the hostile target has not been refused yet")
		}
		return nil
	})
	// The full HPA load for benchLoad (40 s: the hostile target is scraped, and refused,
	// two or three more times meanwhile).
	_, errs = load(direct, queries)
	mem, err := framework.ProcMemory(pid)
	if err != nil {
		b.Fatal(err)
	}
	if held := adapterGauge(b, direct, "lockstep_metrics_adapter_series"); held >= float64(hostileSeries)/10 {
		b.Fatalf("the adapter holds %v series with the hostile target", held)
	}
	return mem["VmRSS"], mem["VmHWM"], errs
}

// procCPUSeconds is the user and system CPU time a process has used (/proc/<pid>/stat, at the
// kernel's 100 ticks per second).
func procCPUSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %v %v", pid, err1, err2)
	}
	return (utime + stime) / 100
}

// adapterCounter sums a counter of the adapter over its label values.
func adapterCounter(b *testing.B, cs kubernetes.Interface, name string) float64 {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for line := range strings.SplitSeq(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if f, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				sum += f
			}
		}
	}
	return sum
}

// benchExporter serves, at /a and /b, ingress-nginx metrics for n Services: requests by two
// methods and two statuses and an eight-bucket latency histogram, 14 series per Service.
type benchExporter struct {
	mu    sync.Mutex
	ns    string
	n     int
	start time.Time
	extra []float64 // bumps per Service
	srv   *http.Server
	ln    net.Listener
}

func startBenchExporter(ns string, n int) (*benchExporter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	e := &benchExporter{ns: ns, n: n, start: time.Now(), extra: make([]float64, n), ln: ln}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

func (e *benchExporter) port() int { return e.ln.Addr().(*net.TCPAddr).Port }

func (e *benchExporter) bump(i int, n float64) {
	e.mu.Lock()
	e.extra[i] += n
	e.mu.Unlock()
}

var benchBounds = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "+Inf"}

func (e *benchExporter) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hostile" {
		e.serveHostile(w)
		return
	}
	e.mu.Lock()
	extra := slices.Clone(e.extra)
	e.mu.Unlock()
	elapsed := time.Since(e.start).Seconds()
	var sb strings.Builder
	sb.Grow(e.n * 14 * 140)
	sb.WriteString("# TYPE nginx_ingress_controller_requests counter\n")
	for i := range e.n {
		base := 5*elapsed + extra[i]
		for _, m := range []string{"GET", "POST"} {
			fmt.Fprintf(&sb, "nginx_ingress_controller_requests{namespace=%q,ingress=\"web\",service=%q,status=\"200\",method=%q} %g\n", e.ns, benchService(i), m, base)
			fmt.Fprintf(&sb, "nginx_ingress_controller_requests{namespace=%q,ingress=\"web\",service=%q,status=\"503\",method=%q} %g\n", e.ns, benchService(i), m, base/100)
		}
	}
	sb.WriteString("# TYPE nginx_ingress_controller_request_duration_seconds histogram\n")
	for i := range e.n {
		count := 10 * elapsed
		l := fmt.Sprintf("namespace=%q,ingress=\"web\",service=%q", e.ns, benchService(i))
		for j, le := range benchBounds {
			fmt.Fprintf(&sb, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=%q} %g\n", l, le, count*float64(j+1)/float64(len(benchBounds)))
		}
		fmt.Fprintf(&sb, "nginx_ingress_controller_request_duration_seconds_sum{%s} %g\n", l, count*0.1)
		fmt.Fprintf(&sb, "nginx_ingress_controller_request_duration_seconds_count{%s} %g\n", l, count)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(sb.String()))
}

// serveHostile streams hostileSeries short series (about 56 MB, under the body limit, so that
// the series limit is what refuses it).
func (e *benchExporter) serveHostile(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	bw := bufio.NewWriterSize(w, 1<<16)
	_, _ = bw.WriteString("# TYPE nginx_ingress_controller_requests counter\n")
	for i := range hostileSeries {
		_, _ = fmt.Fprintf(bw, "nginx_ingress_controller_requests{service=\"h%07d\"} 1\n", i)
	}
	_ = bw.Flush()
}
