package controller

import (
	"context"
	"encoding/json"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// hpaGroupKind is the kind whose floor and ceiling a job moves instead of scaling it.
var hpaGroupKind = schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}

// Scaler resolves scale targets through the RESTMapper and changes them through the /scale
// subresource, so any scalable kind works, whatever version a manifest names.
type Scaler struct {
	Client client.Client
	// Reader reads HPAs from the API server rather than the cache: bounds are patched with
	// test operations on the values read, which a stale copy would fail. Client when nil.
	Reader client.Reader
	Mapper meta.RESTMapper
	Scales scale.ScalesGetter
}

// scaleOutcome says what a run changed, for the status message and event.
type scaleOutcome struct {
	current, desired int32
	message          string
}

// Resolve maps a target reference to its group and resource by group and kind (the version in
// the reference only selects the group, so apps/v1beta2 still finds Deployments).
func (s *Scaler) Resolve(ref v1beta1.ScaleTargetRef) (schema.GroupKind, schema.GroupResource, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return schema.GroupKind{}, schema.GroupResource{}, fmt.Errorf("scaleTargetRef.apiVersion %q: %w", ref.APIVersion, err)
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	mapping, err := s.Mapper.RESTMapping(gk)
	if err != nil {
		group := gv.Group
		if group == "" {
			group = "core"
		}
		return gk, schema.GroupResource{}, fmt.Errorf("scaleTargetRef: no kind %q in API group %q (apiVersion %q): %w", ref.Kind, group, ref.APIVersion, err)
	}
	return gk, mapping.Resource.GroupResource(), nil
}

// Scale sets the target of ref in namespace to size replicas (or, for an HPA, moves its bounds).
func (s *Scaler) Scale(ctx context.Context, namespace string, ref v1beta1.ScaleTargetRef, size int32) (scaleOutcome, error) {
	gk, gr, err := s.Resolve(ref)
	if err != nil {
		return scaleOutcome{}, err
	}
	if gk == hpaGroupKind {
		return s.scaleHPA(ctx, namespace, ref.Name, size)
	}
	if s.clusterScoped(gk) {
		// A cluster-scoped target (a Karpenter NodePool's /scale, to pre-warm nodes for a sale)
		// is named without the CronHPA's namespace.
		namespace = ""
	}
	return s.scaleWorkload(ctx, namespace, gr, ref.Name, size)
}

// clusterScoped reports whether objects of gk live outside namespaces.
func (s *Scaler) clusterScoped(gk schema.GroupKind) bool {
	mapping, err := s.Mapper.RESTMapping(gk)
	return err == nil && mapping.Scope.Name() == meta.RESTScopeNameRoot
}

func (s *Scaler) scaleWorkload(ctx context.Context, namespace string, gr schema.GroupResource, name string, size int32) (scaleOutcome, error) {
	cur, err := s.setScale(ctx, namespace, gr, name, nil, func(int32) (int32, bool) { return size, true })
	if err != nil {
		return scaleOutcome{}, fmt.Errorf("scaling %s %s/%s to %d: %w", gr, namespace, name, size, err)
	}
	return scaleOutcome{current: cur, desired: size, message: fmt.Sprintf("current replicas:%d, desired replicas:%d", cur, size)}, nil
}

// setScale reads the scale of a target (or starts from read, when the caller has just read
// it) and, if want says so, writes the replicas it returns. The write carries the
// resourceVersion read; when another writer (the HPA controller, a rollout) got there first,
// it reads again and decides again, rather than failing the run. It returns the replicas
// first read.
func (s *Scaler) setScale(ctx context.Context, namespace string, gr schema.GroupResource, name string, read *autoscalingv1.Scale, want func(current int32) (int32, bool)) (int32, error) {
	first := int32(-1)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var sc *autoscalingv1.Scale
		if read != nil {
			sc, read = read.DeepCopy(), nil // a retry reads again
		} else {
			var err error
			if sc, err = s.Scales.Scales(namespace).Get(ctx, gr, name, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("reading the scale: %w", err)
			}
		}
		if first < 0 {
			first = sc.Spec.Replicas
		}
		replicas, ok := want(sc.Spec.Replicas)
		if !ok || replicas == sc.Spec.Replicas {
			return nil
		}
		sc.Spec.Replicas = replicas
		_, err := s.Scales.Scales(namespace).Update(ctx, gr, sc, metav1.UpdateOptions{})
		return err //nolint:wrapcheck // RetryOnConflict must see the conflict; wrapped by the caller
	})
	return max(first, 0), err
}

// hpaBounds is the pure rule for a job that targets an HPA. With cur the replicas of the HPA's
// own target and t the job's size:
//   - t above maxReplicas raises maxReplicas to t;
//   - t above cur raises minReplicas to t (and the caller scales the target now, rather than
//     waiting for the HPA's next sync);
//   - t below minReplicas lowers minReplicas to t, so the HPA may scale down to it;
//   - otherwise the HPA stays in charge and nothing changes.
//
// minReplicas never drops below 1 (0 needs the HPAScaleToZero feature gate) and never exceeds
// maxReplicas.
func hpaBounds(minReplicas, maxReplicas, cur, t int32) (newMin, newMax int32, scaleTo int32) {
	newMin, newMax = minReplicas, maxReplicas
	if t > newMax {
		newMax = t
	}
	switch {
	case t > cur:
		newMin = t
		scaleTo = t
	case t < newMin:
		newMin = t
	}
	newMin = max(newMin, 1)
	newMin = min(newMin, newMax)
	return newMin, newMax, scaleTo
}

