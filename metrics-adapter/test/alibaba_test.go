package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud/alifake"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/alibaba"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// The CloudMonitor target of the adapter under test: a CLB listener in front of Service
// cmsNS/cmsService port 80.
const (
	cmsNS       = "cms-shop"
	cmsService  = "storefront"
	cmsInstance = "lb-e2e0example"
	cmsKeyID    = "LTAI5tE2ETestKey"
	cmsSecret   = "e2e-secret-not-real"
)

// cloudMonitor is a CloudMonitor stand-in on loopback: the signature-checking fake with a
// DescribeMetricLast that reports the listener QPS the test sets, stamped now.
type cloudMonitor struct {
	fake *alifake.Server
	host string
	mu   sync.Mutex
	qps  float64
}

func startCloudMonitor(secretDir string) (*cloudMonitor, error) {
	c := &cloudMonitor{fake: alifake.New()}
	c.fake.AddKey(cmsKeyID, cmsSecret, "")
	c.fake.Handle("DescribeMetricLast", func(p url.Values) (map[string]any, *alifake.Error) {
		want := fmt.Sprintf(`[{"instanceId":%q,"port":"80"}]`, cmsInstance)
		if p.Get("Namespace") != "acs_slb_dashboard" || p.Get("MetricName") != "Qps" || p.Get("Dimensions") != want {
			return map[string]any{"Code": "200", "Success": true, "Datapoints": "[]"}, nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		b, _ := json.Marshal([]map[string]any{{"timestamp": time.Now().UnixMilli(), "Average": c.qps, "instanceId": cmsInstance}})
		return map[string]any{"Code": "200", "Success": true, "Period": "60", "Datapoints": string(b)}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	go func() { _ = (&http.Server{Handler: c.fake, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()
	c.host = ln.Addr().String()
	if err := os.MkdirAll(secretDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", secretDir, err)
	}
	for name, v := range map[string]string{alibaba.AccessKeyIDFile: cmsKeyID, alibaba.AccessKeySecretFile: cmsSecret} {
		if err := os.WriteFile(filepath.Join(secretDir, name), []byte(v), 0o600); err != nil {
			return nil, fmt.Errorf("writing the credentials: %w", err)
		}
	}
	return c, nil
}

func (c *cloudMonitor) setQPS(v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.qps = v
}

// cloudMonitorConfig is the adapter's alibabaCloud section for the stand-in.
func (c *cloudMonitor) config(secretDir string) string {
	return fmt.Sprintf(`alibabaCloud:
  regionId: cn-hangzhou
  credentials: {secretDir: %s}
  cloudMonitor:
    endpoint: %s
    scheme: http
    refresh: 1s
    targets:
    - {namespace: %s, name: %s, port: "80", clb: {instanceId: %s, port: 80}}
`, secretDir, c.host, cmsNS, cmsService, cmsInstance)
}

// An ACK HPA on sls_ingress_qps, with the value coming from CloudMonitor (the CLB listener
// in front of the Service) through the Alibaba Cloud SDK: scales up and back down.
func TestCloudMonitorSource(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	if _, err := h.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cmsNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cs.CoreV1().Namespaces().Delete(ctx, cmsNS, metav1.DeleteOptions{}) })
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		_, err := h.cs.CoreV1().ServiceAccounts(cmsNS).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	createService(t, h.cs, cmsNS, cmsService)
	if err := createDeployment(ctx, h.cs, loopbackDeployment(cmsNS, cmsService, 1, nil)); err != nil {
		t.Fatal(err)
	}
	h.cms.setQPS(30)
	createHPA(t, h.cs, cmsNS, cmsService, 1, 6, autoscalingv2.MetricSpec{
		Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "sls_ingress_qps", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"sls.ingress.route": cmsNS + "-" + cmsService + "-80",
			}}},
			Target: averageValue("10"),
		},
	})
	waitReplicas(t, h.cs, cmsNS, cmsService, 3, 2*time.Minute)
	h.cms.setQPS(4)
	waitReplicas(t, h.cs, cmsNS, cmsService, 1, 2*time.Minute)
	if h.cms.fake.Calls("DescribeMetricLast") == 0 {
		t.Fatal("CloudMonitor was never called")
	}
}
