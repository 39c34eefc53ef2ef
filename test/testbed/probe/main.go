// Command probe is the test bed's own workload for the real node's tests: an HTTP server on
// :8080 that answers /healthz, and on /apiserver reports whether the pod reaches the API server
// the way in-cluster clients do (the kubernetes Service address, the service account token and
// CA). It needs nothing from its image but itself.
package main

import (
	"crypto/tls"
	"crypto/x509"
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
