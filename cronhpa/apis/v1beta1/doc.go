// Package v1beta1 is the CronHorizontalPodAutoscaler API, autoscaling.alibabacloud.com/v1beta1:
// the same group, kind and fields as Alibaba Cloud's kubernetes-cronhpa-controller, so existing
// manifests apply unchanged, extended only with optional fields.
//
// +kubebuilder:object:generate=true
// +groupName=autoscaling.alibabacloud.com
package v1beta1
