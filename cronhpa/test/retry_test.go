package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// refuseScaleTo installs a ValidatingAdmissionPolicy that refuses to scale Deployments in ns
// to n replicas: a scale error the controller cannot avoid, like a quota or a policy in a real
// cluster. It returns when the API server enforces it.
func refuseScaleTo(t *testing.T, c client.Client, ns, deployment string, n int32) {
	t.Helper()
	ctx := context.Background()
	name := "refuse-scale-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments/scale"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf("object.spec.replicas != %d", n),
				Message:    fmt.Sprintf("scaling to %d replicas is not allowed here", n),
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), binding)
		_ = c.Delete(context.Background(), policy)
	})
	cs := framework.Clientset(t)
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, deployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = n
		_, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, deployment, scale, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "not allowed") {
			return fmt.Errorf("the policy is not enforced yet (%w)", err)
		}
		return nil
	})
}

// A job that keeps failing is retried on its own backoff and given up at its deadline, while
// a sibling job on the same object fires on time: the failure never holds the object's wake-up.
// Each scheduled time counts once in executions_total; each failed attempt in run_errors_total.
func TestFailingJobBesideDueJob(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	deployment(t, c, ns, "shop", 1)
	refuseScaleTo(t, c, ns, "shop", 7)
	failedBefore := counter(t, "lockstep_cronhpa_executions_total", "state", "Failed")
	succeededBefore := counter(t, "lockstep_cronhpa_executions_total", "state", "Succeed")
	errorsBefore := counter(t, "lockstep_cronhpa_run_errors_total", "", "")

	start := time.Now()
	brokenAt := start.Add(2 * time.Second).Truncate(time.Second)
	dueAt := brokenAt.Add(4 * time.Second)
	obj := cronHPA(ns, "shop", "shop",
		v1beta1.Job{Name: "broken", Schedule: "@date " + brokenAt.UTC().Format("2006-01-02 15:04:05"), TargetSize: 7},
		v1beta1.Job{Name: "due", Schedule: "@date " + dueAt.UTC().Format("2006-01-02 15:04:05"), TargetSize: 3},
	)
	obj.Spec.StartingDeadlineSeconds = ptr.To[int64](10)
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}

	// The sibling fires on time although the broken job has failed a few times by then.
	waitReplicas(t, c, ns, "shop", 3, time.Until(dueAt)+10*time.Second)
	if late := time.Since(dueAt); late > 2*time.Second {
		t.Fatalf("the due job fired %s late beside a failing job", late)
	}
	retrying := jobRecord(t, c, ns, "shop", "broken", 5*time.Second, func(r v1beta1.Condition) bool {
		return r.State == v1beta1.Failed && r.Retry != nil && r.Retry.Attempts >= 2
	})
	if !retrying.Retry.ScheduleTime.Time.Equal(brokenAt) || !strings.Contains(retrying.Message, "not allowed") || retrying.LastScheduleTime != nil {
		t.Fatalf("retry record: %+v", retrying)
	}
	// Retries follow their own schedule: 1, 2, 4, 8 s after each failure, the last one at the
	// deadline, then the give-up is recorded on time.
	final := jobRecord(t, c, ns, "shop", "broken", time.Until(brokenAt.Add(10*time.Second))+5*time.Second, func(r v1beta1.Condition) bool {
		return r.State == v1beta1.Failed && r.Retry == nil && r.LastScheduleTime != nil
	})
	if !final.LastScheduleTime.Time.Equal(brokenAt) || !strings.Contains(final.Message, "gave up") {
		t.Fatalf("final record: %+v", final)
	}
	if late := time.Since(brokenAt.Add(10 * time.Second)); late > 3*time.Second {
		t.Errorf("the give-up was recorded %s after the deadline", late)
	}
	jobRecord(t, c, ns, "shop", "due", time.Second, succeeded)

	if got := counter(t, "lockstep_cronhpa_executions_total", "state", "Failed") - failedBefore; got != 1 {
		t.Errorf("executions_total{Failed} grew by %v, want 1 (one scheduled time given up)", got)
	}
	if got := counter(t, "lockstep_cronhpa_executions_total", "state", "Succeed") - succeededBefore; got != 1 {
		t.Errorf("executions_total{Succeed} grew by %v, want 1", got)
	}
	// Attempts at 0, 1, 3, 7 s and the last at the 10 s deadline: five, give or take one when
	// a backoff lands exactly on the deadline.
	if got := counter(t, "lockstep_cronhpa_run_errors_total", "", "") - errorsBefore; got < 4 || got > 6 {
		t.Errorf("run_errors_total grew by %v, want about 5 attempts in 10 s of backoff", got)
	}
}

