package framework

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// WebhookServing is where a webhook server under test listens and finds its certificate.
type WebhookServing struct {
	// Port is a free loopback port for the server.
	Port int
	// CertDir holds tls.crt and tls.key, valid for 127.0.0.1 and signed by the test bed's CA.
	CertDir string
}

// PrepareWebhook picks a free port and writes a serving certificate for 127.0.0.1 into a
// directory under the test bed's working directory (removed by Stop).
func PrepareWebhook(env *testbed.Env, name string) (*WebhookServing, error) {
	dir := filepath.Join(env.Dir, "webhook-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	pair, err := env.CA.Sign(testbed.CertRequest{CommonName: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		return nil, err
	}
	if _, _, err := pair.Write(dir, "tls"); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return &WebhookServing{Port: port, CertDir: dir}, nil
}

// RegisterValidatingWebhook points a ValidatingWebhookConfiguration for CREATE and UPDATE of
// resource in group/version at https://127.0.0.1:<port><path>, failing closed.
func RegisterValidatingWebhook(ctx context.Context, cs kubernetes.Interface, env *testbed.Env, name string, s *WebhookServing, path, group, version, resource string) error {
	url := fmt.Sprintf("https://127.0.0.1:%d%s", s.Port, path)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    name + "." + group,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.CA.CertPEM},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: []string{resource}},
			}},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("registering webhook %s: %w", name, err)
	}
	return nil
}
