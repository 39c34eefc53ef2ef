package framework

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// MetricsAdapter describes a bin/metrics-adapter process to run on the test bed.
type MetricsAdapter struct {
	// Name of the process, of its certificate (<name>.<namespace>.svc) and of the Service
	// its APIServices point at.
	Name      string
	Namespace string
	// Binary is the path of bin/metrics-adapter.
	Binary string
	// Config is the adapter's configuration file (YAML).
	Config string
	// Verbosity is its --v (default 2).
	Verbosity int
	// Replicas is how many processes serve behind the one APIService (default 1). They share
	// the port (SO_REUSEPORT, --permit-port-sharing), so the aggregator's connections spread
	// over them and move to the others when one stops, as behind a Service in a cluster.
	Replicas int
}

// StartMetricsAdapter runs the adapter on a free loopback port, serving with a certificate
// from the test bed's CA, and registers it for custom.metrics.k8s.io (v1beta1, v1beta2) and
// external.metrics.k8s.io (v1beta1). It returns the port and the (first) process.
func StartMetricsAdapter(ctx context.Context, env *testbed.Env, cs kubernetes.Interface, a MetricsAdapter) (int, *testbed.Process, error) {
	port, procs, err := StartMetricsAdapterReplicas(ctx, env, cs, a)
	if err != nil {
		return 0, nil, err
	}
	return port, procs[0], nil
}

// StartMetricsAdapterReplicas is StartMetricsAdapter returning every replica's process.
func StartMetricsAdapterReplicas(ctx context.Context, env *testbed.Env, cs kubernetes.Interface, a MetricsAdapter) (int, []*testbed.Process, error) {
	if _, err := os.Stat(a.Binary); err != nil {
		return 0, nil, fmt.Errorf("%s not built: run `make build`", a.Binary)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, nil, fmt.Errorf("creating %s: %w", a.Namespace, err)
	}
	dir := filepath.Join(env.Dir, a.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	pair, err := env.CA.Sign(testbed.CertRequest{CommonName: a.Name, DNSNames: []string{a.Name + "." + a.Namespace + ".svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		return 0, nil, err
	}
	certFile, keyFile, err := pair.Write(dir, "serving")
	if err != nil {
		return 0, nil, err
	}
	configFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configFile, []byte(a.Config), 0o600); err != nil {
		return 0, nil, fmt.Errorf("writing the configuration: %w", err)
	}
	port, err := testbed.FreePort()
	if err != nil {
		return 0, nil, err
	}
	verbosity := a.Verbosity
	if verbosity == 0 {
		verbosity = 2
	}
	replicas := max(a.Replicas, 1)
	procs := make([]*testbed.Process, 0, replicas)
	stopAll := func() {
		for _, p := range procs {
			_ = p.Stop()
		}
	}
	for i := range replicas {
		name := a.Name
		if replicas > 1 {
			name = fmt.Sprintf("%s-%d", a.Name, i)
		}
		proc, err := env.Run(name, a.Binary,
			"--config="+configFile,
			fmt.Sprintf("--secure-port=%d", port), "--bind-address=127.0.0.1", fmt.Sprintf("--permit-port-sharing=%v", replicas > 1),
			"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile,
			"--lister-kubeconfig="+env.Kubeconfig, "--authentication-kubeconfig="+env.Kubeconfig, "--authorization-kubeconfig="+env.Kubeconfig,
			fmt.Sprintf("--v=%d", verbosity))
		if err != nil {
			stopAll()
			return 0, nil, fmt.Errorf("starting the adapter: %w", err)
		}
		procs = append(procs, proc)
	}
	if _, err := RegisterAPIService(ctx, cs, env, a.Namespace, a.Name, int32(port), //nolint:gosec // a TCP port fits
		schema.GroupVersion{Group: "custom.metrics.k8s.io", Version: "v1beta1"},
		schema.GroupVersion{Group: "custom.metrics.k8s.io", Version: "v1beta2"},
		schema.GroupVersion{Group: "external.metrics.k8s.io", Version: "v1beta1"}); err != nil {
		stopAll()
		return 0, nil, err
	}
	return port, procs, nil
}
