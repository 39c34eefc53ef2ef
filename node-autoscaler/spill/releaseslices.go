package spill

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// planRelease reads what PlanRelease needs and creates the EndpointSlices that keep the pod in
// its Services once its label goes. A Service it cannot keep the pod in keeps the pod's labels.
func (m *Mover) planRelease(ctx context.Context, pod *corev1.Pod, rs *appsv1.ReplicaSet) (ReleasePlan, error) {
	c := m.deps.Client
	ref := ownerRef(rs, "Deployment")
	var dep appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: ref.Name}, &dep); err != nil {
		return ReleasePlan{}, client.IgnoreNotFound(fmt.Errorf("reading Deployment %s: %w", ref.Name, err))
	}
	var services corev1.ServiceList
	if err := c.List(ctx, &services, client.InNamespace(pod.Namespace)); err != nil {
		return ReleasePlan{}, fmt.Errorf("listing Services: %w", err)
	}
	var policies networkingv1.NetworkPolicyList
	if err := c.List(ctx, &policies); err != nil {
		return ReleasePlan{}, fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	plan := PlanRelease(pod, dep.Spec.Selector, services.Items, policies.Items)
	for i := range plan.Slices {
		if err := c.Create(ctx, &plan.Slices[i]); err != nil && !apierrors.IsAlreadyExists(err) {
			return ReleasePlan{Why: "its EndpointSlice could not be created: " + err.Error()}, nil
		}
	}
	return plan, nil
}

// syncSlices keeps a released pod's EndpointSlices' conditions those of the pod.
func (m *Mover) syncSlices(ctx context.Context, pod *corev1.Pod) error {
	var slices discoveryv1.EndpointSliceList
	if err := m.deps.Client.List(ctx, &slices, client.InNamespace(pod.Namespace), client.MatchingLabels{MirrorPodLabel: string(pod.UID)}); err != nil {
		return fmt.Errorf("listing the released pod's EndpointSlices: %w", err)
	}
	want := EndpointConditions(pod)
	for i := range slices.Items {
		s := &slices.Items[i]
		if len(s.Endpoints) != 1 || equality.Semantic.DeepEqual(s.Endpoints[0].Conditions, want) {
			continue
		}
		s.Endpoints[0].Conditions = want
		if err := m.deps.Client.Update(ctx, s); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("updating EndpointSlice %s: %w", s.Name, err)
		}
	}
	return nil
}

// dropSlices deletes a released pod's EndpointSlices: it no longer serves.
func (m *Mover) dropSlices(ctx context.Context, pod *corev1.Pod) error {
	err := m.deps.Client.DeleteAllOf(ctx, &discoveryv1.EndpointSlice{}, client.InNamespace(pod.Namespace), client.MatchingLabels{MirrorPodLabel: string(pod.UID)})
	if err != nil {
		return fmt.Errorf("deleting the released pod's EndpointSlices: %w", err)
	}
	return nil
}
