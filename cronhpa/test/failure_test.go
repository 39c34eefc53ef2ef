package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// A run whose target is missing fails, is retried with backoff while the starting deadline
// allows, and is then recorded as Failed ("gave up") with the last error.
func TestRetriesThenGivesUp(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	obj := cronHPA(ns, "ghost", "no-such-deployment", v1beta1.Job{Name: "up", Schedule: dateIn(2 * time.Second), TargetSize: 3})
	obj.Spec.StartingDeadlineSeconds = ptr.To[int64](4)
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	retrying := jobRecord(t, c, ns, "ghost", "up", 15*time.Second, func(r v1beta1.Condition) bool {
		return r.State == v1beta1.Failed && strings.Contains(r.Message, "retrying")
	})
	if retrying.LastScheduleTime != nil {
		t.Fatalf("a time being retried must not be recorded as handled: %+v", retrying)
	}
	final := jobRecord(t, c, ns, "ghost", "up", 30*time.Second, func(r v1beta1.Condition) bool {
		return r.State == v1beta1.Failed && strings.Contains(r.Message, "gave up")
	})
	if final.LastScheduleTime == nil || !strings.Contains(final.Message, "not found") {
		t.Fatalf("final record: %+v", final)
	}
}

// The controller exports executions by state, fire lag, next fire times and objects by state.
func TestMetrics(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	deployment(t, c, ns, "metered", 1)
	if err := c.Create(context.Background(), cronHPA(ns, "metered", "metered",
		v1beta1.Job{Name: "now", Schedule: dateIn(2 * time.Second), TargetSize: 2},
		v1beta1.Job{Name: "later", Schedule: "0 0 3 * * *", TargetSize: 1},
	)); err != nil {
		t.Fatal(err)
	}
	jobRecord(t, c, ns, "metered", "now", 15*time.Second, succeeded)
	framework.Eventually(t, 10*time.Second, func(context.Context) error {
		families, err := ctl.registry.Gather()
		if err != nil {
			return err
		}
		byName := map[string]*dto.MetricFamily{}
		for _, f := range families {
			byName[f.GetName()] = f
		}
		if v := valueWith(byName["lockstep_cronhpa_executions_total"], "state", "Succeed"); v < 1 {
			return fmt.Errorf("executions_total{state=Succeed} = %v", v)
		}
		if h := byName["lockstep_cronhpa_fire_lag_seconds"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() < 1 {
			return fmt.Errorf("no fire lag observed")
		}
		if v := valueWith(byName["lockstep_cronhpa_next_fire_timestamp_seconds"], "job", "later"); v <= float64(time.Now().Unix()) {
			return fmt.Errorf("next fire of job later = %v", v)
		}
		if v := valueWith(byName["lockstep_cronhpa_objects"], "ready", "true"); v < 1 {
			return fmt.Errorf("objects{ready=true} = %v", v)
		}
		return nil
	})
}

// valueWith returns the value of the series in f whose label has value (counter or gauge).
func valueWith(f *dto.MetricFamily, label, value string) float64 {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
