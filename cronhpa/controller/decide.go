package controller

import (
	"time"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/cronhpa/schedule"
)

// Action is what one job must do in this reconcile.
type Action string

const (
	// ActionNone means nothing is due.
	ActionNone Action = ""
	// ActionRun means scale the target for the scheduled time.
	ActionRun Action = "Run"
	// ActionMiss means the scheduled time is older than the starting deadline and was never tried.
	ActionMiss Action = "Miss"
	// ActionSkip means the scheduled time falls on an excluded date.
	ActionSkip Action = "Skip"
	// ActionGiveUp means the scheduled time was tried and failed until the deadline passed.
	ActionGiveUp Action = "GiveUp"
)

// jobInput is one job with its parsed schedule and its status record (nil when new).
type jobInput struct {
	job    v1beta1.Job
	sched  schedule.Schedule
	record *v1beta1.Condition
}

// decideInput is everything a decision needs; gathering it is the reconciler's job.
type decideInput struct {
	now        time.Time
	deadline   time.Duration
	exclusions *schedule.Exclusions
	// enabled is spec.cronMode != Disable; resumed is true when status says it was disabled,
	// so that times passed while disabled are not caught up.
	enabled, resumed bool
	// created is the object's creation time. On the object's first reconcile (no job has a
	// record yet) it bounds the past instead of now, so that a time that came due while the
	// controller was down between creation and first sight still runs (within the deadline).
	created        time.Time
	firstReconcile bool
	jobs           []jobInput
}

// jobDecision is the decision for one job.
type jobDecision struct {
	name   string
	action Action
	// instant is the scheduled time the action is for.
	instant time.Time
	// next is the job's next activation after now; zero when it will not run again.
	next time.Time
	// submitted is the job incarnation's start: scheduled times before it never run. It is
	// now for a new job, a changed schedule or a resumed object.
	submitted time.Time
	// fresh means the status record must be (re)created: new job or changed schedule.
	fresh bool
	// waiting means instant failed before and its next retry is not due yet.
	waiting bool
}

// decide computes, for every job, what to do now and when it next runs. It is pure.
func decide(in decideInput) []jobDecision {
	out := make([]jobDecision, 0, len(in.jobs))
	for _, j := range in.jobs {
		out = append(out, decideJob(in, j))
	}
	return out
}

func decideJob(in decideInput, j jobInput) jobDecision {
	rec := j.record
	d := jobDecision{name: j.job.Name, fresh: rec == nil || rec.Schedule != j.job.Schedule}
	d.submitted = submittedTime(in, rec, d.fresh)
	if !in.enabled {
		return d
	}
	var last time.Time
	if !d.fresh && rec.LastScheduleTime != nil {
		last = rec.LastScheduleTime.Time
	}
	if !d.fresh && j.job.RunOnce && !last.IsZero() {
		return d // ran once (or was missed, skipped or given up): finished.
	}
	lower := d.submitted
	if last.After(lower) {
		lower = last
	}
	d.next = j.sched.Next(in.now)
	d.instant = schedule.MostRecent(j.sched, lower, in.now)
	if d.instant.IsZero() {
		return d
	}
	if j.job.RunOnce {
		d.next = time.Time{} // the due instant is its one run.
	}
	d.action = classify(in, rec, d)
	if d.action == ActionRun && retryPending(rec, d.instant, in.now) {
		d.action, d.waiting = ActionNone, true
	}
	return d
}

// retryPending says whether instant failed before and its next retry is still to come.
func retryPending(rec *v1beta1.Condition, instant, now time.Time) bool {
	return rec != nil && rec.Retry != nil && rec.Retry.ScheduleTime.Time.Equal(instant) && now.Before(rec.Retry.NextTime.Time)
}

// submittedTime is when the job's incarnation starts counting scheduled times.
func submittedTime(in decideInput, rec *v1beta1.Condition, fresh bool) time.Time {
	switch {
	case in.firstReconcile && !in.created.IsZero() && in.created.Before(in.now):
		// creationTimestamp is truncated to the second: a time in that second counts.
		return in.created.Add(-time.Nanosecond)
	case fresh || in.resumed || rec.SubmittedTime == nil:
		return in.now
	default:
		return rec.SubmittedTime.Time
	}
}

// classify picks the action for a due instant: skip an excluded day, run inside the starting
// deadline, and past it give up (if it was tried and failed) or record a miss.
func classify(in decideInput, rec *v1beta1.Condition, d jobDecision) Action {
	switch {
	case in.exclusions.Excludes(d.instant):
		return ActionSkip
	case in.now.Sub(d.instant) <= in.deadline:
		return ActionRun
	case !d.fresh && rec.State == v1beta1.Failed && !rec.LastProbeTime.Time.Before(d.instant):
		return ActionGiveUp
	default:
		return ActionMiss
	}
}

// Retry backoff of a failing scheduled time: doubling from RetryBase up to RetryMax, and never
// past the time's starting deadline.
const (
	RetryBase = time.Second
	RetryMax  = 30 * time.Second
)

// retryBackoff is the pause after the given number of failed attempts (1 or more).
func retryBackoff(attempts int32) time.Duration {
	d := RetryBase
	for i := int32(1); i < attempts && d < RetryMax; i++ {
		d *= 2
	}
	return min(d, RetryMax)
}

// nextWake is the earliest time any job of the object needs attention, from its final job
// records: a job's next activation, the next retry of a failing time, and the moment that
// time's starting deadline passes (to record the give-up). Zero when nothing is scheduled.
func nextWake(records []v1beta1.Condition, deadline time.Duration) time.Time {
	var earliest time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	for _, r := range records {
		if r.NextScheduleTime != nil {
			consider(r.NextScheduleTime.Time)
		}
		if r.Retry != nil {
			consider(r.Retry.NextTime.Time)
			consider(r.Retry.ScheduleTime.Add(deadline + time.Millisecond))
		}
	}
	return earliest
}
