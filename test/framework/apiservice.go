package framework

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// APIServiceGVR is apiregistration.k8s.io/v1 apiservices.
var APIServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// RegisterAPIService points the aggregator at a server on 127.0.0.1:port for each
// group/version in groupVersions: an ExternalName Service (namespace/name → localhost) and one
// APIService per version (replacing one that exists), trusting the test bed's CA (the server's certificate must be signed
// by env.CA for <name>.<namespace>.svc). It returns a function that removes the APIServices.
func RegisterAPIService(ctx context.Context, cs kubernetes.Interface, env *testbed.Env, namespace, name string, port int32, groupVersions ...schema.GroupVersion) (func(), error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: port}},
		},
	}
	if _, err := cs.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating service %s/%s: %w", namespace, name, err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		return nil, fmt.Errorf("creating a dynamic client: %w", err)
	}
	var names []string
	remove := func() {
		for _, n := range names {
			_ = dyn.Resource(APIServiceGVR).Delete(context.Background(), n, metav1.DeleteOptions{})
		}
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
				"caBundle":             env.CA.CertPEM,
				"service":              map[string]any{"namespace": namespace, "name": name, "port": int64(port)},
			},
		}}
		_, err := dyn.Resource(APIServiceGVR).Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Another server of the package registered it before: point it here instead.
			var old *unstructured.Unstructured
			if old, err = dyn.Resource(APIServiceGVR).Get(ctx, n, metav1.GetOptions{}); err == nil {
				obj.SetResourceVersion(old.GetResourceVersion())
				_, err = dyn.Resource(APIServiceGVR).Update(ctx, obj, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			remove()
			return nil, fmt.Errorf("registering APIService %s: %w", n, err)
		}
		names = append(names, n)
	}
	return remove, nil
}

// APIServicesAvailable waits until every named APIService reports Available=True.
func APIServicesAvailable(t interface {
	Helper()
	Fatalf(string, ...any)
}, env *testbed.Env, timeout time.Duration, names ...string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("creating a dynamic client: %v", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, n := range names {
			if !apiServiceAvailable(dyn, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("APIServices not Available after %s: %v", timeout, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func apiServiceAvailable(dyn dynamic.Interface, name string) bool {
	got, err := dyn.Resource(APIServiceGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
	for _, c := range conditions {
		if m, _ := c.(map[string]any); m["type"] == "Available" && m["status"] == "True" {
			return true
		}
	}
	return false
}
