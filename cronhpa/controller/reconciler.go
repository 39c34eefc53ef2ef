package controller

import (
	"context"
	"errors"
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// Reconciler runs the jobs of CronHorizontalPodAutoscalers. Every object has at most one
// pending wake-up at its earliest next activation, in the Alarm: one timer heap for all
// objects, no goroutine or cron engine per job.
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
	// Alarm wakes objects at their next activation with FirePriority.
	Alarm *Alarm
}

// +kubebuilder:rbac:groups=autoscaling.alibabacloud.com,resources=cronhorizontalpodautoscalers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=autoscaling.alibabacloud.com,resources=cronhorizontalpodautoscalers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=*,resources=*/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch

// SetupWithManager registers the reconciler with mgr.
// Tests that restart the controller in one process set skipNameValidation.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int, skipNameValidation bool) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1beta1.CronHorizontalPodAutoscaler{}).
		Named("cronhpa").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: &skipNameValidation}).
		WatchesRawSource(r.Alarm).
		Complete(r)
}

// Reconcile handles one object: gather, decide, act, then write status once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var obj v1beta1.CronHorizontalPodAutoscaler
	if err := r.Client.Get(ctx, req.NamespacedName, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.Alarm.Clear(req.NamespacedName)
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
		return ctrl.Result{}, r.writeStatus(ctx, before, &obj)
	}

	in := r.gather(&obj, compiled, now)
	decisions := decide(in)
	results, runErr := r.act(ctx, &obj, decisions)

	obj.Status.Conditions = jobRecords(&obj, decisions, results, now)
	obj.Status.ScaleTargetRef = obj.Spec.ScaleTargetRef
	obj.Status.ExcludeDates = obj.Spec.ExcludeDates
	obj.Status.CronMode = obj.Spec.CronMode
	obj.Status.ObservedGeneration = obj.Generation
	summarize(&obj.Status)
	r.setReadiness(ctx, &obj)

	if err := r.writeStatus(ctx, before, &obj); err != nil {
		return ctrl.Result{}, err
	}
	if runErr != nil {
		// Returning the error retries with the controller's exponential backoff until the
		// starting deadline passes, when decide turns the time into GiveUp.
		return ctrl.Result{}, runErr
	}
	wait := requeueAfter(now, decisions)
	logger.V(1).Info("Scheduled", "cronhpa", klog.KObj(&obj), "wakeIn", wait)
	if wait > 0 {
		r.Alarm.Set(req.NamespacedName, now.Add(wait))
	} else {
		r.Alarm.Clear(req.NamespacedName)
	}
	return ctrl.Result{}, nil
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
// the state as reason, as the reference does.
func (r *Reconciler) act(ctx context.Context, obj *v1beta1.CronHorizontalPodAutoscaler, decisions []jobDecision) (map[string]runResult, error) {
	results := map[string]runResult{}
	var errs []error
	for i, d := range decisions {
		job := obj.Spec.Jobs[i]
		switch d.action {
		case ActionNone:
			continue
		case ActionRun:
			outcome, err := r.Scaler.Scale(ctx, obj.Namespace, obj.Spec.ScaleTargetRef, job.TargetSize)
			results[job.Name] = runResult{outcome: outcome, err: err}
			if err != nil {
				errs = append(errs, fmt.Errorf("job %s: %w", job.Name, err))
				r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, string(v1beta1.Failed), "Scale", "cron hpa job %s failed, retrying until the starting deadline: %v", job.Name, err)
				r.Metrics.execution(v1beta1.Failed)
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
	return results, errors.Join(errs...)
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

// writeStatus updates status once, if it changed. The update carries the resourceVersion
// read at the start, so a concurrent writer makes it fail with a conflict and the object is
// requeued instead of a scheduled time being recorded twice.
func (r *Reconciler) writeStatus(ctx context.Context, before, after *v1beta1.CronHorizontalPodAutoscaler) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, after); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("status of %s changed meanwhile, retrying: %w", klog.KObj(after), err)
		}
		return fmt.Errorf("writing status of %s: %w", klog.KObj(after), err)
	}
	return nil
}
