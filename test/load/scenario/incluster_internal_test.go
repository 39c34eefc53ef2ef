package scenario

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
)

// TestInClusterPrepare checks what the kind load test creates for a side: the workloads on the
// images with their probes and the demo API's capacity, Caddy's configuration routing checkout's
// name to its headless Service, and that Service.
func TestInClusterPrepare(t *testing.T) {
	p := &InCluster{Images: Images{Caddy: "caddy:2.11", DemoAPI: "ghcr.io/lockstep-dev/demo-api:kind"}, Service: SalesService}
	s := Side{Name: "lockstep", Namespace: "sale-lockstep", Policy: sales.Lockstep}
	objs, err := sales.Objects(s.Policy, s.Namespace, sales.Times{WarmUp: time.Unix(0, 0), SaleEnd: time.Unix(60, 0)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Prepare(s, objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(objs)+2 {
		t.Fatalf("%d objects from %d, want a ConfigMap and a Service more", len(out), len(objs))
	}
	checks := inClusterChecks(p, s)
	found := map[string]bool{}
	for _, o := range out {
		key := o.GetKind() + "/" + o.GetName()
		found[key] = true
		if check, ok := checks[key]; ok {
			check(t, o.Object)
		}
	}
	for key := range checks {
		if !found[key] {
			t.Errorf("no %s", key)
		}
	}

	if err := (&InCluster{Service: SalesService}).Validate(); err == nil {
		t.Error("valid without images")
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

// inClusterChecks are what each object InCluster prepares for side s must be.
func inClusterChecks(p *InCluster, s Side) map[string]func(t *testing.T, obj map[string]any) {
	return map[string]func(t *testing.T, obj map[string]any){
		"Deployment/gateway": func(t *testing.T, obj map[string]any) {
			c := container(t, obj)
			if c.Image != "caddy:2.11" || strings.Join(c.Command, " ") != "caddy run --config /etc/caddy/caddy.json" ||
				c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Port.IntValue() != 2019 || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("gateway container: %+v", c)
			}
		},
		"Deployment/checkout": func(t *testing.T, obj map[string]any) {
			c := container(t, obj)
			if c.Image != p.Images.DemoAPI || strings.Join(c.Args, " ") != "--listen=:8080 --work=10ms --concurrency=8 --queue-limit=100" ||
				c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("checkout container: %+v", c)
			}
			if c.Resources.Requests.Cpu().String() != "500m" {
				t.Errorf("checkout's resources changed: %v", c.Resources)
			}
		},
		"ConfigMap/gateway-caddy": func(t *testing.T, obj map[string]any) {
			data := obj["data"].(map[string]any)["caddy.json"].(string)
			if !json.Valid([]byte(data)) {
				t.Fatalf("Caddy's configuration is not JSON:\n%s", data)
			}
			for _, want := range []string{`"checkout.sale-lockstep.svc.cluster.local"`, `"checkout-pods.sale-lockstep.svc.cluster.local"`, `":2019"`} {
				if !strings.Contains(data, want) {
					t.Errorf("Caddy's configuration lacks %s", want)
				}
			}
		},
		"Service/checkout-pods": func(t *testing.T, obj map[string]any) {
			var svc corev1.Service
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &svc); err != nil {
				t.Fatal(err)
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Selector["app"] != "checkout" || svc.Namespace != s.Namespace {
				t.Errorf("headless Service: %+v", svc)
			}
		},
		"VerticalPodAutoscaler/checkout": func(*testing.T, map[string]any) {},
	}
}

func container(t *testing.T, obj map[string]any) corev1.Container {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0]
}

func TestReadyPods(t *testing.T) {
	pod := func(name string, phase corev1.PodPhase, ready corev1.ConditionStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}}
	}
	gone := pod("gone", corev1.PodRunning, corev1.ConditionTrue)
	gone.DeletionTimestamp = &metav1.Time{}
	got := readyPods([]corev1.Pod{
		pod("a", corev1.PodRunning, corev1.ConditionTrue), pod("b", corev1.PodRunning, corev1.ConditionFalse),
		pod("c", corev1.PodPending, corev1.ConditionFalse), gone,
	})
	if len(got) != 1 || !got["a"] {
		t.Fatalf("ready pods: %v", got)
	}
}
