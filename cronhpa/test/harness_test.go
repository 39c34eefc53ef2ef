package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/cronhpa"
	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	cronwebhook "github.com/lockstep-dev/lockstep/cronhpa/webhook"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

var crdInstalled bool

// ensureCRD installs the generated CronHorizontalPodAutoscaler CRD once per package.
func ensureCRD(t testing.TB) {
	t.Helper()
	if !crdInstalled {
		crd := filepath.Join("..", "..", "config", "crd", "autoscaling.alibabacloud.com_cronhorizontalpodautoscalers.yaml")
		if err := framework.InstallCRDs(context.Background(), framework.Env(t).Config, crd); err != nil {
			t.Fatal(err)
		}
		crdInstalled = true
	}
}

// The controller under test runs in this process against the package's test bed; tests may
// stop it and start a new one to check behaviour across restarts.
var ctl struct {
	registry    *prometheus.Registry
	cancel      context.CancelFunc
	done        chan error
	webhookPort int
	certDir     string
}

const webhookConfigName = "lockstep-cronhpa"

func TestMain(m *testing.M) {
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	// kube-controller-manager runs the HPA controller, so HPAs get status writes every second
	// as in a cluster (and the controllers that make namespaces usable); the workload
	// controllers stay off: these tests watch spec.replicas, not pods.
	framework.Main(m, testbed.Options{
		ControllerManager: true,
		HPASyncPeriod:     time.Second,
		ControllerManagerFlags: []string{"--controllers=horizontal-pod-autoscaler-controller,namespace-controller," +
			"serviceaccount-controller,garbage-collector-controller"},
	})
}

// setup installs the CRD and the webhook configuration and starts the controller, once per
// package (on the first test that needs it).
func setup(t *testing.T) client.Client {
	t.Helper()
	env := framework.Env(t)
	c := newClient(t, env)
	if ctl.cancel != nil {
		return c
	}
	ensureCRD(t)
	serving, err := framework.PrepareWebhook(env, "cronhpa")
	if err != nil {
		t.Fatal(err)
	}
	ctl.certDir, ctl.webhookPort = serving.CertDir, serving.Port
	startController(t)
	if err := framework.RegisterValidatingWebhook(context.Background(), framework.Clientset(t), env, webhookConfigName, serving,
		cronwebhook.Path, v1beta1.GroupVersion.Group, v1beta1.GroupVersion.Version, "cronhorizontalpodautoscalers"); err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(t testing.TB, env *testbed.Env) client.Client {
	t.Helper()
	scheme, err := cronhpa.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, appsv1.AddToScheme, autoscalingv1.AddToScheme, eventsv1.AddToScheme, admissionregistrationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startController runs a fresh controller manager (with a new metrics registry).
func startController(t *testing.T) {
	t.Helper()
	env := framework.Env(t)
	ctl.registry = prometheus.NewRegistry()
	mgr, err := cronhpa.New(env.Config, cronhpa.Options{
		MetricsAddr:      "0",
		ProbeAddr:        "0",
		WebhookHost:      "127.0.0.1",
		WebhookPort:      ctl.webhookPort,
		WebhookCertDir:   ctl.certDir,
		StartingDeadline: time.Minute,
		Registry:         ctl.registry,
		// Restart tests run a second manager in this process.
		SkipNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctl.cancel, ctl.done = cancel, make(chan error, 1)
	go func() { ctl.done <- mgr.Start(ctx) }()
	// Wait for the webhook to serve, so that tests see admission decisions.
	done := ctl.done
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		select {
		case err := <-done:
			t.Fatalf("controller exited during start-up: %v", err)
		default:
		}
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ctl.webhookPort), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// stopController stops the running controller and waits for it to exit.
func stopController(t *testing.T) {
	t.Helper()
	ctl.cancel()
	select {
	case err := <-ctl.done:
		if err != nil {
			t.Fatalf("controller exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not stop")
	}
}

// webhookConfig reads the webhook configuration installed by setup.
func webhookConfig(t *testing.T, c client.Client) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(context.Background(), types.NamespacedName{Name: webhookConfigName}, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// deployment creates a Deployment with the given replicas in ns.
func deployment(t *testing.T, c client.Client, ns, name string, replicas int32) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if err := c.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitReplicas waits until the Deployment's spec.replicas is want.
func waitReplicas(t *testing.T, c client.Client, ns, name string, want int32, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, timeout, replicasAre(c, ns, name, want))
}

// keepsReplicas checks that the deployment stays at want replicas for the whole period.
func keepsReplicas(t *testing.T, c client.Client, ns, name string, want int32, period time.Duration) {
	t.Helper()
	framework.Consistently(t, period, replicasAre(c, ns, name, want))
}

func replicasAre(c client.Client, ns, name string, want int32) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		if *d.Spec.Replicas != want {
			return fmt.Errorf("deployment %s has %d replicas, want %d", name, *d.Spec.Replicas, want)
		}
		return nil
	}
}

// jobRecord waits until the named job's record satisfies ok and returns it.
func jobRecord(t *testing.T, c client.Client, ns, name, job string, timeout time.Duration, ok func(v1beta1.Condition) bool) v1beta1.Condition {
	t.Helper()
	var found v1beta1.Condition
	framework.Eventually(t, timeout, func(ctx context.Context) error {
		var obj v1beta1.CronHorizontalPodAutoscaler
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &obj); err != nil {
			return err
		}
		for _, r := range obj.Status.Conditions {
			if r.Name == job && ok(r) {
				found = r
				return nil
			}
		}
		return fmt.Errorf("job %s records: %+v", job, obj.Status.Conditions)
	})
	return found
}

// cronHPA builds an object targeting a Deployment.
func cronHPA(ns, name, target string, jobs ...v1beta1.Job) *v1beta1.CronHorizontalPodAutoscaler {
	return &v1beta1.CronHorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1beta1.CronHorizontalPodAutoscalerSpec{
			ScaleTargetRef: v1beta1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			Jobs:           jobs,
		},
	}
}

// dateIn returns a @date schedule d from now (UTC, whole seconds).
func dateIn(d time.Duration) string {
	return "@date " + time.Now().UTC().Add(d).Truncate(time.Second).Format("2006-01-02 15:04:05")
}

// hpaOn creates an HPA named like the Deployment it scales, with the given bounds and no metrics.
func hpaOn(t *testing.T, c client.Client, ns, name string, minReplicas, maxReplicas int32) {
	t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    ptr.To(minReplicas),
			MaxReplicas:    maxReplicas,
		},
	}
	if err := c.Create(context.Background(), hpa); err != nil {
		t.Fatal(err)
	}
}
