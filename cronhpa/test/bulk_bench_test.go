package test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lockstep-dev/lockstep/test/framework"
)

// Bulk-edit benchmark settings: bulkEdits objects are edited at once (a `kubectl apply` of
// every CronHPA right before a sale) while bulkFires other objects come due, with the
// controller's client limited to bulkQPS so that the edits' status writes form a backlog.
const (
	bulkEdits = 3000
	bulkFires = 100
	bulkQPS   = "50"
	// bulkSpread spreads the fires over this span from the start of the edit.
	bulkSpread = 10 * time.Second
)

// BenchmarkFireDuringBulkEdit measures the delay of scheduled fires while thousands of other
// objects are edited at the same moment: the edits wait in the same work queue and share the
// client's rate limit, and due fires must go first.
func BenchmarkFireDuringBulkEdit(b *testing.B) {
	for b.Loop() {
		benchFireDuringBulkEdit(b)
	}
}

func benchFireDuringBulkEdit(b *testing.B) {
	env := framework.Env(b)
	c := newClient(b, env)
	ensureCRD(b)
	cs, err := env.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	ns := framework.Namespace(b, cs)
	ctx := context.Background()
	n := bulkEdits + bulkFires
	ctrlProc := startBenchController(b, env.Kubeconfig, env.LogDir, "cronhpa-bench-bulk.log", bulkQPS, "")
	defer func() { _ = ctrlProc.Process.Kill(); _ = ctrlProc.Wait() }()

	// Objects 0..bulkFires-1 fire; the others are edited. All start with a far-future job.
	createBenchObjects(b, c, ns, n)
	arrivals, stopWatch := watchScaled(b, cs, ns, bulkFires)
	start := time.Now().Add(fireMargin).Truncate(time.Second).Add(time.Second)
	instants := make([]time.Time, bulkFires)
	for i := range bulkFires {
		instants[i] = start.Add(time.Duration(i) * bulkSpread / bulkFires).Truncate(time.Second)
	}
	framework.Parallel(b, bulkFires, 16, func(i int) error { return patchSchedule(ctx, c, ns, i, instants[i]) })
	waitReconciled(b, c, ns, n)
	if time.Now().After(start) {
		b.Fatalf("scheduling %d fires took past the first fire time", bulkFires)
	}

	// The bulk edit lands just before the first fire: every edited object moves to another
	// far-future date, costing a reconcile and a status write each.
	time.Sleep(time.Until(start.Add(-time.Second)))
	editStart := time.Now()
	framework.Parallel(b, bulkEdits, 16, func(i int) error {
		return patchSchedule(ctx, c, ns, bulkFires+i, time.Date(2098, 11, 11, 0, 0, 0, 0, time.UTC))
	})
	editTook := time.Since(editStart)

	deadline := instants[bulkFires-1].Add(3 * time.Minute)
	var lags []time.Duration
	for len(lags) < bulkFires && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		lags = collectLags(arrivals, instants)
	}
	stopWatch()
	if len(lags) < bulkFires {
		b.Fatalf("only %d of %d objects fired within 3 minutes of the last instant", len(lags), bulkFires)
	}
	// How long the edits' reconciles took to drain: the backlog the fires had to pass.
	waitReconciled(b, c, ns, n)
	drained := time.Since(editStart)
	slices.Sort(lags)
	b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
	b.ReportMetric(editTook.Seconds(), "edit-s")
	b.ReportMetric(drained.Seconds(), "backlog-drained-s")
}
