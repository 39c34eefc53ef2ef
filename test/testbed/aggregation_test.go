package testbed_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

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

	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: port}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": version + "." + group},
		"spec": map[string]any{
			"group":                group,
			"version":              version,
			"groupPriorityMinimum": int64(1000),
			"versionPriority":      int64(15),
			"caBundle":             env.CA.CertPEM,
			"service":              map[string]any{"namespace": ns, "name": svcName, "port": int64(port)},
		},
	}}
	if _, err := dyn.Resource(apiServiceGVR).Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(apiServiceGVR).Delete(context.Background(), version+"."+group, metav1.DeleteOptions{})
	})

	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		got, err := dyn.Resource(apiServiceGVR).Get(ctx, version+"."+group, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conditions {
			m, _ := c.(map[string]any)
			if m["type"] == "Available" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("APIService not Available: %v", conditions)
	})

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
