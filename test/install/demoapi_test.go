package install_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// The demo API's image, as the kind load test's checkout pods run it (test/load/cmd/demo-api).
const (
	demoAPIPackage = "github.com/lockstep-dev/lockstep/test/load/cmd/demo-api"
	demoAPIImage   = "ghcr.io/lockstep-dev/demo-api:install-test"
)

// TestDemoAPIOnRealNode runs the kind load test's demo API image in a real pod (containerd,
// runc, a CPU limit of 200m) and checks what the kind test relies on: the pod gets Ready, it
// answers, it exports the request histogram the adapter's http-app profile reads, and its work is
// real CPU that the limit throttles. 40 requests of 10 ms of CPU need 0.4 s of a core; under
// 0.2 of a core they cannot take less than about 1.9 s however idle the machine.
func TestDemoAPIOnRealNode(t *testing.T) {
	cs := framework.Clientset(t)
	ctx := context.Background()
	ns := framework.Namespace(t, cs)
	// The probe's Deployment on the real node, running the demo API under a 200m CPU limit.
	d := probeDeployment("checkout", 1, "--listen=:8080", "--work=10ms", "--concurrency=8", "--queue-limit=100")
	c := &d.Spec.Template.Spec.Containers[0]
	c.Name, c.Image = "checkout", demoAPIImage
	cpu := resource.MustParse("200m")
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var addr string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=checkout"})
		if err != nil || len(pods.Items) != 1 {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		p := pods.Items[0]
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Status.PodIP != "" {
				addr = net.JoinHostPort(p.Status.PodIP, "8080")
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the demo API's pod did not get Ready: %v", err)
	}

	httpc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := httpc.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(body)
	}
	const requests = 40
	began := time.Now()
	for range requests {
		get("/checkout")
	}
	took := time.Since(began)
	if took < time.Second {
		t.Errorf("%d requests of 10 ms of CPU took %s under a 200m CPU limit: the work is not throttled CPU", requests, took)
	}
	metrics := get("/metrics")
	want := fmt.Sprintf(`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200"} %d`, requests)
	if !strings.Contains(metrics, want) {
		t.Errorf("the demo API's metrics lack %s:\n%s", want, metrics)
	}
	t.Logf("%d requests took %s under a 200m CPU limit", requests, took)
}
