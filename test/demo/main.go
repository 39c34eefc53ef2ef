// Command demo runs the sales-event scenario on a local test bed: a real control plane with kwok
// nodes, the Lockstep controllers that have landed, and a flash sale whose ingress and service
// tiers are raised together before it starts and lowered after it ends, on nodes node-autoscaler
// launches (spilling pods onto a serverless virtual node while they boot). `make demo` runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/template"
	"time"

	_ "embed"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/test/components"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

//go:embed sales-event.yaml
var scenario string

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	nodes := flag.Int("nodes", 5, "kwok nodes")
	root := flag.String("root", "", "test bed binaries (bin/testbed by default)")
	kubeconfigOut := flag.String("kubeconfig-out", "", "also write the admin kubeconfig here")
	var o scenarioOptions
	flag.DurationVar(&o.warmUpIn, "warm-up-in", 30*time.Second, "time from start to the sale's warm-up")
	flag.DurationVar(&o.saleLength, "sale-length", 2*time.Minute, "time from warm-up to the end of the sale")
	flag.DurationVar(&o.floodAfter, "flood-after", 20*time.Second, "time from warm-up to the flood of buyers")
	flag.StringVar(&o.zone, "timezone", "Asia/Shanghai", "time zone of the sale's schedules")
	flag.DurationVar(&o.bootDelay, "boot-delay", 30*time.Second, "how long the shop's nodes take to boot")
	flag.StringVar(&o.repo, "repo", ".", "the repository root (config/crd, bin/metrics-adapter)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println("starting the test bed (etcd, kube-apiserver, controller-manager, scheduler, kwok)...")
	env, err := testbed.Start(ctx, testbed.Options{BinRoot: *root, ControllerManager: true, Scheduler: true, Nodes: *nodes})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	o.kubeconfig = env.Kubeconfig
	if *kubeconfigOut != "" {
		if err := copyFile(env.Kubeconfig, *kubeconfigOut); err != nil {
			return err
		}
		o.kubeconfig, _ = filepath.Abs(*kubeconfigOut)
	}
	o.out = os.Stdout
	if err := play(ctx, env, o); err != nil {
		return err
	}
	fmt.Println("\nstopping the demo")
	return nil
}

// scenarioOptions time the sale and say where to print.
type scenarioOptions struct {
	warmUpIn, floodAfter, saleLength time.Duration
	bootDelay                        time.Duration
	zone                             string
	repo                             string
	kubeconfig                       string
	out                              io.Writer
}

// play runs the Lockstep components on env and plays the sale, printing every replica and
// traffic change to o.out until ctx ends.
func play(ctx context.Context, env *testbed.Env, o scenarioOptions) error {
	loc, err := time.LoadLocation(o.zone)
	if err != nil {
		return fmt.Errorf("--timezone: %w", err)
	}
	if err := components.InstallCRDs(ctx, env, o.repo); err != nil {
		return err
	}
	if err := components.StartCronHPA(ctx, env); err != nil {
		return err
	}
	if err := components.StartNodeAutoscaler(env, o.repo,
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--spill-budget=5s", "--move-back-after=5s"); err != nil {
		return err
	}
	shop, err := startTraffic("sale", "checkout", quietQPS)
	if err != nil {
		return err
	}
	if err := startMetricsAdapter(ctx, env, filepath.Join(o.repo, "bin", "metrics-adapter"), shop.port()); err != nil {
		return err
	}
	start := time.Now()
	warmUp := start.Add(o.warmUpIn).Truncate(time.Second)
	saleStart := warmUp.Add(o.floodAfter)
	saleEnd := warmUp.Add(o.saleLength)
	if err := applyScenario(ctx, env, o.zone, o.bootDelay, warmUp.In(loc), saleEnd.In(loc)); err != nil {
		return err
	}
	go driveTraffic(ctx, o.out, shop, start, saleStart, saleEnd)
	go followPlacement(ctx, env, o.out, start)

	fmt.Fprintf(o.out, `
Lockstep demo is up: %d kwok nodes; cronhpa (controller and webhook), the metrics adapter
(custom and external metrics APIs, scraping a simulated ingress-nginx) and node-autoscaler
(Karpenter, kwok provider: the shop's nodes boot in %s; pods wait 5 s at most, then run on the
serverless virtual node and move back when the nodes are Ready) running.

  export KUBECONFIG=%s
  kubectl get cronhpa,hpa,deploy -n sale
  kubectl get nodepools,nodeclaims,nodes; kubectl get pods -n sale -o wide
  kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/sale/sls_ingress_qps?labelSelector=sls.ingress.route%%3Dsale-checkout-80'

Sales event (namespace sale, schedules in %s; checkout's HPA targets 100 ingress req/s per pod):
  now       %5.0f req/s at the ingress
  %s  warm-up: ingress-gateway -> 8 replicas, checkout HPA floor -> 12
  %s  the flood: %5.0f req/s, checkout follows the ingress QPS
  %s  sale end: ingress-gateway -> 2, checkout HPA floor -> 2, %.0f req/s
Component logs: %s. Ctrl-C stops everything.

`, env.Options().Nodes, o.bootDelay, o.kubeconfig, o.zone, quietQPS, warmUp.In(loc).Format("15:04:05"), saleStart.In(loc).Format("15:04:05"), floodQPS,
		saleEnd.In(loc).Format("15:04:05"), quietQPS, env.LogDir)
	return followReplicas(ctx, env, o.out, start)
}

