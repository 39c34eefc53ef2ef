package testbed

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// kwokResourceMetrics makes kwok serve a kubelet-like /metrics/resource endpoint per node whose
// usage follows the pods' UsageCPUAnnotation and UsageMemoryAnnotation.
//
//go:embed kwokmetrics/resource-metrics.yaml
var kwokResourceMetrics string

// Annotations that set a kwok pod's emulated usage (a quantity, for every container of the pod):
// metrics-server reads it from kwok and serves it through metrics.k8s.io about 10–20 s later.
const (
	UsageCPUAnnotation    = "kwok.x-k8s.io/usage-cpu"
	UsageMemoryAnnotation = "kwok.x-k8s.io/usage-memory"
)

// resourceMetricsPathAnnotation tells metrics-server where a node's resource metrics are.
const resourceMetricsPathAnnotation = "metrics.k8s.io/resource-metrics-path"

// NodeMetricsAnnotation is the annotation, and its value, that point metrics-server at a kwok
// node's emulated resource metrics. KwokNode sets it; a kwok node that another controller
// creates (Karpenter's kwok provider) needs it added to be measured.
func NodeMetricsAnnotation(node string) (key, value string) {
	return resourceMetricsPathAnnotation, "/metrics/nodes/" + node + "/metrics/resource"
}

// MetricsGroupVersion is the group/version metrics-server serves.
var MetricsGroupVersion = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}

// startMetricsServer runs metrics-server against kwok's emulated kubelet endpoint and registers
// it as the metrics.k8s.io APIService, then waits until the aggregator reports it Available.
func (e *Env) startMetricsServer(ctx context.Context) error {
	const namespace, name = "kube-system", "metrics-server"
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	pair, err := e.CA.Sign(CertRequest{CommonName: name, DNSNames: []string{name + "." + namespace + ".svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		return err
	}
	certFile, keyFile, err := pair.Write(dir, "serving")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	p, err := e.start(name, []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--authentication-kubeconfig=" + e.Kubeconfig,
		"--authorization-kubeconfig=" + e.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		// kwok serves plain HTTP on loopback: no kubelet TLS to verify.
		"--deprecated-kubelet-completely-insecure",
		"--kubelet-port=" + strconv.Itoa(e.kwokServerPort),
		"--kubelet-preferred-address-types=InternalIP",
		"--metric-resolution=10s",
		"--kubelet-request-timeout=5s",
		"--v=1",
	})
	if err != nil {
		return err
	}
	if err := e.RegisterAPIService(ctx, namespace, name, int32(port), MetricsGroupVersion); err != nil { //nolint:gosec // a TCP port fits
		return err
	}
	if err := e.waitAPIServiceAvailable(ctx, p, MetricsGroupVersion); err != nil {
		return fmt.Errorf("%w; metrics-server log %s:\n%s", err, p.logPath, p.logTail(20))
	}
	return nil
}

// RegisterAPIService points the aggregator at a server on 127.0.0.1:port for each group/version:
// an ExternalName Service (namespace/name → localhost) and one APIService per version (replacing
// one that exists), trusting the test bed's CA (the server's certificate must be signed by e.CA
// for <name>.<namespace>.svc).
func (e *Env) RegisterAPIService(ctx context.Context, namespace, name string, port int32, groupVersions ...schema.GroupVersion) error {
	cs, err := e.Clientset()
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: port}},
		},
	}
	if _, err := cs.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service %s/%s: %w", namespace, name, err)
	}
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("creating a dynamic client: %w", err)
	}
	for _, gv := range groupVersions {
		n := gv.Version + "." + gv.Group
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1",
			"kind":       "APIService",
			"metadata":   map[string]any{"name": n},
			"spec": map[string]any{
				"group":                gv.Group,
				"version":              gv.Version,
				"groupPriorityMinimum": int64(100),
				"versionPriority":      int64(200),
				"caBundle":             e.CA.CertPEM,
				"service":              map[string]any{"namespace": namespace, "name": name, "port": int64(port)},
			},
		}}
		_, err := dyn.Resource(APIServiceGVR).Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Another server registered it before: point it here instead.
			var old *unstructured.Unstructured
			if old, err = dyn.Resource(APIServiceGVR).Get(ctx, n, metav1.GetOptions{}); err == nil {
				obj.SetResourceVersion(old.GetResourceVersion())
				_, err = dyn.Resource(APIServiceGVR).Update(ctx, obj, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("registering APIService %s: %w", n, err)
		}
	}
	return nil
}

// APIServiceGVR is apiregistration.k8s.io/v1 apiservices.
var APIServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// waitAPIServiceAvailable waits until the aggregator reports the APIService Available; it
// gives up early when the server's process p ends.
func (e *Env) waitAPIServiceAvailable(ctx context.Context, p *process, gv schema.GroupVersion) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("creating a dynamic client: %w", err)
	}
	name := gv.Version + "." + gv.Group
	var last string
	for {
		if p.exited() {
			return p.earlyExitError()
		}
		obj, err := dyn.Resource(APIServiceGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Available" {
					if m["status"] == "True" {
						return nil
					}
					last = fmt.Sprintf("%v: %v", m["reason"], m["message"])
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("APIService %s not Available (last: %s)", name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
