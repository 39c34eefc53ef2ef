package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// runResult is the outcome of one ActionRun.
type runResult struct {
	outcome scaleOutcome
	err     error
}

// jobRecords builds the per-job status records (the reference's status.conditions) from the
// decisions and the results of the runs. Records of removed jobs are dropped.
func jobRecords(obj *v1beta1.CronHorizontalPodAutoscaler, decisions []jobDecision, results map[string]runResult, now time.Time, deadline time.Duration) []v1beta1.Condition {
	old := make(map[string]v1beta1.Condition, len(obj.Status.Conditions))
	for _, c := range obj.Status.Conditions {
		old[c.Name] = c
	}
	enabled := obj.Spec.CronMode != v1beta1.CronModeDisable
	out := make([]v1beta1.Condition, 0, len(decisions))
	for i, d := range decisions {
		job := obj.Spec.Jobs[i]
		rec, ok := old[job.Name]
		if !ok || d.fresh {
			rec = v1beta1.Condition{JobID: string(uuid.NewUUID()), State: v1beta1.Submitted, LastProbeTime: metav1.NewTime(now)}
			rec.Message = fmt.Sprintf("cron hpa job %s is scheduled", job.Name)
		}
		rec.Name, rec.Schedule, rec.TargetSize, rec.RunOnce = job.Name, job.Schedule, job.TargetSize, job.RunOnce
		rec.SubmittedTime = timePtr(d.submitted)
		rec.NextScheduleTime = timePtr(d.next)
		if !enabled {
			rec.NextScheduleTime = nil
			rec.Message = "cronMode is Disable: the job does not run"
		}
		applyAction(&rec, d, results[job.Name], now, deadline)
		out = append(out, rec)
	}
	return out
}

func applyAction(rec *v1beta1.Condition, d jobDecision, res runResult, now time.Time, deadline time.Duration) {
	instant := d.instant.UTC().Format(time.RFC3339)
	switch d.action {
	case ActionNone:
		if !d.waiting {
			rec.Retry = nil // a retry of a time that is no longer due (schedule changed, disabled)
		}
		return
	case ActionRun:
		if res.err != nil {
			// The time stays due and is retried on its own backoff until the starting
			// deadline; then GiveUp.
			rec.Retry = nextRetry(rec.Retry, d.instant, now, deadline)
			rec.State = v1beta1.Failed
			rec.Message = fmt.Sprintf("cron hpa job %s failed for %s (attempt %d), retrying at %s: %v", d.name, instant,
				rec.Retry.Attempts, rec.Retry.NextTime.UTC().Format(time.RFC3339), res.err)
			rec.LastProbeTime = metav1.NewTime(now)
			return
		}
		rec.State = v1beta1.Succeed
		rec.Message = fmt.Sprintf("cron hpa job %s executed successfully. %s", d.name, res.outcome.message)
	case ActionSkip:
		rec.State = v1beta1.Skipped
		rec.Message = fmt.Sprintf("cron hpa job %s skipped %s: the date is excluded", d.name, instant)
	case ActionMiss:
		rec.State = v1beta1.Missed
		rec.Message = fmt.Sprintf("cron hpa job %s missed %s: older than the starting deadline when the controller could act", d.name, instant)
	case ActionGiveUp:
		rec.State = v1beta1.Failed
		rec.Message = fmt.Sprintf("cron hpa job %s gave up on %s after the starting deadline; last error: %s", d.name, instant, rec.Message)
	}
	rec.LastScheduleTime = timePtr(d.instant)
	rec.LastProbeTime = metav1.NewTime(now)
	rec.Retry = nil
}

// nextRetry counts one more failed attempt at instant and schedules the next, at the latest
// at the starting deadline (the last attempt).
func nextRetry(prev *v1beta1.JobRetry, instant, now time.Time, deadline time.Duration) *v1beta1.JobRetry {
	attempts := int32(1)
	if prev != nil && prev.ScheduleTime.Time.Equal(instant) {
		attempts = prev.Attempts + 1
	}
	next := now.Add(retryBackoff(attempts))
	if last := instant.Add(deadline); next.After(last) && now.Before(last) {
		next = last
	}
	return &v1beta1.JobRetry{ScheduleTime: metav1.NewTime(instant), Attempts: attempts, NextTime: metav1.NewTime(next)}
}

// summarize fills the object-level times from the job records.
func summarize(status *v1beta1.CronHorizontalPodAutoscalerStatus) {
	status.LastScheduleTime, status.NextScheduleTime = nil, nil
	for _, r := range status.Conditions {
		if r.LastScheduleTime != nil && (status.LastScheduleTime == nil || r.LastScheduleTime.After(status.LastScheduleTime.Time)) {
			status.LastScheduleTime = r.LastScheduleTime.DeepCopy()
		}
		if r.NextScheduleTime != nil && (status.NextScheduleTime == nil || r.NextScheduleTime.Before(status.NextScheduleTime)) {
			status.NextScheduleTime = r.NextScheduleTime.DeepCopy()
		}
	}
}

// setCondition sets an object condition with the object's generation.
func setCondition(obj *v1beta1.CronHorizontalPodAutoscaler, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&obj.Status.ObjectConditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: obj.Generation,
	})
}

func timePtr(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}
