package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// Reconciler runs the jobs of CronHorizontalPodAutoscalers. Every object has at most one
// pending wake-up, at the earliest of its jobs' next activations, retries and deadlines, in the
// Alarm: one timer heap for all objects, no goroutine or cron engine per job.
type Reconciler struct {
	Client   client.Client
	Scaler   *Scaler
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	Metrics  *Metrics
	// DefaultLocation applies to objects without spec.timezone.
	DefaultLocation *time.Location
	// DefaultDeadline applies to objects without spec.startingDeadlineSeconds.
	DefaultDeadline time.Duration
	// Alarm wakes objects when a job needs attention, with FirePriority.
	Alarm *Alarm

	// handled remembers the job records of recent reconciles until the cache shows them.
	handled memo
}

// +kubebuilder:rbac:groups=autoscaling.alibabacloud.com,resources=cronhorizontalpodautoscalers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=autoscaling.alibabacloud.com,resources=cronhorizontalpodautoscalers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=*,resources=*/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch

// SetupWithManager registers the reconciler with mgr.
// Tests that restart the controller in one process set skipNameValidation.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int, skipNameValidation bool) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1beta1.CronHorizontalPodAutoscaler{}).
		Named("cronhpa").
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			SkipNameValidation:      &skipNameValidation,
			// The Alarm's FirePriority only orders work in controller-runtime's priority queue;
			// ask for it rather than depend on the default.
			UsePriorityQueue: ptr.To(true),
		}).
		WatchesRawSource(r.Alarm).
		Complete(r)
}

// Reconcile handles one object: gather, decide, act, then patch status once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var obj v1beta1.CronHorizontalPodAutoscaler
	if err := r.Client.Get(ctx, req.NamespacedName, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.Alarm.Clear(req.NamespacedName)
			r.handled.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading %s: %w", req, err)
	}
	before := obj.DeepCopy()
	now := r.Clock.Now()

	compiled, verrs := obj.Compile(r.DefaultLocation)
	if len(verrs) > 0 {
		msg := verrs.ToAggregate().Error()
		// One event per distinct problem, not one per reconcile.
		if prev := meta.FindStatusCondition(obj.Status.ObjectConditions, v1beta1.ConditionReady); prev == nil || prev.Reason != v1beta1.ReasonInvalidSpec || prev.Message != msg {
			r.Recorder.Eventf(&obj, nil, corev1.EventTypeWarning, v1beta1.ReasonInvalidSpec, "Validate", "nothing will be scaled: %s", msg)
		}
		setCondition(&obj, v1beta1.ConditionReady, metav1.ConditionFalse, v1beta1.ReasonInvalidSpec, msg)
		obj.Status.ObservedGeneration = obj.Generation
		r.Alarm.Clear(req.NamespacedName)
		return r.writeStatus(ctx, before, &obj)
	}

	// Records this controller wrote that the cache does not show yet count as written: a
	// scheduled time is not run again because our own status write is still on its way.
	obj.Status.Conditions = r.handled.overlay(req.NamespacedName, obj.UID, obj.Status.Conditions)
	in := r.gather(&obj, compiled, now)
	decisions := decide(in)
	results := r.act(ctx, &obj, decisions)

	obj.Status.Conditions = jobRecords(&obj, decisions, results, now, in.deadline)
	obj.Status.ScaleTargetRef = obj.Spec.ScaleTargetRef
	obj.Status.ExcludeDates = obj.Spec.ExcludeDates
	obj.Status.CronMode = obj.Spec.CronMode
	obj.Status.ObservedGeneration = obj.Generation
	summarize(&obj.Status)
	r.setReadiness(ctx, &obj)
	// Every change of the records is remembered, not only runs: the first write's records
	// (job incarnations) matter as much as a handled time to a reconcile on a stale cache.
	if equality.Semantic.DeepEqual(before.Status.Conditions, obj.Status.Conditions) {
		r.handled.forget(req.NamespacedName)
	} else {
		r.handled.remember(req.NamespacedName, obj.UID, obj.Status.Conditions)
	}

	// The wake-up is armed before the status write, whatever its outcome: a failing job (or
	// a failing write) never holds back its siblings' activations or its own retries.
	if wake := nextWake(obj.Status.Conditions, in.deadline); !wake.IsZero() {
		logger.V(1).Info("Scheduled", "cronhpa", klog.KObj(&obj), "wakeAt", wake)
		r.Alarm.Set(req.NamespacedName, wake)
	} else {
		r.Alarm.Clear(req.NamespacedName)
	}
	return r.writeStatus(ctx, before, &obj)
}

func (r *Reconciler) gather(obj *v1beta1.CronHorizontalPodAutoscaler, compiled *v1beta1.Compiled, now time.Time) decideInput {
	deadline := r.DefaultDeadline
	if obj.Spec.StartingDeadlineSeconds != nil {
		deadline = time.Duration(*obj.Spec.StartingDeadlineSeconds) * time.Second
	}
	records := make(map[string]*v1beta1.Condition, len(obj.Status.Conditions))
	for i := range obj.Status.Conditions {
		records[obj.Status.Conditions[i].Name] = &obj.Status.Conditions[i]
	}
	in := decideInput{
		now:        now,
		deadline:   deadline,
		exclusions: compiled.Exclusions,
		enabled:    obj.Spec.CronMode != v1beta1.CronModeDisable,
		resumed:    obj.Status.CronMode == v1beta1.CronModeDisable && obj.Spec.CronMode != v1beta1.CronModeDisable,
		created:    obj.CreationTimestamp.Time,
		// The first reconcile writes a record per job; until then none exists.
		firstReconcile: len(obj.Status.Conditions) == 0,
	}
	for i, job := range obj.Spec.Jobs {
		in.jobs = append(in.jobs, jobInput{job: job, sched: compiled.Schedules[i], record: records[job.Name]})
	}
	return in
}

