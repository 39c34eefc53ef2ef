package testbed_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// probeServer is a minimal aggregated API server: it serves discovery for one group version and
// records the user the aggregator forwarded, after checking the front-proxy client certificate.
type probeServer struct {
	groupVersion string
	mu           sync.Mutex
	users        []string
}

func (s *probeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/apis/"+s.groupVersion {
		http.NotFound(w, r)
		return
	}
	if user := r.Header.Get("X-Remote-User"); user != "" {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "X-Remote-User without a front-proxy client certificate", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.users = append(s.users, user)
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: s.groupVersion,
		APIResources: []metav1.APIResource{},
	})
}

func (s *probeServer) sawUser(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u == name {
			return true
		}
	}
	return false
}

// An APIService backed by a process on loopback (through an ExternalName Service pointing at
// localhost) becomes Available and is reachable through the API server.
func TestAggregatedAPIServiceOnLoopback(t *testing.T) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	const group, version, svcName = "probe.lockstep.dev", "v1", "probe"

	serving, err := env.CA.Sign(testbed.CertRequest{CommonName: svcName, DNSNames: []string{svcName + "." + ns + ".svc"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	proxyCAs := x509.NewCertPool()
	proxyCAs.AddCert(env.FrontProxyCA.Cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probe := &probeServer{groupVersion: group + "/" + version}
	srv := &http.Server{
		Handler:           probe,
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: proxyCAs, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	port := int32(ln.Addr().(*net.TCPAddr).Port)

	remove, err := framework.RegisterAPIService(ctx, cs, env, ns, svcName, port, schema.GroupVersion{Group: group, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	framework.APIServicesAvailable(t, env, time.Minute, version+"."+group)

	body, err := cs.RESTClient().Get().AbsPath("/apis/" + group + "/" + version).DoRaw(ctx)
	if err != nil {
		t.Fatalf("request through the aggregator: %v", err)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil || list.GroupVersion != group+"/"+version {
		t.Fatalf("unexpected discovery answer %s (%v)", body, err)
	}
	if !probe.sawUser(testbed.Admin.User) {
		t.Fatalf("the aggregated server never saw user %q via the front proxy", testbed.Admin.User)
	}
}
