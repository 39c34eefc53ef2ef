// Package rbac holds the metrics adapter's RBAC markers, from which controller-gen writes
// config/rbac/metrics-adapter/role.yaml (and the chart's copy). They live apart from the
// adapter because controller-gen cannot load custom-metrics-apiserver's generated packages.
//
// The adapter reads pods (scrape targets, Pods metrics) and Services (to split route names).
// Delegated authentication and authorization also need the system:auth-delegator ClusterRole
// and the kube-system extension-apiserver-authentication-reader Role, which the chart binds.
//
// +kubebuilder:rbac:groups="",resources=pods;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch
package rbac
