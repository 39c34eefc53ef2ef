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

// want is what a job record must show after a decision.
type want struct {
	state v1beta1.JobState
	// handled is the recorded lastScheduleTime ("" for none).
	handled string
	// retries and nextRetry describe the retry entry (0 attempts: no entry).
	retries   int32
	nextRetry time.Time
	// message holds substrings of the message.
	message []string
}

func (w want) check(t *testing.T, r v1beta1.Condition) {
	t.Helper()
	if r.State != w.state {
		t.Errorf("state %s, want %s", r.State, w.state)
	}
	switch {
	case w.handled == "" && r.LastScheduleTime != nil:
		t.Errorf("lastScheduleTime %s, want none", r.LastScheduleTime)
	case w.handled != "" && (r.LastScheduleTime == nil || !r.LastScheduleTime.Time.Equal(ts(w.handled))):
		t.Errorf("lastScheduleTime %v, want %s", r.LastScheduleTime, w.handled)
	}
	switch {
	case w.retries == 0 && r.Retry != nil:
		t.Errorf("retry %+v, want none", r.Retry)
	case w.retries != 0 && (r.Retry == nil || r.Retry.Attempts != w.retries || !r.Retry.NextTime.Time.Equal(w.nextRetry)):
		t.Errorf("retry %+v, want attempt %d next at %s", r.Retry, w.retries, w.nextRetry)
	}
	for _, m := range w.message {
		if !strings.Contains(r.Message, m) {
			t.Errorf("message %q lacks %q", r.Message, m)
		}
	}
}

// The job records written after each kind of decision.
func TestJobRecords(t *testing.T) {
	const deadline = time.Minute
	now := ts("2026-11-22T10:30:05Z")
	instant := ts("2026-11-22T10:30:00Z")
	next := ts("2026-11-22T10:40:00Z")
	const previous = "2026-11-22T10:20:00Z"
	prior := v1beta1.Condition{
		Name: "up", JobID: "id-1", Schedule: "0 */10 * * * *", TargetSize: 3, State: v1beta1.Succeed,
		SubmittedTime: mt("2026-11-22T09:00:00Z"), LastScheduleTime: mt(previous), LastProbeTime: *mt(previous),
	}
	failing := prior
	failing.State = v1beta1.Failed
	failing.Retry = &v1beta1.JobRetry{ScheduleTime: metav1.NewTime(instant), Attempts: 2, NextTime: *mt("2026-11-22T10:30:04Z")}
	nearDeadline := failing
	nearDeadline.Retry = &v1beta1.JobRetry{ScheduleTime: *mt("2026-11-22T10:29:20Z"), Attempts: 9, NextTime: *mt("2026-11-22T10:30:05Z")}
	scaleErr := runResult{err: errors.New("deployments.apps \"shop\" not found")}
	run := jobDecision{action: ActionRun, instant: instant, next: next}
	tests := map[string]struct {
		prior    v1beta1.Condition
		decision jobDecision
		result   runResult
		want     want
	}{
		"success records the time and clears any retry": {
			prior: failing, decision: run, result: runResult{outcome: scaleOutcome{message: "current replicas:1, desired replicas:3"}},
			want: want{state: v1beta1.Succeed, handled: "2026-11-22T10:30:00Z", message: []string{"desired replicas:3"}},
		},
		"first failure schedules a retry in a second and leaves the time unhandled": {
			prior: prior, decision: run, result: scaleErr,
			want: want{state: v1beta1.Failed, handled: previous, retries: 1, nextRetry: now.Add(time.Second), message: []string{"not found", "attempt 1"}},
		},
		"further failures back off": {
			prior: failing, decision: run, result: scaleErr,
			want: want{state: v1beta1.Failed, handled: previous, retries: 3, nextRetry: now.Add(4 * time.Second)},
		},
		"the last retry is at the deadline": {
			// 30 s after now would be past the deadline (10:30:20): the last try is at it.
			prior: nearDeadline, decision: jobDecision{action: ActionRun, instant: ts("2026-11-22T10:29:20Z"), next: next}, result: scaleErr,
			want: want{state: v1beta1.Failed, handled: previous, retries: 10, nextRetry: ts("2026-11-22T10:30:20Z")},
		},
		"waiting for a retry changes nothing": {
			prior: failing, decision: jobDecision{action: ActionNone, instant: instant, next: next, waiting: true},
			want: want{state: v1beta1.Failed, handled: previous, retries: 2, nextRetry: ts("2026-11-22T10:30:04Z")},
		},
		"giving up records the time as failed and ends the retries": {
			prior: failing, decision: jobDecision{action: ActionGiveUp, instant: instant, next: next},
			want: want{state: v1beta1.Failed, handled: "2026-11-22T10:30:00Z", message: []string{"gave up"}},
		},
		"a miss is recorded": {
			prior: prior, decision: jobDecision{action: ActionMiss, instant: instant, next: next},
			want: want{state: v1beta1.Missed, handled: "2026-11-22T10:30:00Z"},
		},
		"a changed schedule starts a new record": {
			prior: prior, decision: jobDecision{action: ActionNone, next: next, fresh: true, submitted: now},
			want: want{state: v1beta1.Submitted, message: []string{"is scheduled"}},
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
			tc.want.check(t, got[0])
			if tc.decision.fresh && (got[0].JobID == "id-1" || !got[0].SubmittedTime.Time.Equal(now) || !got[0].NextScheduleTime.Time.Equal(next)) {
				t.Errorf("fresh record %+v: want a new job id, submitted now, next at %s", got[0], next)
			}
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
