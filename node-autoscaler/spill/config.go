package spill

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Keys Lockstep reads and writes on pods and namespaces.
const (
	// SpillAnnotation on a pod set to "false" keeps it off serverless capacity.
	SpillAnnotation = "node-autoscaler.lockstep.dev/spill"
	// BudgetAnnotation on a pod or a namespace is how long a pod may wait for a node before it is
	// spilled (a Go duration; the pod's wins over its namespace's, which wins over the default).
	BudgetAnnotation = "node-autoscaler.lockstep.dev/spill-budget"
	// SpilledLabel marks pods Lockstep spilled onto serverless capacity.
	SpilledLabel = "node-autoscaler.lockstep.dev/spilled"
	// SpilledAtAnnotation records when the pod was spilled (RFC 3339).
	SpilledAtAnnotation = "node-autoscaler.lockstep.dev/spilled-at"
	// MovingBackAnnotation records when the pod was released from its ReplicaSet to be replaced
	// on a real node (RFC 3339).
	MovingBackAnnotation = "node-autoscaler.lockstep.dev/moving-back-since"
	// HoldForLabel on a placeholder pod names the UID of the spilled pod whose room it holds.
	HoldForLabel = "node-autoscaler.lockstep.dev/hold-for"
	// HoldUntilAnnotation on a placeholder pod is when it is deleted at the latest (RFC 3339).
	HoldUntilAnnotation = "node-autoscaler.lockstep.dev/hold-until"
	// PodDeletionCostAnnotation is the ReplicaSet controller's scale-in preference.
	PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"
	// SpilledDeletionCost makes spilled pods the first a ReplicaSet removes on scale-in.
	SpilledDeletionCost = "-1000"
	// podTemplateHashLabel ties a Deployment's pods to their ReplicaSet.
	podTemplateHashLabel = "pod-template-hash"
)

// Config is how spill and move-back behave.
type Config struct {
	// Budget is how long a pending pod may expect to wait for a node before it is spilled, unless
	// its pod or namespace says otherwise (BudgetAnnotation).
	Budget time.Duration
	// DefaultBootTime is a NodePool's boot time before one of its nodes was seen booting.
	DefaultBootTime time.Duration
	// VirtualNodeSelector finds the serverless virtual nodes.
	VirtualNodeSelector labels.Selector
	// VirtualNodeTaint is the taint those nodes carry; spilled pods get a toleration of it.
	VirtualNodeTaint corev1.Taint
	// HoldDuration bounds how long a placeholder holds room for a spilled pod (and keeps its node
	// from being consolidated).
	HoldDuration time.Duration
	// HoldImage is the placeholder's image; empty takes the sandbox (pause) image the real
	// nodes report (SandboxImage), which they hold already. HoldPriorityClass is its (negative,
	// non-preempting) PriorityClass, which the controller creates when missing.
	HoldImage, HoldPriorityClass string
	// HoldStartTimeout is how long a placeholder may go without running (unscheduled, or its
	// image not pulled) before a Warning event on the spilled pod says so.
	HoldStartTimeout time.Duration
	// HoldPriority is the PriorityClass' value.
	HoldPriority int32
	// MoveBack turns moving spilled pods back onto real nodes on.
	MoveBack bool
	// MaxMovesInFlight and MaxMovesPerWorkload bound the pods being moved back at once.
	MaxMovesInFlight, MaxMovesPerWorkload int
	// MoveBackAfter is how long a spilled pod stays on serverless capacity before it may move back
	// (lets a flash of pods settle before they are churned).
	MoveBackAfter time.Duration
}

// DefaultConfig is ACK's virtual node (virtual-kubelet on ECI) with a 30 s budget.
func DefaultConfig() Config {
	return Config{
		Budget:              30 * time.Second,
		DefaultBootTime:     90 * time.Second,
		VirtualNodeSelector: labels.SelectorFromSet(labels.Set{"type": "virtual-kubelet"}),
		VirtualNodeTaint: corev1.Taint{
			Key: "virtual-kubelet.io/provider", Value: "alibabacloud", Effect: corev1.TaintEffectNoSchedule,
		},
		HoldDuration:        15 * time.Minute,
		HoldStartTimeout:    3 * time.Minute,
		HoldPriorityClass:   "lockstep-capacity-hold",
		HoldPriority:        -100,
		MoveBack:            true,
		MaxMovesInFlight:    10,
		MaxMovesPerWorkload: 2,
		MoveBackAfter:       30 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Budget < 0 {
		errs = append(errs, fmt.Errorf("spill budget must not be negative, got %s", c.Budget))
	}
	if c.DefaultBootTime <= 0 {
		errs = append(errs, fmt.Errorf("default boot time must be positive, got %s", c.DefaultBootTime))
	}
	if c.VirtualNodeSelector == nil || c.VirtualNodeSelector.Empty() {
		errs = append(errs, errors.New("virtual node selector must select something (an empty selector would take every node for a virtual one)"))
	}
	if msgs := validation.IsQualifiedName(c.VirtualNodeTaint.Key); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("virtual node taint key %q: %v", c.VirtualNodeTaint.Key, msgs))
	}
	switch c.VirtualNodeTaint.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute, corev1.TaintEffectPreferNoSchedule:
	default:
		errs = append(errs, fmt.Errorf("virtual node taint effect %q is not NoSchedule, PreferNoSchedule or NoExecute", c.VirtualNodeTaint.Effect))
	}
	if c.HoldDuration <= 0 {
		errs = append(errs, fmt.Errorf("hold duration must be positive, got %s", c.HoldDuration))
	}
	if c.HoldStartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("hold start timeout must be positive, got %s", c.HoldStartTimeout))
	}
	if msgs := validation.IsDNS1123Subdomain(c.HoldPriorityClass); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("hold priority class %q: %v", c.HoldPriorityClass, msgs))
	}
	if c.HoldPriority >= 0 {
		errs = append(errs, fmt.Errorf("hold priority must be negative so that every workload preempts placeholders, got %d", c.HoldPriority))
	}
	if c.MoveBack && (c.MaxMovesInFlight < 1 || c.MaxMovesPerWorkload < 1) {
		errs = append(errs, fmt.Errorf("move-back bounds must be at least 1, got %d in flight and %d per workload", c.MaxMovesInFlight, c.MaxMovesPerWorkload))
	}
	if c.MoveBackAfter < 0 {
		errs = append(errs, fmt.Errorf("move-back delay must not be negative, got %s", c.MoveBackAfter))
	}
	return errors.Join(errs...)
}

// toleration is what a spilled pod gets.
func (c Config) toleration() corev1.Toleration {
	t := corev1.Toleration{Key: c.VirtualNodeTaint.Key, Effect: c.VirtualNodeTaint.Effect}
	if c.VirtualNodeTaint.Value == "" {
		t.Operator = corev1.TolerationOpExists
	} else {
		t.Operator, t.Value = corev1.TolerationOpEqual, c.VirtualNodeTaint.Value
	}
	return t
}
