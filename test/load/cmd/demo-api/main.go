// Command demo-api serves the load harness's demo API in a real pod (the kind load test): each
// request burns its work as real CPU time under a concurrency limit, so the pod's CPU limit, and
// in-place resizes of it, set its capacity, and the kubelet measures its usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/test/load/demoapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-api:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := demoapi.Config{Burn: true}
	listen := flag.String("listen", ":8080", "address to serve the API and /metrics on")
	flag.DurationVar(&cfg.Work, "work", 10*time.Millisecond, "CPU time each request burns")
	flag.IntVar(&cfg.Concurrency, "concurrency", 8, "requests served at once; more wait in line")
	flag.IntVar(&cfg.QueueLimit, "queue-limit", 100, "requests that may wait; beyond it requests get 503 at once")
	flag.Parse()
	// Go sizes GOMAXPROCS to the container's CPU limit; it only labels the pod's size here.
	cfg.CPU = float64(runtime.GOMAXPROCS(0))
	reg := prometheus.NewRegistry()
	api, err := demoapi.New(cfg, clock.RealClock{}, reg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: api.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
