package nodeautoscaler

// Permissions of the node-autoscaler, generated into config/rbac/node-autoscaler by `make
// generate`: first what Karpenter core's controllers use (as its own chart grants them), then the
// kwok provider's, then Lockstep's spill and move-back controllers'.
//
// Karpenter core:
// +kubebuilder:rbac:groups=karpenter.sh,resources=nodepools;nodepools/status;nodeclaims;nodeclaims/status;nodeoverlays;nodeoverlays/status,verbs=get;list;watch
// +kubebuilder:rbac:groups=karpenter.sh,resources=nodeclaims;nodeclaims/status;nodeclaims/finalizers,verbs=create;delete;update;patch
// +kubebuilder:rbac:groups=karpenter.sh,resources=nodepools;nodepools/status;nodepools/finalizers;nodeoverlays/status,verbs=update;patch
// +kubebuilder:rbac:groups=autoscaling.x-k8s.io,resources=capacitybuffers;capacitybuffers/status,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods;nodes;persistentvolumes;persistentvolumeclaims;replicationcontrollers;namespaces;podtemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses;csinodes;volumeattachments,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=daemonsets;deployments;replicasets;statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=create;patch;delete;update
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
//
// kwok provider (tests and demos):
// +kubebuilder:rbac:groups=karpenter.kwok.sh,resources=kwoknodeclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=karpenter.kwok.sh,resources=kwoknodeclasses;kwoknodeclasses/status,verbs=patch;update
//
// Alibaba Cloud provider (ECSNodeClass status):
// +kubebuilder:rbac:groups=karpenter.lockstep.dev,resources=ecsnodeclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=karpenter.lockstep.dev,resources=ecsnodeclasses/status,verbs=patch;update
//
// Lockstep spill and move-back: spill patches pending pods (toleration, label, annotations),
// creates and deletes placeholders, creates their PriorityClass; move-back patches and evicts
// spilled pods.
// +kubebuilder:rbac:groups="",resources=pods,verbs=create;patch
// +kubebuilder:rbac:groups=scheduling.k8s.io,resources=priorityclasses,verbs=get;create
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;delete;deletecollection
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
