// Package eventrec builds the event recorder Lockstep controllers use: client-go's core/v1
// broadcaster, whose correlator deduplicates and rate-limits events per object in a
// fixed-size LRU, behind the events.k8s.io-style EventRecorder interface. controller-runtime's
// default events.k8s.io broadcaster keeps every event it sent for 6 to 12 minutes to build
// series; with 10,000 objects firing at once that alone held ~11 MiB of heap in the cronhpa
// bench, so a bounded cache matters for controllers that own many objects.
package eventrec

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// CacheSize is how many distinct events (per object, reason and message) the correlator
// remembers for deduplication; older ones are evicted first.
const CacheSize = 1024

// New returns a recorder that writes Events for component, and a runnable for the manager
// that flushes and stops the broadcaster when the manager stops.
func New(cfg *rest.Config, scheme *runtime.Scheme, component string) (events.EventRecorder, manager.Runnable, error) {
	client, err := typedcorev1.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the events client: %w", err)
	}
	b := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: CacheSize}))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.Events("")})
	rec := record.NewEventRecorderAdapter(b.NewRecorder(scheme, corev1.EventSource{Component: component}))
	return rec, shutdown{b}, nil
}

// shutdown stops the broadcaster with the manager. It runs on every replica, leader or not.
type shutdown struct{ b record.EventBroadcaster }

// Start waits for the manager to stop, then flushes and stops the broadcaster.
func (s shutdown) Start(ctx context.Context) error {
	<-ctx.Done()
	s.b.Shutdown()
	return nil
}

// NeedLeaderElection is false: every replica records events.
func (shutdown) NeedLeaderElection() bool { return false }
