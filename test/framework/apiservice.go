package framework

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// APIServiceGVR is apiregistration.k8s.io/v1 apiservices.
var APIServiceGVR = testbed.APIServiceGVR

// RegisterAPIService points the aggregator at a server on 127.0.0.1:port for each
// group/version in groupVersions (see testbed.Env.RegisterAPIService). It returns a function
// that removes the APIServices.
func RegisterAPIService(ctx context.Context, _ kubernetes.Interface, env *testbed.Env, namespace, name string, port int32, groupVersions ...schema.GroupVersion) (func(), error) {
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		return nil, fmt.Errorf("creating a dynamic client: %w", err)
	}
	remove := func() {
		for _, gv := range groupVersions {
			_ = dyn.Resource(APIServiceGVR).Delete(context.Background(), gv.Version+"."+gv.Group, metav1.DeleteOptions{})
		}
	}
	if err := env.RegisterAPIService(ctx, namespace, name, port, groupVersions...); err != nil {
		remove()
		return nil, err
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
