// Package test runs the metrics adapter (bin/metrics-adapter, a separate process) behind the
// test bed's aggregator, scraping exporters served by the test on loopback, and checks what
// the real HPA controller does with its metrics.
package test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{ControllerManager: true, Scheduler: true, Kwok: true, Nodes: 2, HPASyncPeriod: time.Second})
}

// Timing of the adapter under test: short, so that HPAs react within seconds.
const (
	scrapeInterval = time.Second
	rateWindow     = 4 * time.Second
	staleAfter     = 3 * time.Second
	systemNS       = "lockstep-system"
	podIPAnno      = "testbed.lockstep.dev/pod-ip"
)

type harness struct {
	env *testbed.Env
	cs  kubernetes.Interface
	// ingress serves ingress-nginx metrics scraped through pods labelled app=ingress-nginx;
	// legacy is a second ingress controller (app=ingress-legacy) that tests may stop.
	ingress, legacy *exporter
	// prom is a Prometheus stand-in (the real PromQL engine) behind the adapter's Prometheus
	// source, fed by promFeed.
	prom *promFeed
	// cms is a CloudMonitor stand-in behind the adapter's Alibaba Cloud source.
	cms *cloudMonitor
	// adapters are the two replicas serving behind the APIServices, as the chart runs them.
	adapters []*testbed.Process
}

var (
	setupOnce sync.Once
	shared    *harness
	setupErr  error
)

// setup starts the exporters, their kwok "ingress controller" pods, the adapter and its
// APIServices, once per package.
func setup(t *testing.T) *harness {
	t.Helper()
	env := framework.Env(t)
	setupOnce.Do(func() { shared, setupErr = start(env) })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return shared
}

func start(env *testbed.Env) (*harness, error) {
	ctx := context.Background()
	cs, err := env.Clientset()
	if err != nil {
		return nil, err
	}
	h := &harness{env: env, cs: cs}
	if h.ingress, err = startExporter(); err != nil {
		return nil, err
	}
	if h.legacy, err = startExporter(); err != nil {
		return nil, err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating %s: %w", systemNS, err)
	}
	for _, app := range []string{"ingress-nginx", "ingress-legacy"} {
		if err := createDeployment(ctx, cs, loopbackDeployment(systemNS, app, 1, nil)); err != nil {
			return nil, err
		}
	}

	if h.prom, err = startPromFeed(); err != nil {
		return nil, err
	}
	secretDir := filepath.Join(env.Dir, "alibaba-cloud-secret")
	if h.cms, err = startCloudMonitor(secretDir); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`scrapeInterval: %s
scrapeTimeout: %s
window: %s
staleAfter: %s
ingress:
- profile: ingress-nginx
  namespace: %s
  selector: app=ingress-nginx
  port: "%d"
  path: /ingress
- profile: ingress-nginx
  namespace: %s
  selector: app=ingress-legacy
  port: "%d"
  path: /ingress
- profile: ingress-nginx
  namespace: %s
  selector: app=ingress-replicated
  port: metrics
  path: /ingress
prometheus:
  url: %s
  rules:
  - measure: requests_per_second
    labels: {namespace: namespace, service: service}
    query: 'sum(rate(nginx_ingress_controller_requests{ {{.Matchers}} }[{{.Window}}]))'
`, scrapeInterval, scrapeInterval, rateWindow, staleAfter, systemNS, h.ingress.port(), systemNS, h.legacy.port(), systemNS, h.prom.url) + h.cms.config(secretDir)
	bin, err := adapterBinary()
	if err != nil {
		return nil, err
	}
	if _, h.adapters, err = framework.StartMetricsAdapterReplicas(ctx, env, cs, framework.MetricsAdapter{
		Name: "metrics-adapter", Namespace: systemNS, Binary: bin, Config: config, Replicas: 2,
	}); err != nil {
		return nil, err
	}
	return h, nil
}

// startAdapter runs bin/metrics-adapter with config and registers it for the custom and
// external metrics APIs. It returns the port and the process.
func startAdapter(ctx context.Context, env *testbed.Env, cs kubernetes.Interface, name, config string) (int, *testbed.Process, error) {
	bin, err := adapterBinary()
	if err != nil {
		return 0, nil, err
	}
	return framework.StartMetricsAdapter(ctx, env, cs, framework.MetricsAdapter{Name: name, Namespace: systemNS, Binary: bin, Config: config})
}

func adapterBinary() (string, error) {
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "metrics-adapter"))
	if err != nil {
		return "", fmt.Errorf("locating bin/metrics-adapter: %w", err)
	}
	return bin, nil
}

// loopbackDeployment is a Deployment of kwok pods whose IP is 127.0.0.1, so that the
// adapter reaches the exporter the test serves there.
func loopbackDeployment(ns, name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	anno := map[string]string{podIPAnno: "127.0.0.1"}
	for k, v := range annotations {
		anno[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: anno},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
}

func createDeployment(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) error {
	if _, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}
