package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobState is the outcome of a job's latest scheduled time.
type JobState string

const (
	// Submitted means the job is scheduled and has not run yet (the reference's state).
	Submitted JobState = "Submitted"
	// Succeed means the latest run scaled the target (the reference's spelling).
	Succeed JobState = "Succeed"
	// Failed means the latest attempt failed: it is retried while the record's retry is set,
	// and was given up when it is not; the message says why.
	Failed JobState = "Failed"
	// Missed means the latest scheduled time passed while the controller could not act and is older
	// than the starting deadline, so it was not run (Lockstep addition).
	Missed JobState = "Missed"
	// Skipped means the latest scheduled time fell on an excluded date (Lockstep addition).
	Skipped JobState = "Skipped"
)

// Condition is the reference's per-job status record (kept under status.conditions for
// compatibility; object-level conditions are in status.objectConditions).
type Condition struct {
	// Name of the job.
	Name string `json:"name"`
	// JobId identifies this incarnation of the job; it changes when the job's schedule changes.
	JobID string `json:"jobId"`
	// Schedule the job ran with.
	Schedule string `json:"schedule"`
	// TargetSize the job scales to.
	TargetSize int32 `json:"targetSize"`
	// RunOnce as in the job spec.
	RunOnce bool `json:"runOnce"`
	// State of the latest scheduled time.
	State JobState `json:"state"`
	// LastProbeTime is when the state was last written.
	LastProbeTime metav1.Time `json:"lastProbeTime"`
	// Message explains the state.
	// +optional
	Message string `json:"message"`
	// SubmittedTime is when this incarnation of the job was scheduled (created, schedule
	// changed, or re-enabled): scheduled times before it are never run.
	// +optional
	SubmittedTime *metav1.Time `json:"submittedTime,omitempty"`
	// LastScheduleTime is the latest scheduled time the controller handled (ran, missed or
	// skipped). A time is never handled twice.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is the next time the job will run; absent when it will not run again.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// Retry is set while a scheduled time that failed is being retried (Lockstep addition):
	// the time stays due until it succeeds or its starting deadline passes.
	// +optional
	Retry *JobRetry `json:"retry,omitempty"`
}

// JobRetry records the retries of one failing scheduled time. It lives in status, so that a
// restarted controller or a new leader keeps the same schedule of retries.
type JobRetry struct {
	// ScheduleTime is the scheduled time being retried.
	ScheduleTime metav1.Time `json:"scheduleTime"`
	// Attempts is how many times it has failed.
	Attempts int32 `json:"attempts"`
	// NextTime is when it is tried again.
	NextTime metav1.Time `json:"nextTime"`
}

// CronHorizontalPodAutoscalerStatus is the observed state of a CronHorizontalPodAutoscaler.
type CronHorizontalPodAutoscalerStatus struct {
	// ScaleTargetRef is the target the jobs act on.
	// +optional
	ScaleTargetRef ScaleTargetRef `json:"scaleTargetRef,omitzero"`
	// ExcludeDates in effect.
	// +optional
	ExcludeDates []string `json:"excludeDates,omitempty"`
	// CronMode in effect.
	// +optional
	CronMode CronMode `json:"cronMode,omitempty"`
	// Conditions holds one record per job (the reference's layout).
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ObjectConditions are the object's conditions: Ready, and TargetControlledByHPA when an
	// HPA also scales the target and will undo scheduled changes.
	// +optional
	// +listType=map
	// +listMapKey=type
	ObjectConditions []metav1.Condition `json:"objectConditions,omitempty"`
	// LastScheduleTime is the latest scheduled time any job handled.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is the earliest upcoming run of any job.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
}

// Object condition types and reasons.
const (
	// ConditionReady is True when the spec is valid and the target resolves.
	ConditionReady = "Ready"
	// ConditionTargetControlledByHPA is True when an HPA scales the same target.
	ConditionTargetControlledByHPA = "TargetControlledByHPA"

	// ReasonInvalidSpec: the spec cannot be run (bad schedule, time zone, target reference).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonTargetNotFound: the target's kind or object cannot be resolved.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonScheduled: every job is scheduled.
	ReasonScheduled = "Scheduled"
	// ReasonDisabled: cronMode is Disable.
	ReasonDisabled = "Disabled"
)