// Ingress traffic of the scenario, in requests per second.
const (
	quietQPS = 150.0
	floodQPS = 1800.0
)

// driveTraffic raises the ingress traffic when the sale opens and lowers it when it ends,
// printing each change.
func driveTraffic(ctx context.Context, out io.Writer, shop *traffic, start, saleStart, saleEnd time.Time) {
	for _, step := range []struct {
		at  time.Time
		qps float64
	}{{saleStart, floodQPS}, {saleEnd, quietQPS}} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(step.at)):
		}
		shop.set(step.qps)
		fmt.Fprintf(out, "t+%-5s %-16s %5.0f req/s at the ingress\n", time.Since(start).Round(time.Second), "traffic", step.qps)
	}
}

// startMetricsAdapter runs bin/metrics-adapter on the test bed, scraping the simulated
// ingress-nginx on loopback every 5 s.
func startMetricsAdapter(ctx context.Context, env *testbed.Env, binary string, port int) error {
	cs, err := env.Clientset()
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`scrapeInterval: 5s
ingress:
- profile: ingress-nginx
  namespace: ingress-nginx
  selector: app.kubernetes.io/name=ingress-nginx
  port: "%d"
`, port)
	_, _, err = framework.StartMetricsAdapter(ctx, env, cs, framework.MetricsAdapter{Name: "lockstep-metrics-adapter", Namespace: "lockstep-system", Binary: bin, Config: config})
	return err
}

// followPlacement prints where the sale's pods run whenever that changes: pending, on the
// serverless virtual node, on the shop's nodes, and how many of those nodes are Ready.
func followPlacement(ctx context.Context, env *testbed.Env, out io.Writer, start time.Time) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		fmt.Fprintln(out, "following placement:", err)
		return
	}
	last := ""
	for ctx.Err() == nil {
		pods, perr := cs.CoreV1().Pods("sale").List(ctx, metav1.ListOptions{})
		nodes, nerr := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=shop"})
		if perr == nil && nerr == nil {
			var pending, serverless, onNodes, ready int
			for _, p := range pods.Items {
				switch {
				case p.DeletionTimestamp != nil || p.Labels["node-autoscaler.lockstep.dev/hold-for"] != "":
				case p.Spec.NodeName == "":
					pending++
				case p.Spec.NodeName == virtualNode:
					serverless++
				default:
					onNodes++
				}
			}
			for i := range nodes.Items {
				if testbed.NodeReady(&nodes.Items[i]) {
					ready++
				}
			}
			line := fmt.Sprintf("pods %2d pending, %2d on serverless, %2d on %d/%d Ready shop nodes", pending, serverless, onNodes, ready, len(nodes.Items))
			if line != last {
				last = line
				fmt.Fprintf(out, "t+%-5s %-16s %s\n", time.Since(start).Round(time.Second), "placement", line)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// virtualNode is the scenario's serverless virtual node.
const virtualNode = "virtual-kubelet-cn-hangzhou-i"

// applyScenario fills the sale's times into the scenario and creates its objects.
func applyScenario(ctx context.Context, env *testbed.Env, zone string, bootDelay time.Duration, warmUp, saleEnd time.Time) error {
	tmpl, err := template.New("scenario").Parse(scenario)
	if err != nil {
		return fmt.Errorf("parsing scenario: %w", err)
	}
	var buf bytes.Buffer
	const layout = "2006-01-02 15:04:05"
	if err := tmpl.Execute(&buf, map[string]string{"Zone": zone, "WarmUp": warmUp.Format(layout), "SaleEnd": saleEnd.Format(layout), "BootDelay": bootDelay.String()}); err != nil {
		return fmt.Errorf("rendering scenario: %w", err)
	}
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(&buf, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decoding scenario: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// followReplicas prints every replica change of the sale's Deployments until ctx ends.
func followReplicas(ctx context.Context, env *testbed.Env, out io.Writer, start time.Time) error {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return fmt.Errorf("creating clientset: %w", err)
	}
	w, err := cs.AppsV1().Deployments("sale").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("watching deployments: %w", err)
	}
	defer w.Stop()
	last := map[string]int32{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			d, isDeploy := ev.Object.(*appsv1.Deployment)
			if !isDeploy || ev.Type == watch.Deleted || d.Spec.Replicas == nil {
				continue
			}
			want, ready := *d.Spec.Replicas, d.Status.ReadyReplicas
			key := d.Name
			if prev, seen := last[key]; !seen || prev != want*1000+ready {
				last[key] = want*1000 + ready
				fmt.Fprintf(out, "t+%-5s %-16s replicas %2d, ready %2d\n", time.Since(start).Round(time.Second), d.Name, want, ready)
			}
		}
	}
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", to, err)
	}
	return nil
}
