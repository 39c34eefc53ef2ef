package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FreePort asks the kernel for an unused loopback port, for a server under test.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *Env) start(name string, args []string) (*process, error) {
	return e.startWithEnv(name, nil, args)
}

// startWithEnv starts a test bed binary with its own environment (the parent's when nil).
func (e *Env) startWithEnv(name string, env, args []string) (*process, error) {
	bin, err := lookupBinary(e.opts.BinRoot, name)
	if err != nil {
		return nil, err
	}
	p, err := startProcess(name, bin, args, env, e.LogDir)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return p, nil
}

func (e *Env) startEtcd(ctx context.Context) error {
	clientPort, err := FreePort()
	if err != nil {
		return err
	}
	peerPort, err := FreePort()
	if err != nil {
		return err
	}
	e.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	p, err := e.start("etcd", []string{
		"--name=testbed",
		"--data-dir=" + filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls=" + e.etcdURL,
		"--advertise-client-urls=" + e.etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=testbed=" + peerURL,
		"--unsafe-no-fsync",
		"--quota-backend-bytes=4294967296",
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, &http.Client{Timeout: time.Second}, e.etcdURL+"/health", `"health":"true"`)
}

func (e *Env) startAPIServer(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	e.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--etcd-servers=" + e.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + e.pki.servingCert,
		"--tls-private-key-file=" + e.pki.servingKey,
		"--client-ca-file=" + e.pki.caFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + e.pki.saPublicKey,
		"--service-account-signing-key-file=" + e.pki.saPrivateKey,
		// The front proxy: the aggregator authenticates to aggregated API servers (the metrics
		// adapter) with this client certificate and passes the user in request headers.
		"--requestheader-client-ca-file=" + e.pki.frontProxyCAFile,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + e.pki.frontProxyCert,
		"--proxy-client-key-file=" + e.pki.frontProxyKey,
		// The kubernetes Service cannot point at a loopback address; without this the endpoint
		// reconciler retries forever.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--max-requests-inflight=1000",
		"--max-mutating-requests-inflight=500",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	if e.opts.RealNodes > 0 {
		// No kube-proxy: the aggregator and the webhooks reach Services through their endpoints
		// (the real node's pod addresses) rather than ClusterIPs; logs and exec reach the kubelet
		// with a client certificate.
		kubeletClient, err := e.CA.Sign(CertRequest{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true})
		if err != nil {
			return err
		}
		certFile, keyFile, err := kubeletClient.Write(e.Dir, "apiserver-kubelet-client")
		if err != nil {
			return err
		}
		args = append(args, "--enable-aggregator-routing=true", "--kubelet-client-certificate="+certFile, "--kubelet-client-key="+keyFile,
			"--kubelet-certificate-authority="+e.pki.caFile, "--kubelet-preferred-address-types=InternalIP")
	}
	p, err := e.start("kube-apiserver", append(args, e.opts.APIServerFlags...))
	if err != nil {
		return err
	}
	if e.Config, err = identityConfig(e.CA, e.APIServerURL, Admin); err != nil {
		return err
	}
	if e.Kubeconfig, err = writeKubeconfig(e.Config, e.Dir, "admin"); err != nil {
		return err
	}
	client, err := e.tlsClient()
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, client, e.APIServerURL+"/readyz", "ok")
}

// tlsClient is an HTTP client that trusts the cluster CA and presents the admin certificate.
func (e *Env) tlsClient() (*http.Client, error) {
	cert, err := tls.X509KeyPair(e.Config.CertData, e.Config.KeyData)
	if err != nil {
		return nil, fmt.Errorf("loading admin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CA.CertPEM)
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}},
	}, nil
}

// componentKubeconfig writes a kubeconfig for one of the test bed's own components.
func (e *Env) componentKubeconfig(name string, id Identity) (string, error) {
	cfg, err := identityConfig(e.CA, e.APIServerURL, id)
	if err != nil {
		return "", err
	}
	return writeKubeconfig(cfg, e.Dir, name)
}

// healthzClient checks the self-signed serving endpoints of kube-controller-manager and
// kube-scheduler, whose /healthz is open to anonymous requests.
var healthzClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback health probe of a self-signed endpoint.
}

func (e *Env) startControllerManager(ctx context.Context) error {
	kubeconfig, err := e.componentKubeconfig("kube-controller-manager", controllerManagerIdentity)
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(e.Dir, "kube-controller-manager"),
		"--use-service-account-credentials=true",
		"--root-ca-file=" + e.pki.caFile,
		"--service-account-private-key-file=" + e.pki.saPrivateKey,
		"--controllers=*",
		"--leader-elect=false",
		"--horizontal-pod-autoscaler-sync-period=" + e.opts.HPASyncPeriod.String(),
		// The default 20 QPS throttles ReplicaSets creating hundreds of pods.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--v=1",
	}
	p, err := e.start("kube-controller-manager", append(args, e.opts.ControllerManagerFlags...))
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, healthzClient, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", "ok")
}

func (e *Env) startScheduler(ctx context.Context) error {
	kubeconfig, err := e.componentKubeconfig("kube-scheduler", schedulerIdentity)
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	config := filepath.Join(e.Dir, "kube-scheduler.yaml")
	body := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
`, kubeconfig)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		return fmt.Errorf("writing scheduler config: %w", err)
	}
	args := []string{
		"--config=" + config,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(e.Dir, "kube-scheduler"),
		"--v=1",
	}
	p, err := e.start("kube-scheduler", append(args, e.opts.SchedulerFlags...))
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, healthzClient, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", "ok")
}

func (e *Env) startKwok() error {
	stages, err := stageDocuments(e.opts.ExtraStages, e.opts.IdealResize)
	if err != nil {
		return err
	}
	args := []string{}
	if e.opts.MetricsServer {
		stages += "\n---\n" + kwokResourceMetrics
		if e.kwokServerPort, err = FreePort(); err != nil {
			return err
		}
		// kwok's server (plain HTTP on loopback) serves the emulated kubelet resource metrics.
		args = append(args, "--server-address=127.0.0.1:"+strconv.Itoa(e.kwokServerPort))
	}
	config := filepath.Join(e.Dir, "kwok.yaml")
	if err := os.WriteFile(config, []byte(stages), 0o600); err != nil {
		return fmt.Errorf("writing kwok stages: %w", err)
	}
	// kwok needs no health wait: AddNodes waits for the nodes it manages to turn Ready.
	_, err = e.start("kwok", append(args, []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--config=" + config,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=" + e.opts.KwokPodCIDR,
		"--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40",
	}...))
	if err != nil || e.opts.IdealResize {
		return err
	}
	cs, err := e.Clientset()
	if err != nil {
		return err
	}
	e.resizes, err = startResizeChecker(context.Background(), cs)
	return err
}

// waitHealthy polls url until its body contains want, the process exits, or ctx ends.
func waitHealthy(ctx context.Context, p *process, client *http.Client, url, want string) error {
	var last string
	for {
		if p.exited() {
			return p.earlyExitError()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probing %s: %w", p.name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %s (last answer: %s); log: %s\n%s", p.name, url, last, p.logPath, p.logTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
