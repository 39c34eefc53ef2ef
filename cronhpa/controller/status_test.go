package controller

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

func TestRetryBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := retryBackoff(int32(i + 1)); got != w {
			t.Errorf("attempt %d: backoff %s, want %s", i+1, got, w)
		}
	}
	if got := retryBackoff(1000); got != RetryMax {
		t.Errorf("attempt 1000: backoff %s, want the cap %s", got, RetryMax)
	}
}

// The job records written after each kind of decision.
func TestJobRecords(t *testing.T) {
	const deadline = time.Minute
	now := ts("2026-11-22T10:30:05Z")
	instant := ts("2026-11-22T10:30:00Z")
	next := ts("2026-11-22T10:40:00Z")
	prior := v1beta1.Condition{
		Name: "up", JobID: "id-1", Schedule: "0 */10 * * * *", TargetSize: 3, State: v1beta1.Succeed,
		SubmittedTime: mt("2026-11-22T09:00:00Z"), LastScheduleTime: mt("2026-11-22T10:20:00Z"), LastProbeTime: *mt("2026-11-22T10:20:00Z"),
	}
	failing := prior
	failing.State = v1beta1.Failed
	failing.Retry = &v1beta1.JobRetry{ScheduleTime: metav1.NewTime(instant), Attempts: 2, NextTime: *mt("2026-11-22T10:30:04Z")}
	scaleErr := errors.New("deployments.apps \"shop\" not found")
	tests := map[string]struct {
		prior    v1beta1.Condition
		decision jobDecision
		result   runResult
		check    func(t *testing.T, r v1beta1.Condition)
	}{
		"success records the time and clears any retry": {
			prior: failing, decision: jobDecision{action: ActionRun, instant: instant, next: next},
			result: runResult{outcome: scaleOutcome{message: "current replicas:1, desired replicas:3"}},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.State != v1beta1.Succeed || !r.LastScheduleTime.Time.Equal(instant) || r.Retry != nil {
					t.Errorf("record %+v", r)
				}
				if !strings.Contains(r.Message, "desired replicas:3") {
					t.Errorf("message %q", r.Message)
				}
			},
		},
		"first failure schedules a retry in a second and leaves the time unhandled": {
			prior: prior, decision: jobDecision{action: ActionRun, instant: instant, next: next}, result: runResult{err: scaleErr},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.State != v1beta1.Failed || !r.LastScheduleTime.Time.Equal(ts("2026-11-22T10:20:00Z")) {
					t.Errorf("record %+v", r)
				}
				if r.Retry == nil || r.Retry.Attempts != 1 || !r.Retry.ScheduleTime.Time.Equal(instant) || !r.Retry.NextTime.Time.Equal(now.Add(time.Second)) {
					t.Errorf("retry %+v", r.Retry)
				}
				if !strings.Contains(r.Message, "not found") || !strings.Contains(r.Message, "attempt 1") {
					t.Errorf("message %q", r.Message)
				}
			},
		},
		"further failures back off": {
			prior: failing, decision: jobDecision{action: ActionRun, instant: instant, next: next}, result: runResult{err: scaleErr},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.Retry == nil || r.Retry.Attempts != 3 || !r.Retry.NextTime.Time.Equal(now.Add(4*time.Second)) {
					t.Errorf("retry %+v", r.Retry)
				}
			},
		},
		"the last retry is at the deadline": {
			prior: func() v1beta1.Condition {
				c := failing
				c.Retry = &v1beta1.JobRetry{ScheduleTime: *mt("2026-11-22T10:29:20Z"), Attempts: 9, NextTime: *mt("2026-11-22T10:30:05Z")}
				return c
			}(),
			decision: jobDecision{action: ActionRun, instant: ts("2026-11-22T10:29:20Z"), next: next}, result: runResult{err: scaleErr},
			check: func(t *testing.T, r v1beta1.Condition) {
				// 30 s after now would be past the deadline (10:30:20): the last try is at it.
				if r.Retry == nil || r.Retry.Attempts != 10 || !r.Retry.NextTime.Time.Equal(ts("2026-11-22T10:30:20Z")) {
					t.Errorf("retry %+v, want the next at the deadline", r.Retry)
				}
			},
		},
		"waiting for a retry changes nothing": {
			prior: failing, decision: jobDecision{action: ActionNone, instant: instant, next: next, waiting: true},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.Retry == nil || r.Retry.Attempts != 2 || r.State != v1beta1.Failed {
					t.Errorf("record %+v", r)
				}
			},
		},
		"giving up records the time as failed and ends the retries": {
			prior: failing, decision: jobDecision{action: ActionGiveUp, instant: instant, next: next},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.State != v1beta1.Failed || !r.LastScheduleTime.Time.Equal(instant) || r.Retry != nil || !strings.Contains(r.Message, "gave up") {
					t.Errorf("record %+v", r)
				}
			},
		},
		"a miss is recorded": {
			prior: prior, decision: jobDecision{action: ActionMiss, instant: instant, next: next},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.State != v1beta1.Missed || !r.LastScheduleTime.Time.Equal(instant) {
					t.Errorf("record %+v", r)
				}
			},
		},
		"a changed schedule starts a new record": {
			prior: prior, decision: jobDecision{action: ActionNone, next: next, fresh: true, submitted: now},
			check: func(t *testing.T, r v1beta1.Condition) {
				if r.JobID == "id-1" || r.State != v1beta1.Submitted || !r.SubmittedTime.Time.Equal(now) || !r.NextScheduleTime.Time.Equal(next) {
					t.Errorf("record %+v", r)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := &v1beta1.CronHorizontalPodAutoscaler{
				Spec:   v1beta1.CronHorizontalPodAutoscalerSpec{Jobs: []v1beta1.Job{{Name: "up", Schedule: "0 */10 * * * *", TargetSize: 3}}},
				Status: v1beta1.CronHorizontalPodAutoscalerStatus{Conditions: []v1beta1.Condition{*tc.prior.DeepCopy(), {Name: "removed", JobID: "id-2"}}},
			}
			tc.decision.name = "up"
			if tc.decision.submitted.IsZero() {
				tc.decision.submitted = tc.prior.SubmittedTime.Time
			}
			got := jobRecords(obj, []jobDecision{tc.decision}, map[string]runResult{"up": tc.result}, now, deadline)
			if len(got) != 1 || got[0].Name != "up" {
				t.Fatalf("records %+v: want one for job up (the removed job's record dropped)", got)
			}
			tc.check(t, got[0])
		})
	}
}

