package testbed_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// BenchmarkStart measures how long a full test bed (etcd, kube-apiserver, controller-manager,
// scheduler, kwok) takes to become healthy with 5 Ready nodes, and how long Stop takes.
func BenchmarkStart(b *testing.B) {
	framework.Env(b)
	var stopTotal time.Duration
	for b.Loop() {
		env, err := testbed.Start(context.Background(), testbed.Options{ControllerManager: true, Scheduler: true, Nodes: 5})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stopStart := time.Now()
		if err := env.Stop(); err != nil {
			b.Fatal(err)
		}
		stopTotal += time.Since(stopStart)
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "start-s/op")
	b.ReportMetric(stopTotal.Seconds()/float64(b.N), "stop-s/op")
}
