package sales

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

func TestObjects(t *testing.T) {
	warm := time.Date(2026, 12, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	times := Times{WarmUp: warm, SaleEnd: warm.Add(5 * time.Minute)}
	objs, err := Objects(Lockstep, "shop", times)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(objs); got["Deployment"] != 2 || got["Service"] != 2 || got["HorizontalPodAutoscaler"] != 2 || got["CronHorizontalPodAutoscaler"] != 2 || got["VerticalPodAutoscaler"] != 1 {
		t.Fatalf("lockstep side: %v", got)
	}
	for _, o := range objs {
		if o.GetNamespace() != "shop" {
			t.Fatalf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if o.GetKind() != "CronHorizontalPodAutoscaler" {
			continue
		}
		jobs, _, _ := unstructured.NestedSlice(o.Object, "spec", "jobs")
		want := map[string]string{"warm-up": "@date 2026-12-01 01:00:00", "sale-end": "@date 2026-12-01 01:05:00"}
		for _, j := range jobs {
			job := j.(map[string]any)
			if job["schedule"] != want[job["name"].(string)] {
				t.Fatalf("%s job %v: schedule %v, want %s", o.GetName(), job["name"], job["schedule"], want[job["name"].(string)])
			}
		}
		if tz, _, _ := unstructured.NestedString(o.Object, "spec", "timezone"); tz != "UTC" {
			t.Fatalf("%s: time zone %q", o.GetName(), tz)
		}
	}
}

func TestBaselineObjects(t *testing.T) {
	objs, err := Objects(Baseline, "plain", Times{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(objs); got["Deployment"] != 2 || got["HorizontalPodAutoscaler"] != 2 || got["CronHorizontalPodAutoscaler"] != 0 || got["VerticalPodAutoscaler"] != 0 {
		t.Fatalf("baseline side: %v", got)
	}
	for _, o := range objs {
		if o.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		metrics, _, _ := unstructured.NestedSlice(o.Object, "spec", "metrics")
		for _, m := range metrics {
			if typ := m.(map[string]any)["type"]; typ != "Resource" {
				t.Fatalf("baseline HPA %s has a %v metric", o.GetName(), typ)
			}
		}
	}
}

func TestObjectsRefusesBadInput(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		policy Policy
		ns     string
		times  Times
		err    string
	}{
		"unknown policy":          {policy: "hpa", ns: "a", err: `unknown policy "hpa"`},
		"no namespace":            {policy: Baseline, err: "no namespace"},
		"sale ends before warmup": {policy: Lockstep, ns: "a", times: Times{WarmUp: now, SaleEnd: now}, err: "before its warm-up"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Objects(tc.policy, tc.ns, tc.times); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