func TestSummarize(t *testing.T) {
	st := v1beta1.CronHorizontalPodAutoscalerStatus{
		LastScheduleTime: mt("2020-01-01T00:00:00Z"),
		Conditions: []v1beta1.Condition{
			{Name: "a", LastScheduleTime: mt("2026-11-22T10:00:00Z"), NextScheduleTime: mt("2026-11-22T12:00:00Z")},
			{Name: "b", LastScheduleTime: mt("2026-11-22T11:00:00Z"), NextScheduleTime: mt("2026-11-22T11:30:00Z")},
			{Name: "c"},
		},
	}
	summarize(&st)
	if !st.LastScheduleTime.Time.Equal(ts("2026-11-22T11:00:00Z")) || !st.NextScheduleTime.Time.Equal(ts("2026-11-22T11:30:00Z")) {
		t.Fatalf("last %v next %v", st.LastScheduleTime, st.NextScheduleTime)
	}
	st = v1beta1.CronHorizontalPodAutoscalerStatus{Conditions: []v1beta1.Condition{{Name: "done"}}, NextScheduleTime: mt("2026-11-22T11:30:00Z")}
	summarize(&st)
	if st.LastScheduleTime != nil || st.NextScheduleTime != nil {
		t.Fatalf("nothing handled or scheduled: last %v next %v", st.LastScheduleTime, st.NextScheduleTime)
	}
}

// The object wakes for the earliest of its jobs' activations, retries and give-ups: a failing
// job never hides a sibling's activation.
func TestNextWake(t *testing.T) {
	const deadline = time.Minute
	retry := func(instant, next string) *v1beta1.JobRetry {
		return &v1beta1.JobRetry{ScheduleTime: *mt(instant), Attempts: 1, NextTime: *mt(next)}
	}
	tests := map[string]struct {
		records []v1beta1.Condition
		want    string
	}{
		"nothing scheduled": {records: []v1beta1.Condition{{Name: "a"}}},
		"earliest activation": {records: []v1beta1.Condition{
			{Name: "a", NextScheduleTime: mt("2026-11-22T12:00:00Z")},
			{Name: "b", NextScheduleTime: mt("2026-11-22T11:00:00Z")},
		}, want: "2026-11-22T11:00:00Z"},
		"a retry before any activation": {records: []v1beta1.Condition{
			{Name: "a", NextScheduleTime: mt("2026-11-22T11:00:00Z"), Retry: retry("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z")},
		}, want: "2026-11-22T10:00:30Z"},
		"a sibling's activation before a failing job's retry": {records: []v1beta1.Condition{
			{Name: "failing", NextScheduleTime: mt("2026-11-22T11:00:00Z"), Retry: retry("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z")},
			{Name: "due", NextScheduleTime: mt("2026-11-22T10:00:10Z")},
		}, want: "2026-11-22T10:00:10Z"},
		"the give-up when the retry would come after the deadline": {records: []v1beta1.Condition{
			{Name: "a", Retry: retry("2026-11-22T10:00:00Z", "2026-11-22T10:05:00Z")},
		}, want: "2026-11-22T10:01:00.001Z"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := nextWake(tc.records, deadline)
			if tc.want == "" {
				if !got.IsZero() {
					t.Fatalf("wake at %s, want none", got)
				}
				return
			}
			want, err := time.Parse(time.RFC3339Nano, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Fatalf("wake at %s, want %s", got, want)
			}
		})
	}
}

func TestBoundsPatch(t *testing.T) {
	type op struct {
		Op, Path string
		Value    int32
	}
	tests := map[string]struct {
		oldMin *int32
		want   []op
	}{
		"minReplicas set: both tested, both replaced": {oldMin: ptr.To[int32](2), want: []op{
			{"test", "/spec/maxReplicas", 10}, {"test", "/spec/minReplicas", 2}, {"replace", "/spec/maxReplicas", 12}, {"replace", "/spec/minReplicas", 6},
		}},
		"minReplicas absent: added": {want: []op{
			{"test", "/spec/maxReplicas", 10}, {"replace", "/spec/maxReplicas", 12}, {"add", "/spec/minReplicas", 6},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := boundsPatch(tc.oldMin, 10, 6, 12)
			if err != nil {
				t.Fatal(err)
			}
			var got []op
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("patch %s", b)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("patch %s: op %d is %+v, want %+v", b, i, got[i], tc.want[i])
				}
			}
		})
	}
}