// act runs the due jobs in spec order and emits one event per handled scheduled time, with
// the state as reason, as the reference does. A failed run is an outcome, not an error: it is
// recorded and retried on its own schedule (the job record's retry).
func (r *Reconciler) act(ctx context.Context, obj *v1beta1.CronHorizontalPodAutoscaler, decisions []jobDecision) map[string]runResult {
	results := map[string]runResult{}
	for i, d := range decisions {
		job := obj.Spec.Jobs[i]
		switch d.action {
		case ActionNone:
			continue
		case ActionRun:
			outcome, err := r.Scaler.Scale(ctx, obj.Namespace, obj.Spec.ScaleTargetRef, job.TargetSize)
			results[job.Name] = runResult{outcome: outcome, err: err}
			if err != nil {
				log.FromContext(ctx).Info("Job failed, retrying", "cronhpa", klog.KObj(obj), "job", job.Name, "scheduled", d.instant, "err", err.Error())
				r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, string(v1beta1.Failed), "Scale", "cron hpa job %s failed, retrying until the starting deadline: %v", job.Name, err)
				r.Metrics.runFailed()
				continue
			}
			r.Metrics.fired(r.Clock.Since(d.instant))
			r.Metrics.execution(v1beta1.Succeed)
			r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, string(v1beta1.Succeed), "Scale", "cron hpa job %s executed successfully. %s", job.Name, outcome.message)
		case ActionSkip:
			r.Metrics.execution(v1beta1.Skipped)
			r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, string(v1beta1.Skipped), "Skip", "cron hpa job %s skipped %s: excluded date", job.Name, d.instant.UTC().Format(time.RFC3339))
		case ActionMiss:
			r.Metrics.execution(v1beta1.Missed)
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, string(v1beta1.Missed), "Skip", "cron hpa job %s missed %s: older than the starting deadline", job.Name, d.instant.UTC().Format(time.RFC3339))
		case ActionGiveUp:
			r.Metrics.execution(v1beta1.Failed)
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, string(v1beta1.Failed), "Scale", "cron hpa job %s gave up on %s after the starting deadline", job.Name, d.instant.UTC().Format(time.RFC3339))
		}
	}
	return results
}

// setReadiness sets the Ready and TargetControlledByHPA conditions.
func (r *Reconciler) setReadiness(ctx context.Context, obj *v1beta1.CronHorizontalPodAutoscaler) {
	gk, _, err := r.Scaler.Resolve(obj.Spec.ScaleTargetRef)
	if err != nil {
		setCondition(obj, v1beta1.ConditionReady, metav1.ConditionFalse, v1beta1.ReasonTargetNotFound, err.Error())
		return
	}
	hpa, err := r.Scaler.controllingHPA(ctx, obj.Namespace, obj.Spec.ScaleTargetRef, gk)
	switch {
	case err != nil:
		log.FromContext(ctx).Error(err, "Listing HPAs failed", "cronhpa", klog.KObj(obj))
	case hpa != "":
		if !meta.IsStatusConditionTrue(obj.Status.ObjectConditions, v1beta1.ConditionTargetControlledByHPA) {
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "TargetControlledByHPA", "Validate",
				"HPA %s also scales %s %s and will undo scheduled changes; target the HPA instead (scaleTargetRef kind HorizontalPodAutoscaler)", hpa, obj.Spec.ScaleTargetRef.Kind, obj.Spec.ScaleTargetRef.Name)
		}
		setCondition(obj, v1beta1.ConditionTargetControlledByHPA, metav1.ConditionTrue, "HPAFound",
			fmt.Sprintf("HPA %s scales the same target; scheduled changes last only until its next sync. Point scaleTargetRef at the HPA to raise its floor instead.", hpa))
	default:
		meta.RemoveStatusCondition(&obj.Status.ObjectConditions, v1beta1.ConditionTargetControlledByHPA)
	}
	if obj.Spec.CronMode == v1beta1.CronModeDisable {
		setCondition(obj, v1beta1.ConditionReady, metav1.ConditionTrue, v1beta1.ReasonDisabled, "cronMode is Disable: no job runs")
		return
	}
	names := make([]string, 0, len(obj.Spec.Jobs))
	for _, j := range obj.Spec.Jobs {
		names = append(names, j.Name)
	}
	setCondition(obj, v1beta1.ConditionReady, metav1.ConditionTrue, v1beta1.ReasonScheduled, "jobs scheduled: "+strings.Join(names, ", "))
}

// conflictRequeue is when an object whose status write conflicted is reconciled again.
const conflictRequeue = time.Second

// writeStatus patches status once, if it changed. The patch carries the resourceVersion read
// at the start, so a concurrent writer makes it fail with a conflict; the object is then
// requeued, and the memo keeps what this reconcile did from being done again.
func (r *Reconciler) writeStatus(ctx context.Context, before, after *v1beta1.CronHorizontalPodAutoscaler) (ctrl.Result, error) {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, after, patch); err != nil {
		if apierrors.IsConflict(err) {
			// The change that conflicted reaches the cache as an event and reconciles the object
			// again; the requeue is a fallback.
			log.FromContext(ctx).V(1).Info("Status changed meanwhile, requeueing", "cronhpa", klog.KObj(after))
			return ctrl.Result{RequeueAfter: conflictRequeue}, nil
		}
		return ctrl.Result{}, fmt.Errorf("writing status of %s: %w", klog.KObj(after), err)
	}
	return ctrl.Result{}, nil
}
