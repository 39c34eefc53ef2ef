// Package webhook is the CronHorizontalPodAutoscaler validating admission webhook: it rejects,
// at kubectl apply time, what the CRD schema cannot — bad schedules and excludeDates, unknown
// time zones, and target kinds the cluster does not serve.
package webhook

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// Path is where the webhook is served.
const Path = "/validate-cronhpa"

// TargetResolver resolves a scale target's kind; the controller's Scaler implements it.
type TargetResolver interface {
	ResolveKind(ref v1beta1.ScaleTargetRef) error
}

// Validator validates CronHorizontalPodAutoscalers.
type Validator struct {
	Resolver        TargetResolver
	DefaultLocation *time.Location
}

var _ admission.Validator[*v1beta1.CronHorizontalPodAutoscaler] = &Validator{}

// SetupWithManager serves the webhook from mgr's webhook server.
func (v *Validator) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &v1beta1.CronHorizontalPodAutoscaler{}).
		WithValidator(v).
		WithValidatorCustomPath(Path).
		Complete()
}

// ValidateCreate checks a new object.
func (v *Validator) ValidateCreate(_ context.Context, obj *v1beta1.CronHorizontalPodAutoscaler) (admission.Warnings, error) {
	return nil, v.validate(obj)
}

// ValidateUpdate checks a changed object.
func (v *Validator) ValidateUpdate(_ context.Context, _, obj *v1beta1.CronHorizontalPodAutoscaler) (admission.Warnings, error) {
	return nil, v.validate(obj)
}

// ValidateDelete allows every deletion.
func (v *Validator) ValidateDelete(context.Context, *v1beta1.CronHorizontalPodAutoscaler) (admission.Warnings, error) {
	return nil, nil
}

func (v *Validator) validate(obj *v1beta1.CronHorizontalPodAutoscaler) error {
	_, errs := obj.Compile(v.DefaultLocation)
	if len(errs) == 0 {
		if err := v.Resolver.ResolveKind(obj.Spec.ScaleTargetRef); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "scaleTargetRef"), fmt.Sprintf("%s %s", obj.Spec.ScaleTargetRef.APIVersion, obj.Spec.ScaleTargetRef.Kind), err.Error()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v1beta1.GroupVersion.WithKind("CronHorizontalPodAutoscaler").GroupKind(), obj.Name, errs)
}
