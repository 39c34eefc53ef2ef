// Package testbed starts a real Kubernetes control plane (etcd, kube-apiserver and, on request,
// kube-controller-manager, kube-scheduler and kwok with fake nodes) on loopback, for integration
// tests and local demos on machines without a container runtime.
package testbed