// Moving an HPA's bounds never conflicts with the HPA's status writes: the controller patches
// only spec.minReplicas and spec.maxReplicas. The real HPA controller syncs every second, and a
// second writer rewrites the HPA's status as fast as it can; jobs move the bounds every 2 s.
func TestHPABoundsDuringStatusWrites(t *testing.T) {
	c := setup(t)
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	deployment(t, c, ns, "api", 2)
	hpaOn(t, c, ns, "api", 2, 5)
	errorsBefore := counter(t, "lockstep_cronhpa_run_errors_total", "", "")

	writeCtx, stopWriting := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Go(func() {
		for writeCtx.Err() == nil {
			h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(writeCtx, "api", metav1.GetOptions{})
			if err != nil {
				continue
			}
			h.Status.LastScaleTime = ptr.To(metav1.Now())
			h.Status.DesiredReplicas = int32(writes.Load() % 5)
			if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(writeCtx, h, metav1.UpdateOptions{}); err == nil {
				writes.Add(1)
			}
		}
	})
	defer func() {
		stopWriting()
		wg.Wait()
	}()

	// Six jobs 2 s apart, each above the current size: each raises the floor (and from the
	// fourth on the ceiling).
	first := time.Now().Add(2 * time.Second).Truncate(time.Second)
	var jobs []v1beta1.Job
	for i := range 6 {
		at := first.Add(time.Duration(2*i) * time.Second)
		jobs = append(jobs, v1beta1.Job{Name: fmt.Sprintf("step-%d", i), Schedule: "@date " + at.UTC().Format("2006-01-02 15:04:05"), TargetSize: int32(3 + i)})
	}
	obj := cronHPA(ns, "api", "api", jobs...)
	obj.Spec.ScaleTargetRef = v1beta1.ScaleTargetRef{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "api"}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var got v1beta1.CronHorizontalPodAutoscaler
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api"}, &got); err != nil {
			return err
		}
		done := 0
		for _, r := range got.Status.Conditions {
			if r.State == v1beta1.Failed || r.Retry != nil {
				t.Fatalf("job %s failed while the HPA's status was being written: %s", r.Name, r.Message)
			}
			if r.State == v1beta1.Succeed {
				done++
			}
		}
		if done < len(jobs) {
			return fmt.Errorf("%d of %d jobs done", done, len(jobs))
		}
		return nil
	})
	var got autoscalingv2.HorizontalPodAutoscaler
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api"}, &got); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(got.Spec.MinReplicas, 1) != 8 || got.Spec.MaxReplicas != 8 {
		t.Fatalf("HPA bounds [%d, %d], want [8, 8]", ptr.Deref(got.Spec.MinReplicas, 1), got.Spec.MaxReplicas)
	}
	if n := counter(t, "lockstep_cronhpa_run_errors_total", "", "") - errorsBefore; n != 0 {
		t.Fatalf("%v failed attempts while the HPA's status was being written", n)
	}
	if writes.Load() < 20 {
		t.Fatalf("only %d status writes happened: the test did not exercise concurrent writers", writes.Load())
	}
	t.Logf("%d HPA status writes during %d bound changes, no conflict", writes.Load(), len(jobs))
}

// counter reads a counter of the in-process controller: the series whose label has value, or
// the only series when label is empty.
func counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := ctl.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		if label == "" {
			var sum float64
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
		return valueWith(f, label, value)
	}
	return 0
}
