package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// The memo stands in for records the cache does not show yet, and lets go of them once it does.
func TestMemo(t *testing.T) {
	key := types.NamespacedName{Namespace: "sale", Name: "shop"}
	cachedOld := v1beta1.Condition{Name: "up", JobID: "j1", State: v1beta1.Succeed, LastScheduleTime: mt("2026-11-22T10:00:00Z")}
	handled := v1beta1.Condition{Name: "up", JobID: "j1", State: v1beta1.Succeed, LastScheduleTime: mt("2026-11-22T10:10:00Z")}
	other := v1beta1.Condition{Name: "down", JobID: "j2", State: v1beta1.Submitted}

	var m memo
	m.remember(key, "uid-1", []v1beta1.Condition{handled})

	// A stale cache read: the handled time is overlaid, the other job's record kept.
	got := m.overlay(key, "uid-1", []v1beta1.Condition{cachedOld, other})
	if len(got) != 2 || !got[0].LastScheduleTime.Equal(handled.LastScheduleTime) || got[1].Name != "down" {
		t.Fatalf("overlay on a stale read: %+v", got)
	}
	if m.len() != 1 {
		t.Fatal("the memo let go before the cache caught up")
	}
	// The cache caught up: its record is used and the memo is empty.
	got = m.overlay(key, "uid-1", []v1beta1.Condition{handled, other})
	if len(got) != 2 || m.len() != 0 {
		t.Fatalf("after catching up: %+v, memo holds %d", got, m.len())
	}

	// A first reconcile whose status write has not arrived: the record is added.
	m.remember(key, "uid-1", []v1beta1.Condition{handled})
	if got := m.overlay(key, "uid-1", nil); len(got) != 1 || got[0].JobID != "j1" {
		t.Fatalf("overlay on an empty status: %+v", got)
	}
	// The object was deleted and created again under the same name: nothing carries over.
	if got := m.overlay(key, "uid-2", nil); len(got) != 0 || m.len() != 0 {
		t.Fatalf("a new object got the old one's records: %+v", got)
	}
	m.remember(key, "uid-1", []v1beta1.Condition{handled})
	m.forget(key)
	if m.len() != 0 {
		t.Fatal("forget kept the records")
	}
}

func TestAhead(t *testing.T) {
	retry := func(instant string, attempts int32) *v1beta1.JobRetry {
		return &v1beta1.JobRetry{ScheduleTime: *mt(instant), Attempts: attempts, NextTime: *mt(instant)}
	}
	tests := map[string]struct {
		a, b v1beta1.Condition
		want bool
	}{
		"later handled time": {
			a: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:10:00Z")}, b: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:00:00Z")}, want: true,
		},
		"earlier handled time": {
			a: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:00:00Z")}, b: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:10:00Z")},
		},
		"success after retries beats the retry record": {
			a: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:10:00Z")},
			b: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:00:00Z"), Retry: retry("2026-11-22T10:10:00Z", 3)}, want: true,
		},
		"one more failed attempt": {
			a: v1beta1.Condition{Retry: retry("2026-11-22T10:10:00Z", 3)}, b: v1beta1.Condition{Retry: retry("2026-11-22T10:10:00Z", 2)}, want: true,
		},
		"a first failure beats no record of it": {
			a: v1beta1.Condition{Retry: retry("2026-11-22T10:10:00Z", 1)}, b: v1beta1.Condition{}, want: true,
		},
		"the same record": {
			a: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:10:00Z")}, b: v1beta1.Condition{LastScheduleTime: mt("2026-11-22T10:10:00Z")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ahead(tc.a, tc.b); got != tc.want {
				t.Fatalf("ahead = %v, want %v", got, tc.want)
			}
		})
	}
}

// Between incarnations of a job the memo's record wins, unless the cached one started strictly
// later; within one incarnation progress decides.
func TestNewer(t *testing.T) {
	tests := map[string]struct {
		mine, cached v1beta1.Condition
		want         bool
	}{
		"the cache shows the first write's incarnation, started in the same second": {
			mine:   v1beta1.Condition{JobID: "j2", SubmittedTime: mt("2026-11-22T10:00:00Z"), LastScheduleTime: mt("2026-11-22T10:00:02Z")},
			cached: v1beta1.Condition{JobID: "j1", SubmittedTime: mt("2026-11-22T10:00:00Z")}, want: true,
		},
		"a new incarnation after a schedule change": {
			mine:   v1beta1.Condition{JobID: "j2", SubmittedTime: mt("2026-11-22T11:00:00Z")},
			cached: v1beta1.Condition{JobID: "j1", SubmittedTime: mt("2026-11-22T10:00:00Z"), LastScheduleTime: mt("2026-11-22T10:30:00Z")}, want: true,
		},
		"the cache shows a later incarnation": {
			mine:   v1beta1.Condition{JobID: "j1", SubmittedTime: mt("2026-11-22T10:00:00Z"), LastScheduleTime: mt("2026-11-22T10:30:00Z")},
			cached: v1beta1.Condition{JobID: "j2", SubmittedTime: mt("2026-11-22T11:00:00Z")},
		},
		"same incarnation, the cache caught up": {
			mine:   v1beta1.Condition{JobID: "j1", LastScheduleTime: mt("2026-11-22T10:30:00Z")},
			cached: v1beta1.Condition{JobID: "j1", LastScheduleTime: mt("2026-11-22T10:30:00Z")},
		},
		"same incarnation, the cache is behind": {
			mine:   v1beta1.Condition{JobID: "j1", LastScheduleTime: mt("2026-11-22T10:30:00Z")},
			cached: v1beta1.Condition{JobID: "j1"}, want: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := newer(tc.mine, tc.cached); got != tc.want {
				t.Fatalf("newer = %v, want %v", got, tc.want)
			}
		})
	}
}