func (s *Scaler) scaleHPA(ctx context.Context, namespace, name string, size int32) (scaleOutcome, error) {
	var hpa autoscalingv2.HorizontalPodAutoscaler
	reader := s.Reader
	if reader == nil {
		reader = s.Client
	}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &hpa); err != nil {
		return scaleOutcome{}, fmt.Errorf("reading HPA %s/%s: %w", namespace, name, err)
	}
	target := hpa.Spec.ScaleTargetRef
	_, gr, err := s.Resolve(v1beta1.ScaleTargetRef{APIVersion: target.APIVersion, Kind: target.Kind, Name: target.Name})
	if err != nil {
		return scaleOutcome{}, fmt.Errorf("HPA %s/%s target: %w", namespace, name, err)
	}
	// The target's own replica count, not the HPA's status, which is empty until its first sync.
	sc, err := s.Scales.Scales(namespace).Get(ctx, gr, target.Name, metav1.GetOptions{})
	if err != nil {
		return scaleOutcome{}, fmt.Errorf("reading scale of HPA %s/%s target %s: %w", namespace, name, target.Name, err)
	}
	oldMin := int32(1)
	if hpa.Spec.MinReplicas != nil {
		oldMin = *hpa.Spec.MinReplicas
	}
	newMin, newMax, scaleTo := hpaBounds(oldMin, hpa.Spec.MaxReplicas, sc.Spec.Replicas, size)
	out := scaleOutcome{current: sc.Spec.Replicas, desired: size}
	if newMin != oldMin || newMax != hpa.Spec.MaxReplicas {
		patch, err := boundsPatch(hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, newMin, newMax)
		if err != nil {
			return out, err
		}
		if err := s.Client.Patch(ctx, &hpa, client.RawPatch(types.JSONPatchType, patch)); err != nil {
			return out, fmt.Errorf("patching HPA %s/%s bounds to [%d, %d]: %w", namespace, name, newMin, newMax, err)
		}
	}
	if scaleTo > 0 {
		// Raise the target now rather than at the HPA's next sync; if the HPA (or anyone) has
		// meanwhile raised it further, leave it.
		if _, err := s.setScale(ctx, namespace, gr, target.Name, sc, func(cur int32) (int32, bool) { return scaleTo, cur < scaleTo }); err != nil {
			return out, fmt.Errorf("scaling HPA %s/%s target %s to %d: %w", namespace, name, target.Name, scaleTo, err)
		}
	}
	out.message = fmt.Sprintf("HPA minReplicas:%d->%d, maxReplicas:%d->%d, current replicas:%d, desired replicas:%d",
		oldMin, newMin, hpa.Spec.MaxReplicas, newMax, sc.Spec.Replicas, size)
	return out, nil
}

// boundsPatch is a JSON patch that moves an HPA's bounds from what was read to the new ones. It
// touches only spec.minReplicas and spec.maxReplicas, and its test operations make it fail
// (422, to be retried) if either changed since it was read; the HPA controller's status writes,
// every sync, never conflict with it.
func boundsPatch(oldMin *int32, oldMax, newMin, newMax int32) ([]byte, error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	ops := []op{{"test", "/spec/maxReplicas", oldMax}}
	setMin := "add" // minReplicas may be absent (defaulted to 1 by the API server)
	if oldMin != nil {
		ops = append(ops, op{"test", "/spec/minReplicas", *oldMin})
		setMin = "replace"
	}
	ops = append(ops, op{"replace", "/spec/maxReplicas", newMax}, op{setMin, "/spec/minReplicas", newMin})
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding the HPA bounds patch: %w", err)
	}
	return b, nil
}

// controllingHPA returns the name of an HPA in namespace that scales the same object as ref
// (of the already resolved kind gk), or "" if there is none. Such an HPA undoes scheduled
// changes at its next sync.
func (s *Scaler) controllingHPA(ctx context.Context, namespace string, ref v1beta1.ScaleTargetRef, gk schema.GroupKind) (string, error) {
	if gk == hpaGroupKind {
		return "", nil
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := s.Client.List(ctx, &hpas, client.InNamespace(namespace)); err != nil {
		return "", fmt.Errorf("listing HPAs in %s: %w", namespace, err)
	}
	for _, h := range hpas.Items {
		t := h.Spec.ScaleTargetRef
		tgv, err := schema.ParseGroupVersion(t.APIVersion)
		if err != nil {
			continue
		}
		if t.Name == ref.Name && t.Kind == ref.Kind && tgv.Group == gk.Group {
			return h.Name, nil
		}
	}
	return "", nil
}

// ResolveKind reports whether the cluster serves the target's kind (for the webhook).
func (s *Scaler) ResolveKind(ref v1beta1.ScaleTargetRef) error {
	_, _, err := s.Resolve(ref)
	return err
}
