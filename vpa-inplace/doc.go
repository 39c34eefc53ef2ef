// Package vpainplace will resize running pods in place through the pods/resize subresource,
// driven by the standard VerticalPodAutoscaler API, without restarts or evictions.
package vpainplace
