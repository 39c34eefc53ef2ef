// Command probe is the test bed's own workload for the real node's tests: an HTTP server on
// :8080 that answers /healthz, and on /apiserver reports whether the pod reaches the API server
// the way in-cluster clients do (the kubernetes Service address, the service account token and
// CA). It needs nothing from its image but itself.
//
// With --ingress-nginx-metrics it also stands in for an ingress-nginx controller's metrics
// endpoint: nginx_ingress_controller_requests for one backend Service, growing at --rate
// requests per second since start, the series Lockstep's metrics adapter scrapes.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	nginx := flag.String("ingress-nginx-metrics", "", "address to serve ingress-nginx style /metrics on (empty: off)")
	namespace := flag.String("namespace", "", "namespace label of the emulated requests")
	service := flag.String("service", "", "service label of the emulated requests")
	ingress := flag.String("ingress", "", "ingress label of the emulated requests")
	rate := flag.Float64("rate", 10, "emulated requests per second")
	flag.Parse()
	if *nginx != "" {
		start := time.Now()
		metrics := http.NewServeMux()
		metrics.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			count := *rate * time.Since(start).Seconds()
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = fmt.Fprintf(w, "# TYPE nginx_ingress_controller_requests counter\n"+
				"nginx_ingress_controller_requests{namespace=%q,service=%q,ingress=%q,status=\"200\",method=\"GET\"} %g\n",
				*namespace, *service, *ingress, count)
		})
		go func() {
			srv := &http.Server{Addr: *nginx, Handler: metrics, ReadHeaderTimeout: 5 * time.Second}
			log.Fatal(srv.ListenAndServe())
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/apiserver", apiserver)
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// apiserver calls GET /version on the API server as an in-cluster client and relays the answer.
func apiserver(w http.ResponseWriter, r *http.Request) {
	token, err := os.ReadFile(serviceAccountDir + "token")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ca, err := os.ReadFile(serviceAccountDir + "ca.crt")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	// The address is the pod's KUBERNETES_SERVICE_HOST, not request input.
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "https://"+host+"/version", nil) //nolint:gosec // see above.
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := client.Do(req) //nolint:gosec // the kubernetes Service address, as above.
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	w.WriteHeader(resp.StatusCode)
	_, _ = fmt.Fprintf(w, "%s", body)
}
