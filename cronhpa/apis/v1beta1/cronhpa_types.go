package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CronMode turns an object's schedules on or off (the reference's field, kept as is).
// +kubebuilder:validation:Enum=Enable;Disable
type CronMode string

const (
	// CronModeEnable runs the jobs on schedule (the default).
	CronModeEnable CronMode = "Enable"
	// CronModeDisable suspends the object: no job runs and missed times are not caught up
	// when it is enabled again.
	CronModeDisable CronMode = "Disable"
)

// CronHorizontalPodAutoscalerSpec is the desired schedule of replica counts for one target.
type CronHorizontalPodAutoscalerSpec struct {
	// ScaleTargetRef is the workload to scale: any kind with a scale subresource, or a
	// HorizontalPodAutoscaler, whose floor and ceiling are adjusted instead.
	ScaleTargetRef ScaleTargetRef `json:"scaleTargetRef"`

	// ExcludeDates are cron expressions (six fields, seconds first, e.g. "* * * 15 11 *" for
	// every 15 November); a job does not run on a calendar day, in the object's time zone,
	// that any of them matches.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=256
	ExcludeDates []string `json:"excludeDates,omitempty"`

	// Jobs are the scheduled replica counts. Names are unique within the object.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	Jobs []Job `json:"jobs"`

	// CronMode Disable suspends every job of the object.
	// +optional
	// +kubebuilder:default=Enable
	CronMode CronMode `json:"cronMode,omitempty"`

	// TimeZone is the IANA time zone (e.g. "Asia/Shanghai") that schedules, @date and
	// excludeDates are read in. Defaults to the controller's --default-timezone.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone *string `json:"timezone,omitempty"`

	// StartingDeadlineSeconds is how late a run may still start, after downtime or a restart.
	// A scheduled time older than this is recorded as Missed and not acted on. Defaults to the
	// controller's --starting-deadline (5 minutes).
	// +optional
	// +kubebuilder:validation:Minimum=0
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`
}

// ScaleTargetRef names the object to scale. The API version's group selects the kind; its
// version may be an old one (apps/v1beta2): the target is resolved by group and kind.
// +kubebuilder:validation:XValidation:rule="self.apiVersion.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?$')",message="apiVersion must be group/version (e.g. apps/v1), or v1 for the core group"
type ScaleTargetRef struct {
	// APIVersion of the target, "group/version" ("v1" for the core group).
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// Kind of the target, e.g. Deployment, StatefulSet or HorizontalPodAutoscaler.
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the target in the object's namespace (a cluster-scoped kind, such as a Karpenter
	// NodePool whose /scale sets its static node count, is named without one).
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// Job sets the target's replicas to TargetSize at each time of Schedule.
type Job struct {
	// Name identifies the job within the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Schedule is a cron expression with six fields (seconds first) or five, a descriptor
	// (@hourly, @daily, @every 1m30s) or a one-shot "@date 2026-11-11 00:00:00".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Schedule string `json:"schedule"`
	// TargetSize is the replica count to set.
	// +kubebuilder:validation:Minimum=0
	TargetSize int32 `json:"targetSize"`
	// RunOnce ends the job after its first run. A @date job runs once by nature.
	// +optional
	RunOnce bool `json:"runOnce,omitempty"`
}

// CronHorizontalPodAutoscaler scales a workload, or moves an HPA's floor, on a schedule.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cronhpa,categories=lockstep
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.scaleTargetRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.objectConditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Next Run",type=date,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Last Run",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CronHorizontalPodAutoscaler struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CronHorizontalPodAutoscalerSpec   `json:"spec,omitempty"`
	Status CronHorizontalPodAutoscalerStatus `json:"status,omitempty"`
}

// CronHorizontalPodAutoscalerList is a list of CronHorizontalPodAutoscaler.
//
// +kubebuilder:object:root=true
type CronHorizontalPodAutoscalerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CronHorizontalPodAutoscaler `json:"items"`
}
