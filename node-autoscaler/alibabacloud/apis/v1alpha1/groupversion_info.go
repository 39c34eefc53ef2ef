// Package v1alpha1 is the ECSNodeClass API (karpenter.lockstep.dev/v1alpha1): how the
// node-autoscaler's Alibaba Cloud provider launches ECS instances for a Karpenter NodePool.
// +kubebuilder:object:generate=true
// +groupName=karpenter.lockstep.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

var (
	// GroupVersion is the API group and version of ECSNodeClass.
	GroupVersion = schema.GroupVersion{Group: "karpenter.lockstep.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Karpenter's manager uses client-go's scheme, as Karpenter's own APIs do.
func init() {
	if err := AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ECSNodeClass{}, &ECSNodeClassList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
