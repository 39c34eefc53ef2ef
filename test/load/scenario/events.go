package scenario

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/load/timeline"
)

// eventsSince lists namespace's events of reason that happened at start or later.
func eventsSince(ctx context.Context, cs kubernetes.Interface, namespace, reason string, start time.Time) ([]corev1.Event, error) {
	list, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if !eventTime(e).Before(start) {
			out = append(out, e)
		}
	}
	return out, nil
}

// eventTime is when an event first happened, whichever API recorded it.
func eventTime(e corev1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// occurrences is how many times an event was recorded: the events API keeps a repeated event as
// one object with a series, the core API with a count.
func occurrences(e corev1.Event) int {
	n := max(1, int(e.Count))
	if e.Series != nil {
		n = max(n, int(e.Series.Count))
	}
	return n
}

// timelineEvent is e in the timeline, at its second from start, with reason.
func timelineEvent(e corev1.Event, start time.Time, reason string) timeline.Event {
	return timeline.Event{Second: int(eventTime(e).Sub(start) / time.Second), Reason: reason,
		What: fmt.Sprintf("%s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)}
}
