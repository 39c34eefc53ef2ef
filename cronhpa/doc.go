// Package cronhpa will hold scheduled scaling for sales events: a drop-in replacement for
// Alibaba Cloud's CronHorizontalPodAutoscaler (autoscaling.alibabacloud.com/v1beta1), with its
// API in apis/v1beta1, pure schedule logic in schedule/ and the reconciler in controller/.
package cronhpa
