package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/cronhpa/schedule"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mt(s string) *metav1.Time { t := metav1.NewTime(ts(s)); return &t }

func TestDecide(t *testing.T) {
	const every10 = "0 */10 * * * *" // every ten minutes
	sched, err := schedule.Parse(every10, time.UTC, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	fridays, err := schedule.ParseExclusions([]string{"* * * * * 5"}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(state v1beta1.JobState, submitted, last, probe string) *v1beta1.Condition {
		c := &v1beta1.Condition{Name: "up", Schedule: every10, State: state, SubmittedTime: mt(submitted), LastProbeTime: *mt(probe)}
		if last != "" {
			c.LastScheduleTime = mt(last)
		}
		return c
	}
	// 2026-11-22 is a Sunday; 2026-11-20 a Friday.
	tests := map[string]struct {
		now      string
		record   *v1beta1.Condition
		runOnce  bool
		disabled bool
		resumed  bool
		// firstSeen is the object's creation time, given when no record exists yet.
		firstSeen string
		excl      *schedule.Exclusions
		want      Action
		instant   string
		next      string
	}{
		"new job: past times never run": {
			now: "2026-11-22T10:05:00Z", record: nil, want: ActionNone, next: "2026-11-22T10:10:00Z",
		},
		"first reconcile after downtime: a time due since creation runs": {
			now: "2026-11-22T10:12:00Z", record: nil, firstSeen: "2026-11-22T10:08:00Z",
			want: ActionRun, instant: "2026-11-22T10:10:00Z", next: "2026-11-22T10:20:00Z",
		},
		"due now runs": {
			now: "2026-11-22T10:10:00.2Z", record: rec(v1beta1.Submitted, "2026-11-22T10:01:00Z", "", "2026-11-22T10:01:00Z"),
			want: ActionRun, instant: "2026-11-22T10:10:00Z", next: "2026-11-22T10:20:00Z",
		},
		"already handled time does not run twice": {
			now: "2026-11-22T10:12:00Z", record: rec(v1beta1.Succeed, "2026-11-22T10:01:00Z", "2026-11-22T10:10:00Z", "2026-11-22T10:10:00Z"),
			want: ActionNone, next: "2026-11-22T10:20:00Z",
		},
		"restart inside the deadline catches up the latest time once": {
			now: "2026-11-22T10:33:00Z", record: rec(v1beta1.Succeed, "2026-11-22T09:00:00Z", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
			want: ActionRun, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"restart outside the deadline records a miss": {
			now: "2026-11-22T10:39:00Z", record: rec(v1beta1.Succeed, "2026-11-22T09:00:00Z", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
			want: ActionMiss, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"failing past the deadline gives up": {
			now: "2026-11-22T10:36:00Z", record: rec(v1beta1.Failed, "2026-11-22T09:00:00Z", "2026-11-22T10:20:00Z", "2026-11-22T10:34:00Z"),
			want: ActionGiveUp, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"failing inside the deadline retries": {
			now: "2026-11-22T10:32:00Z", record: rec(v1beta1.Failed, "2026-11-22T09:00:00Z", "2026-11-22T10:20:00Z", "2026-11-22T10:31:00Z"),
			want: ActionRun, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"failing time waits for its retry": {
			now: "2026-11-22T10:31:00Z", record: withRetry(rec(v1beta1.Failed, "2026-11-22T09:00:00Z", "2026-11-22T10:20:00Z", "2026-11-22T10:30:30Z"),
				"2026-11-22T10:30:00Z", 3, "2026-11-22T10:31:02Z"),
			want: ActionNone, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"failing time retries when its retry is due": {
			now: "2026-11-22T10:31:02Z", record: withRetry(rec(v1beta1.Failed, "2026-11-22T09:00:00Z", "2026-11-22T10:20:00Z", "2026-11-22T10:30:30Z"),
				"2026-11-22T10:30:00Z", 3, "2026-11-22T10:31:02Z"),
			want: ActionRun, instant: "2026-11-22T10:30:00Z", next: "2026-11-22T10:40:00Z",
		},
		"a newer time does not wait for the retry of an older one": {
			now: "2026-11-22T10:40:01Z", record: withRetry(rec(v1beta1.Failed, "2026-11-22T09:00:00Z", "2026-11-22T10:20:00Z", "2026-11-22T10:34:00Z"),
				"2026-11-22T10:30:00Z", 5, "2026-11-22T10:45:00Z"),
			want: ActionRun, instant: "2026-11-22T10:40:00Z", next: "2026-11-22T10:50:00Z",
		},
		"excluded day is skipped": {
			now: "2026-11-20T10:10:01Z", record: rec(v1beta1.Succeed, "2026-11-19T00:00:00Z", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
			excl: fridays, want: ActionSkip, instant: "2026-11-20T10:10:00Z", next: "2026-11-20T10:20:00Z",
		},
		"runOnce after its run is finished": {
			now: "2026-11-22T10:40:00Z", runOnce: true, record: rec(v1beta1.Succeed, "2026-11-22T10:01:00Z", "2026-11-22T10:10:00Z", "2026-11-22T10:10:00Z"),
			want: ActionNone,
		},
		"runOnce runs its first time and has no next": {
			now: "2026-11-22T10:10:00Z", runOnce: true, record: rec(v1beta1.Submitted, "2026-11-22T10:01:00Z", "", "2026-11-22T10:01:00Z"),
			want: ActionRun, instant: "2026-11-22T10:10:00Z",
		},
		"disabled: nothing runs and nothing is scheduled": {
			now: "2026-11-22T10:10:00Z", disabled: true, record: rec(v1beta1.Submitted, "2026-11-22T10:01:00Z", "", "2026-11-22T10:01:00Z"),
			want: ActionNone,
		},
		"resumed: times passed while disabled are not caught up": {
			now: "2026-11-22T10:12:00Z", resumed: true, record: rec(v1beta1.Submitted, "2026-11-22T09:01:00Z", "", "2026-11-22T09:01:00Z"),
			want: ActionNone, next: "2026-11-22T10:20:00Z",
		},
		"changed schedule starts afresh": {
			now: "2026-11-22T10:12:00Z", record: func() *v1beta1.Condition {
				c := rec(v1beta1.Succeed, "2026-11-22T09:01:00Z", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z")
				c.Schedule = "0 0 * * * *"
				return c
			}(),
			want: ActionNone, next: "2026-11-22T10:20:00Z",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := decideInput{
				now: ts(tc.now), deadline: 5 * time.Minute, exclusions: tc.excl,
				enabled: !tc.disabled, resumed: tc.resumed,
				jobs: []jobInput{{job: v1beta1.Job{Name: "up", Schedule: every10, TargetSize: 3, RunOnce: tc.runOnce}, sched: sched, record: tc.record}},
			}
			if tc.firstSeen != "" {
				in.created, in.firstReconcile = ts(tc.firstSeen), true
			}
			got := decide(in)[0]
			if got.action != tc.want {
				t.Fatalf("action = %q, want %q", got.action, tc.want)
			}
			if tc.instant != "" && !got.instant.Equal(ts(tc.instant)) {
				t.Errorf("instant = %s, want %s", got.instant, tc.instant)
			}
			if tc.next == "" && !got.next.IsZero() {
				t.Errorf("next = %s, want none", got.next)
			}
			if tc.next != "" && !got.next.Equal(ts(tc.next)) {
				t.Errorf("next = %s, want %s", got.next, tc.next)
			}
		})
	}
}

func withRetry(c *v1beta1.Condition, instant string, attempts int32, next string) *v1beta1.Condition {
	c.Retry = &v1beta1.JobRetry{ScheduleTime: *mt(instant), Attempts: attempts, NextTime: *mt(next)}
	return c
}

func TestHPABounds(t *testing.T) {
	tests := map[string]struct {
		min, max, cur, target         int32
		wantMin, wantMax, wantScaleTo int32
	}{
		"above max raises max and floor, scales now":   {2, 10, 4, 15, 15, 15, 15},
		"above current raises the floor and scales":    {2, 10, 4, 6, 6, 10, 6},
		"below min lowers the floor":                   {5, 10, 5, 3, 3, 10, 0},
		"between min and current leaves the HPA alone": {2, 10, 6, 4, 2, 10, 0},
		"empty HPA status: current from /scale":        {1, 10, 1, 5, 5, 10, 5},
		"zero keeps a floor of one":                    {3, 10, 3, 0, 1, 10, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			gotMin, gotMax, scaleTo := hpaBounds(tc.min, tc.max, tc.cur, tc.target)
			if gotMin != tc.wantMin || gotMax != tc.wantMax || scaleTo != tc.wantScaleTo {
				t.Fatalf("hpaBounds(%d,%d,%d,%d) = (%d,%d,%d), want (%d,%d,%d)", tc.min, tc.max, tc.cur, tc.target,
					gotMin, gotMax, scaleTo, tc.wantMin, tc.wantMax, tc.wantScaleTo)
			}
			if gotMin > gotMax {
				t.Fatalf("min %d > max %d", gotMin, gotMax)
			}
		})
	}
}
