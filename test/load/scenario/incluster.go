package scenario

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/load/backing"
	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/proxy"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// Images are what a real cluster's pods of the sales event run.
type Images struct {
	// Caddy runs the gateway pods (the official image, caddy:2.11).
	Caddy string
	// DemoAPI runs the checkout pods (test/load/cmd/demo-api).
	DemoAPI string
}

// InCluster is a real cluster's plumbing (the kind load test): the gateway pods run Caddy with
// a configuration that routes checkout's in-cluster name to checkout's pods, found through a
// headless Service as an ingress controller follows endpoints; the checkout pods run the demo
// API, burning real CPU, so their CPU limit sets their capacity and the kubelet measures their
// usage. The load goes to the gateway Service's cluster IP.
type InCluster struct {
	Images Images
	// Service is the demo API's capacity (its CPU is the pod's own).
	Service demoapi.Config
}

// The objects InCluster adds to a side.
const (
	caddyConfigMap = "gateway-caddy"
	caddyConfigKey = "caddy.json"
	// checkoutPods is the headless Service naming checkout's ready pods in DNS.
	checkoutPods = "checkout-pods"
)

// Validate refuses missing images and a service model that could not serve.
func (p *InCluster) Validate() error {
	if p.Images.Caddy == "" || p.Images.DemoAPI == "" {
		return fmt.Errorf("the Caddy and demo API images are required")
	}
	if err := p.Service.Validate(); err != nil {
		return fmt.Errorf("service model: %w", err)
	}
	return nil
}

// Prepare points the workloads at the images, gives the gateway its Caddy configuration, and
// adds that configuration and the headless Service.
func (p *InCluster) Prepare(s Side, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs)+2)
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			adjusted, err := p.adjust(o)
			if err != nil {
				return nil, fmt.Errorf("deployment %s: %w", o.GetName(), err)
			}
			o = adjusted
		}
		out = append(out, o)
	}
	extra, err := p.objects(s)
	if err != nil {
		return nil, err
	}
	return append(extra, out...), nil
}

// adjust sets a workload's image, arguments and readiness.
func (p *InCluster) adjust(o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
		return nil, err
	}
	spec := &d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		return nil, fmt.Errorf("want one container, found %d", len(spec.Containers))
	}
	c := &spec.Containers[0]
	c.ImagePullPolicy = corev1.PullIfNotPresent
	switch d.Name {
	case gateway:
		c.Image = p.Images.Caddy
		c.Command = []string{"caddy", "run", "--config", "/etc/caddy/" + caddyConfigKey}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: "/etc/caddy", ReadOnly: true})
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: caddyConfigMap}},
		}})
		c.ReadinessProbe = httpProbe("/metrics", proxy.AdminPort)
	case checkout:
		c.Image = p.Images.DemoAPI
		c.Args = []string{
			"--listen=:" + strconv.Itoa(backing.ServicePort),
			"--work=" + p.Service.Work.String(),
			"--concurrency=" + strconv.Itoa(p.Service.Concurrency),
			"--queue-limit=" + strconv.Itoa(p.Service.QueueLimit),
		}
		c.ReadinessProbe = httpProbe("/healthz", backing.ServicePort)
	default:
		return nil, fmt.Errorf("not a workload of the sales event")
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: raw}, nil
}

func httpProbe(path string, port int) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt(port)}},
		PeriodSeconds: 1, FailureThreshold: 2,
	}
}

// objects are the side's Caddy configuration and checkout's headless Service.
func (p *InCluster) objects(s Side) ([]*unstructured.Unstructured, error) {
	host := backing.ServiceName(checkout, s.Namespace)
	cfg, err := proxy.ClusterConfig([]proxy.Route{{Host: host, Lookup: &proxy.Lookup{
		Name: backing.ServiceName(checkoutPods, s.Namespace), Port: backing.ServicePort,
	}}})
	if err != nil {
		return nil, err
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: caddyConfigMap, Namespace: s.Namespace},
		Data:       map[string]string{caddyConfigKey: string(cfg)},
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: checkoutPods, Namespace: s.Namespace},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": checkout},
			Ports:     []corev1.ServicePort{{Name: "http", Port: backing.ServicePort}},
		},
	}
	var out []*unstructured.Unstructured
	for _, o := range []runtime.Object{cm, svc} {
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		out = append(out, &unstructured.Unstructured{Object: raw})
	}
	return out, nil
}

// Start finds the gateway Service's cluster IP, where the side's load goes; nothing runs.
func (p *InCluster) Start(ctx context.Context, cs kubernetes.Interface, s Side, _ logr.Logger) (Reach, error) {
	svc, err := cs.CoreV1().Services(s.Namespace).Get(ctx, gateway, metav1.GetOptions{})
	if err != nil {
		return Reach{}, fmt.Errorf("reading the gateway Service: %w", err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || len(svc.Spec.Ports) == 0 {
		return Reach{}, fmt.Errorf("the gateway Service has no cluster IP and port (%q)", svc.Spec.ClusterIP)
	}
	url := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(int(svc.Spec.Ports[0].Port))) + "/"
	return Reach{
		Target:    func(int64) string { return url },
		Allowed:   []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())},
		Answering: readyPods,
		Events: func(ctx context.Context, start time.Time) ([]timeline.Event, error) {
			return resizes(ctx, cs, s.Namespace, start)
		},
	}, nil
}

// readyPods names the Running pods whose readiness probe passes.
func readyPods(pods []corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out[p.Name] = true
			}
		}
	}
	return out
}

// resizeReasons are the events vpa-inplace records on a pod it resizes in place.
var resizeReasons = []resizer.Reason{resizer.ReasonResize, resizer.ReasonStartupBoost, resizer.ReasonBoostEnded}

// resizes lists the in-place resizes of namespace's pods since start, from vpa-inplace's events.
// An event recorded again for the same pod is one object with a count: each time counts.
func resizes(ctx context.Context, cs kubernetes.Interface, namespace string, start time.Time) ([]timeline.Event, error) {
	var out []timeline.Event
	for _, reason := range resizeReasons {
		events, err := eventsSince(ctx, cs, namespace, string(reason), start)
		if err != nil {
			return nil, fmt.Errorf("listing in-place resizes: %w", err)
		}
		for _, e := range events {
			for range occurrences(e) {
				out = append(out, timelineEvent(e, start, timeline.EventResized))
			}
		}
	}
	return out, nil
}
