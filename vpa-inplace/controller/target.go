package controller

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/scale"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
)

// ErrUnsupportedTarget is returned for a VPA whose target is missing, unknown or has no pod
// selector; the VPA gets the ConfigUnsupported condition.
var ErrUnsupportedTarget = errors.New("unsupported target")

// Targets resolves a VPA's targetRef to the selector of its pods: Deployments, StatefulSets,
// ReplicaSets, DaemonSets and Jobs from the cache, any other kind through its /scale
// subresource's status.selector.
type Targets struct {
	Client client.Reader
	Mapper meta.RESTMapper
	Scales scale.ScalesGetter
}

// Selector returns the pod selector of the VPA's target.
func (t *Targets) Selector(ctx context.Context, vpa *vpav1.VerticalPodAutoscaler) (labels.Selector, error) {
	ref := vpa.Spec.TargetRef
	if ref == nil || ref.Kind == "" || ref.Name == "" {
		return nil, fmt.Errorf("%w: spec.targetRef needs kind and name", ErrUnsupportedTarget)
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: targetRef.apiVersion %q: %w", ErrUnsupportedTarget, ref.APIVersion, err)
	}
	key := client.ObjectKey{Namespace: vpa.Namespace, Name: ref.Name}
	var sel *metav1.LabelSelector
	switch (schema.GroupKind{Group: gv.Group, Kind: ref.Kind}) {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		d := &appsv1.Deployment{}
		if err = t.Client.Get(ctx, key, d); err == nil {
			sel = d.Spec.Selector
		}
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		s := &appsv1.StatefulSet{}
		if err = t.Client.Get(ctx, key, s); err == nil {
			sel = s.Spec.Selector
		}
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		r := &appsv1.ReplicaSet{}
		if err = t.Client.Get(ctx, key, r); err == nil {
			sel = r.Spec.Selector
		}
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		d := &appsv1.DaemonSet{}
		if err = t.Client.Get(ctx, key, d); err == nil {
			sel = d.Spec.Selector
		}
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		j := &batchv1.Job{}
		if err = t.Client.Get(ctx, key, j); err == nil {
			sel = j.Spec.Selector
		}
	default:
		return t.scaleSelector(ctx, vpa.Namespace, gv, ref.Kind, ref.Name)
	}
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil, fmt.Errorf("%w: %s %s/%s not found", ErrUnsupportedTarget, ref.Kind, vpa.Namespace, ref.Name)
		}
		return nil, fmt.Errorf("reading %s %s/%s: %w", ref.Kind, vpa.Namespace, ref.Name, err)
	}
	return toSelector(sel, ref.Kind, ref.Name)
}

func toSelector(sel *metav1.LabelSelector, kind, name string) (labels.Selector, error) {
	if sel == nil {
		return nil, fmt.Errorf("%w: %s %s has no pod selector", ErrUnsupportedTarget, kind, name)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: selector: %w", ErrUnsupportedTarget, kind, name, err)
	}
	if s.Empty() {
		return nil, fmt.Errorf("%w: %s %s selects every pod", ErrUnsupportedTarget, kind, name)
	}
	return s, nil
}

// scaleSelector reads status.selector from the target's /scale subresource.
func (t *Targets) scaleSelector(ctx context.Context, namespace string, gv schema.GroupVersion, kind, name string) (labels.Selector, error) {
	mapping, err := t.Mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind})
	if err != nil {
		return nil, fmt.Errorf("%w: no kind %q in API group %q: %w", ErrUnsupportedTarget, kind, gv.Group, err)
	}
	sc, err := t.Scales.Scales(namespace).Get(ctx, mapping.Resource.GroupResource(), name, metav1.GetOptions{})
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil, fmt.Errorf("%w: %s %s/%s not found or has no /scale subresource", ErrUnsupportedTarget, kind, namespace, name)
		}
		return nil, fmt.Errorf("reading the scale of %s %s/%s: %w", kind, namespace, name, err)
	}
	if sc.Status.Selector == "" {
		return nil, fmt.Errorf("%w: %s %s/%s reports no pod selector in its /scale subresource", ErrUnsupportedTarget, kind, namespace, name)
	}
	s, err := labels.Parse(sc.Status.Selector)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s/%s: selector %q: %w", ErrUnsupportedTarget, kind, namespace, name, sc.Status.Selector, err)
	}
	return s, nil
}

// sameTarget reports whether an HPA's scaleTargetRef names the VPA's target: same kind, API
// group and name (versions may differ).
func sameTarget(vpa *vpav1.VerticalPodAutoscaler, hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	ref := vpa.Spec.TargetRef
	if ref == nil || ref.Kind != hpa.Spec.ScaleTargetRef.Kind || ref.Name != hpa.Spec.ScaleTargetRef.Name {
		return false
	}
	a, errA := schema.ParseGroupVersion(ref.APIVersion)
	b, errB := schema.ParseGroupVersion(hpa.Spec.ScaleTargetRef.APIVersion)
	return errA == nil && errB == nil && a.Group == b.Group
}

// podsOf returns the pods in namespace matching sel that are not finished.
func podsOf(pods []corev1.Pod, sel labels.Selector) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}
