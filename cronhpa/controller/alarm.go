package controller

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// FirePriority is the work-queue priority of an object whose next activation is due. Spec
// changes come in at priority 0 (and unchanged objects of a resync lower), so a due fire is
// reconciled before them: a bulk edit of thousands of objects right before a sale does not
// delay the sale's scaling.
const FirePriority = 100

// Alarm wakes each object at its next activation: one timer for all objects, over a heap of
// wake-up times. It is a controller source; the reconciler tells it when to wake an object.
//
// Returning RequeueAfter would do the waking too, but the priority queue merges an object's
// pending wake-up with any later event for it, keeping the higher priority and the earlier
// time; with every object holding a high-priority wake-up, every spec change would jump the
// queue as well. Adding the object only when it is due keeps the two lanes apart.
type Alarm struct {
	clock clock.Clock
	wake  chan struct{}

	mu    sync.Mutex
	at    map[types.NamespacedName]time.Time
	heap  alarmHeap
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// NewAlarm returns an alarm on clk.
func NewAlarm(clk clock.Clock) *Alarm {
	return &Alarm{clock: clk, wake: make(chan struct{}, 1), at: map[types.NamespacedName]time.Time{}}
}

// Set wakes key at t, replacing its earlier wake-up.
func (a *Alarm) Set(key types.NamespacedName, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.at[key]; ok && old.Equal(t) {
		return
	}
	a.at[key] = t
	heap.Push(&a.heap, alarmEntry{key: key, at: t})
	// Replaced wake-ups stay in the heap until popped; rebuild when they pile up.
	if len(a.heap) > 2*len(a.at)+1024 {
		a.rebuild()
	}
	a.poke()
}

// Clear drops key's wake-up (the object is gone or has nothing scheduled).
func (a *Alarm) Clear(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.at, key)
}

// Len is the number of objects with a wake-up.
func (a *Alarm) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

func (a *Alarm) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Alarm) rebuild() {
	a.heap = a.heap[:0]
	for k, t := range a.at {
		a.heap = append(a.heap, alarmEntry{key: k, at: t})
	}
	heap.Init(&a.heap)
}

// Start implements source.TypedSource: it adds due objects to q until ctx ends.
func (a *Alarm) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	a.mu.Lock()
	a.queue = q
	a.mu.Unlock()
	go a.run(ctx)
	return nil
}

func (a *Alarm) run(ctx context.Context) {
	for {
		wait, ok := a.fireDue()
		var timer clock.Timer
		var fired <-chan time.Time
		if ok {
			timer = a.clock.NewTimer(wait)
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-fired:
		case <-a.wake:
			if timer != nil {
				timer.Stop()
			}
		}
	}
}

// fireDue adds every due object to the queue and returns the wait until the next one.
func (a *Alarm) fireDue() (time.Duration, bool) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.heap) > 0 {
		next := a.heap[0]
		if t, ok := a.at[next.key]; !ok || !t.Equal(next.at) {
			heap.Pop(&a.heap) // replaced or cleared
			continue
		}
		if next.at.After(now) {
			return next.at.Sub(now), true
		}
		heap.Pop(&a.heap)
		delete(a.at, next.key)
		req := reconcile.Request{NamespacedName: next.key}
		if pq, isPQ := a.queue.(priorityqueue.PriorityQueue[reconcile.Request]); isPQ {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(FirePriority)}, req)
		} else {
			a.queue.Add(req)
		}
	}
	return 0, false
}

type alarmEntry struct {
	key types.NamespacedName
	at  time.Time
}

type alarmHeap []alarmEntry

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *alarmHeap) Push(x any)        { *h = append(*h, x.(alarmEntry)) } //nolint:forcetypeassert // only alarmEntry is pushed
func (h *alarmHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
