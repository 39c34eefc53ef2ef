package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// The alarm adds each object when it is due, with FirePriority, so a due object is handed
// out before spec changes already waiting; replaced and cleared wake-ups never fire.
func TestAlarm(t *testing.T) {
	start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	q := priorityqueue.New[reconcile.Request]("alarm-test")
	defer q.ShutDown()
	a := NewAlarm(clk)
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "sale", Name: n} }
	a.Set(key("a"), start.Add(10*time.Second))
	a.Set(key("b"), start.Add(5*time.Second))
	a.Set(key("c"), start.Add(20*time.Second))
	a.Set(key("a"), start.Add(30*time.Second)) // replaced: not at 10 s
	a.Clear(key("c"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	step := func(to time.Duration) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("the alarm never waited on its timer")
			}
			time.Sleep(time.Millisecond)
		}
		clk.SetTime(start.Add(to))
	}
	waitLen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for q.Len() != n {
			if time.Now().After(deadline) {
				t.Fatalf("queue length %d, want %d", q.Len(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// idle waits until the alarm has handled the clock's last change: it is waiting on a timer
	// again, or (with nothing left to wake) on none. Both are read from the fake clock.
	idle := func(timer bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for clk.HasWaiters() != timer {
			if time.Now().After(deadline) {
				t.Fatalf("the alarm never settled (waiting on a timer: %v, want %v)", clk.HasWaiters(), timer)
			}
			time.Sleep(time.Millisecond)
		}
	}

	step(6 * time.Second)
	waitLen(1)
	if item, prio, _ := q.GetWithPriority(); item.Name != "b" || prio != FirePriority {
		t.Fatalf("got %s at priority %d, want b at %d", item.Name, prio, FirePriority)
	}
	q.Done(reconcile.Request{NamespacedName: key("b")})

	// A spec change waits in the queue; the fire of a comes due and is handed out first.
	// Neither a's replaced time (10 s) nor c's cleared one (20 s) fires on the way.
	q.Add(reconcile.Request{NamespacedName: key("edited")})
	step(31 * time.Second)
	waitLen(2)
	idle(false) // nothing is left to wake: the alarm holds no timer
	if q.Len() != 2 {
		t.Fatalf("queue length %d, want the edit and a", q.Len())
	}
	if item, prio, _ := q.GetWithPriority(); item.Name != "a" || prio != FirePriority {
		t.Fatalf("got %s at priority %d, want the due a before the edit", item.Name, prio)
	}
	if item, _, _ := q.GetWithPriority(); item.Name != "edited" {
		t.Fatalf("got %s, want the edit", item.Name)
	}
	if a.Len() != 0 {
		t.Fatalf("%d wake-ups left", a.Len())
	}
}
