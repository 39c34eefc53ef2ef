package scenario

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/lockstep-dev/lockstep/test/load/timeline"
)

func event(name, reason, pod string, at time.Time, count int32) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod, UID: types.UID("uid-" + pod)},
		Reason:         reason, EventTime: metav1.NewMicroTime(at), Count: count,
	}
}

// The pods moved back count once each, from the load's start on; the in-place resizes count
// every time vpa-inplace recorded one, a repeated event included.
func TestEventsFromTheCluster(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	moved := fake.NewClientset(
		event("a", "MovedBack", "checkout-a", start.Add(-5*time.Second), 1), // set-up, before the load
		event("b", "MovedBack", "checkout-b", start.Add(10*time.Second), 1),
		event("b2", "MovedBack", "checkout-b", start.Add(11*time.Second), 1), // the same pod again
		event("c", "MovedBack", "checkout-c", start.Add(12*time.Second), 1),
	)
	got, err := movedBack(context.Background(), moved, "shop", start)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Second != 10 || got[0].Reason != timeline.EventMovedBack {
		t.Fatalf("moved back: %+v", got)
	}

	boosts := &corev1.Event{}
	*boosts = *event("d", "StartupBoost", "checkout-d", start.Add(3*time.Second), 0)
	boosts.Series = &corev1.EventSeries{Count: 3}
	resized := fake.NewClientset()
	// The fake ignores field selectors: list each reason's events only when asked for it.
	resized.PrependReactor("list", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reason := a.(k8stesting.ListAction).GetListRestrictions().Fields.String()
		out := &corev1.EventList{}
		switch reason {
		case "reason=Resize":
			out.Items = append(out.Items, *event("e", "Resize", "checkout-e", start.Add(2*time.Second), 2))
		case "reason=StartupBoost":
			out.Items = append(out.Items, *boosts)
		}
		return true, out, nil
	})
	events, err := resizes(context.Background(), resized, "shop", start)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 5 {
		t.Fatalf("%d resizes, want 2 from a Resize event counted twice and 3 from a boost's series: %+v", len(events), events)
	}
}

// A failed listing is an error, never a smaller count.
func TestEventsListingFails(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is throttling")
	})
	if _, err := movedBack(context.Background(), cs, "shop", time.Now()); err == nil {
		t.Error("moved back: no error")
	}
	if _, err := resizes(context.Background(), cs, "shop", time.Now()); err == nil {
		t.Error("resizes: no error")
	}
}
