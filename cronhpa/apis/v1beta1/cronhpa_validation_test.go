package v1beta1

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
)

func TestCompile(t *testing.T) {
	valid := func() *CronHorizontalPodAutoscaler {
		return &CronHorizontalPodAutoscaler{Spec: CronHorizontalPodAutoscalerSpec{
			ScaleTargetRef: ScaleTargetRef{APIVersion: "apps/v1beta2", Kind: "Deployment", Name: "shop"},
			Jobs:           []Job{{Name: "up", Schedule: "30 */1 * * * *", TargetSize: 3}, {Name: "sale", Schedule: "@date 2026-11-11 00:00:00", TargetSize: 9}},
			ExcludeDates:   []string{"* * * 15 11 *"},
		}}
	}
	tests := map[string]struct {
		mutate  func(*CronHorizontalPodAutoscaler)
		wantErr string
		wantLoc string
	}{
		"reference manifest":   {mutate: func(*CronHorizontalPodAutoscaler) {}, wantLoc: "Europe/Berlin"},
		"own time zone":        {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.TimeZone = ptr.To("Asia/Shanghai") }, wantLoc: "Asia/Shanghai"},
		"unknown time zone":    {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.TimeZone = ptr.To("Mars/Olympus") }, wantErr: "spec.timezone"},
		"bad schedule":         {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.Jobs[1].Schedule = "@date tomorrow" }, wantErr: "spec.jobs[1].schedule"},
		"duplicate names":      {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.Jobs[1].Name = "up" }, wantErr: "Duplicate value"},
		"negative size":        {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.Jobs[0].TargetSize = -2 }, wantErr: "spec.jobs[0].targetSize"},
		"no jobs":              {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.Jobs = nil }, wantErr: "spec.jobs"},
		"bad excludeDates":     {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.ExcludeDates = []string{"Nov 15"} }, wantErr: "spec.excludeDates"},
		"malformed apiVersion": {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.ScaleTargetRef.APIVersion = "a/b/c" }, wantErr: "spec.scaleTargetRef.apiVersion"},
		"negative deadline":    {mutate: func(c *CronHorizontalPodAutoscaler) { c.Spec.StartingDeadlineSeconds = ptr.To[int64](-1) }, wantErr: "startingDeadlineSeconds"},
		"several errors at once": {
			mutate:  func(c *CronHorizontalPodAutoscaler) { c.Spec.Jobs[0].Schedule = "x"; c.Spec.Jobs[1].TargetSize = -1 },
			wantErr: "spec.jobs[0].schedule",
		},
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := valid()
			tc.mutate(obj)
			got, errs := obj.Compile(berlin)
			if tc.wantErr != "" {
				if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.wantErr) {
					t.Fatalf("errors = %v, want one about %q", errs, tc.wantErr)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got.Location.String() != tc.wantLoc || len(got.Schedules) != len(obj.Spec.Jobs) {
				t.Fatalf("compiled location %s, %d schedules", got.Location, len(got.Schedules))
			}
		})
	}
}
