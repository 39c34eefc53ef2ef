package v1beta1

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/lockstep-dev/lockstep/cronhpa/schedule"
)

// locations caches time zones: time.LoadLocation reads the zone database from disk on every
// call, and Compile runs on every reconcile.
var locations sync.Map

func loadLocation(name string) (*time.Location, error) {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, loc)
	return loc, nil
}

// +kubebuilder:object:generate=false

// Compiled is a validated spec, ready to schedule: its time zone, exclusions and one parsed
// schedule per job (in spec order).
type Compiled struct {
	Location   *time.Location
	Exclusions *schedule.Exclusions
	Schedules  []schedule.Schedule
}

// Compile validates what the CRD schema cannot — schedules, excludeDates, the time zone and
// the shape of scaleTargetRef.apiVersion — and returns the parsed form. The admission webhook
// and the controller both call it, so what the webhook admits the controller can run.
// defaultLoc is used when spec.timezone is empty.
func (c *CronHorizontalPodAutoscaler) Compile(defaultLoc *time.Location) (*Compiled, field.ErrorList) {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	out := &Compiled{Location: defaultLoc}
	if c.Spec.TimeZone != nil && *c.Spec.TimeZone != "" {
		loc, err := loadLocation(*c.Spec.TimeZone)
		if err != nil {
			errs = append(errs, field.Invalid(spec.Child("timezone"), *c.Spec.TimeZone, "unknown IANA time zone (e.g. Asia/Shanghai, America/New_York)"))
		} else {
			out.Location = loc
		}
	}
	if out.Location == nil {
		out.Location = time.UTC
	}
	if _, err := schema.ParseGroupVersion(c.Spec.ScaleTargetRef.APIVersion); err != nil {
		errs = append(errs, field.Invalid(spec.Child("scaleTargetRef", "apiVersion"), c.Spec.ScaleTargetRef.APIVersion, err.Error()))
	}
	ex, err := schedule.ParseExclusions(c.Spec.ExcludeDates, out.Location)
	if err != nil {
		errs = append(errs, field.Invalid(spec.Child("excludeDates"), c.Spec.ExcludeDates, err.Error()))
	}
	out.Exclusions = ex
	if len(c.Spec.Jobs) == 0 {
		errs = append(errs, field.Required(spec.Child("jobs"), "at least one job is needed"))
	}
	seen := make(map[string]bool, len(c.Spec.Jobs))
	for i, job := range c.Spec.Jobs {
		path := spec.Child("jobs").Index(i)
		if job.Name == "" {
			errs = append(errs, field.Required(path.Child("name"), ""))
		} else if seen[job.Name] {
			errs = append(errs, field.Duplicate(path.Child("name"), job.Name))
		}
		seen[job.Name] = true
		if job.TargetSize < 0 {
			errs = append(errs, field.Invalid(path.Child("targetSize"), job.TargetSize, "must not be negative"))
		}
		s, err := schedule.Parse(job.Schedule, out.Location, c.CreationTimestamp.Time)
		if err != nil {
			errs = append(errs, field.Invalid(path.Child("schedule"), job.Schedule, err.Error()))
		}
		out.Schedules = append(out.Schedules, s)
	}
	if c.Spec.StartingDeadlineSeconds != nil && *c.Spec.StartingDeadlineSeconds < 0 {
		errs = append(errs, field.Invalid(spec.Child("startingDeadlineSeconds"), *c.Spec.StartingDeadlineSeconds, "must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}
