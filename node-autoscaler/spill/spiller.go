package spill

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/awslabs/operatorpkg/controller"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// reconcileTimeout bounds one reconcile of the spill controllers: an API call that hangs becomes
// an error and a retry instead of a worker lost for good.
const reconcileTimeout = time.Minute

// Deps is what the spill controllers need.
type Deps struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// Clock is the time source.
	Clock clock.Clock
	// Recorder writes events on pods.
	Recorder events.EventRecorder
	// Metrics receive the controllers' figures.
	Metrics *Metrics
	// Config tunes spill and move-back.
	Config Config
	// Workers is how many pending pods are looked at in parallel (10 when 0).
	Workers int
}

// NewControllers returns the spill and move-back controllers.
func NewControllers(d Deps) []controller.Controller {
	pc := &priorityClass{deps: d}
	return []controller.Controller{&Spiller{deps: d, class: pc}, &Mover{deps: d, class: pc}}
}

// Spiller spills pending pods whose expected wait for a node exceeds their budget.
type Spiller struct {
	deps  Deps
	class *priorityClass
}

// Register adds the controller to the manager.
func (s *Spiller) Register(_ context.Context, m manager.Manager) error {
	workers := s.deps.Workers
	if workers == 0 {
		workers = 10
	}
	return ctrl.NewControllerManagedBy(m).
		Named("lockstep.spill").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			pod, ok := o.(*corev1.Pod)
			return ok && pod.Spec.NodeName == "" && pod.Labels[HoldForLabel] == "" && pod.Labels[SpilledLabel] == ""
		}))).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: workers, ReconciliationTimeout: reconcileTimeout}).
		Complete(s)
}

// Reconcile gathers, decides and acts on one pending pod.
func (s *Spiller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	d := s.deps
	var pod corev1.Pod
	if err := d.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName != "" || pod.Labels[HoldForLabel] != "" || pod.Labels[SpilledLabel] != "" {
		return reconcile.Result{}, nil
	}
	cand, err := gatherCandidate(ctx, d.Client, &pod)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := d.Clock.Now()
	cl, err := gatherCluster(ctx, d.Client, d.Config, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	dec := Decide(cand, cl, d.Config)
	if dec.Reason != ReasonNotPending {
		d.Metrics.Decisions.WithLabelValues(dec.Action.String(), dec.Reason).Inc()
	}
	if dec.BudgetWarning != "" {
		d.Recorder.Eventf(&pod, nil, corev1.EventTypeWarning, "InvalidSpillBudget", "Spill", dec.BudgetWarning)
	}
	switch dec.Action {
	case Spill:
		return reconcile.Result{}, s.spill(ctx, &pod, dec, now)
	case CannotSpill:
		d.Recorder.Eventf(&pod, nil, corev1.EventTypeWarning, "SpillImpossible", "Spill", dec.Message)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	default:
		return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
	}
}

// spill adds the toleration, the label, the spill time and a low deletion cost in one patch
// (conditional on the pod's resourceVersion), then creates the placeholder.
func (s *Spiller) spill(ctx context.Context, pod *corev1.Pod, dec Decision, now time.Time) error {
	d := s.deps
	if err := s.class.ensure(ctx); err != nil {
		return err
	}
	patch, err := Patch(pod, d.Config, now)
	if err != nil {
		return err
	}
	if err := d.Client.Patch(ctx, pod, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("spilling pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	d.Metrics.SpillLatency.Observe(dec.Waited.Seconds())
	d.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "Spilled", "Spill", dec.Message)
	log.FromContext(ctx).Info("spilled pod to serverless capacity", "pod", client.ObjectKeyFromObject(pod), "waited", dec.Waited, "expected", dec.Expected, "budget", dec.Budget)
	return createHold(ctx, d, pod, now)
}

// createHold creates the placeholder for a spilled pod (an existing one is kept).
func createHold(ctx context.Context, d Deps, pod *corev1.Pod, now time.Time) error {
	cfg := d.Config
	var err error
	if cfg.HoldImage, err = holdImage(ctx, d); err != nil {
		return err
	}
	hold := Placeholder(pod, cfg, now)
	reqs, err := spreadRequirements(ctx, d, pod)
	if err != nil {
		return err
	}
	hold.Spec.Affinity = withRequirements(hold.Spec.Affinity, reqs)
	if err := d.Client.Create(ctx, hold); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		d.Metrics.Holds.WithLabelValues("failed").Inc()
		d.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, "HoldFailed", "Hold", "could not create placeholder %s to hold room on a node: %v", hold.Name, err)
		return fmt.Errorf("creating placeholder %s/%s: %w", hold.Namespace, hold.Name, err)
	}
	d.Metrics.Holds.WithLabelValues("created").Inc()
	return nil
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch is the JSON patch that spills pod: it fails if the pod changed since it was read.
func Patch(pod *corev1.Pod, cfg Config, now time.Time) ([]byte, error) {
	tolerations := append(append([]corev1.Toleration{}, pod.Spec.Tolerations...), cfg.toleration())
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/resourceVersion", Value: pod.ResourceVersion},
		{Op: "add", Path: "/spec/tolerations", Value: tolerations},
	}
	ops = append(ops, mapAdds("/metadata/labels", pod.Labels, map[string]string{SpilledLabel: "true"})...)
	ops = append(ops, mapAdds("/metadata/annotations", pod.Annotations, map[string]string{
		SpilledAtAnnotation:       now.UTC().Format(time.RFC3339),
		PodDeletionCostAnnotation: SpilledDeletionCost,
	})...)
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding the spill patch: %w", err)
	}
	return b, nil
}

// mapAdds adds keys to the map at path (creating it when the object has none).
func mapAdds(path string, existing, add map[string]string) []jsonPatchOp {
	if existing == nil {
		return []jsonPatchOp{{Op: "add", Path: path, Value: add}}
	}
	ops := make([]jsonPatchOp, 0, len(add))
	for k, v := range add {
		ops = append(ops, jsonPatchOp{Op: "add", Path: path + "/" + escapePointer(k), Value: v})
	}
	return ops
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// priorityClass creates the placeholders' PriorityClass once.
type priorityClass struct {
	deps Deps
	mu   sync.Mutex
	done bool
}

func (p *priorityClass) ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil
	}
	var existing schedulingv1.PriorityClass
	err := p.deps.Client.Get(ctx, types.NamespacedName{Name: p.deps.Config.HoldPriorityClass}, &existing)
	switch {
	case err == nil:
		if existing.Value >= 0 {
			return fmt.Errorf("PriorityClass %s has value %d: placeholders need a negative one", existing.Name, existing.Value)
		}
	case apierrors.IsNotFound(err):
		if err := p.deps.Client.Create(ctx, HoldPriorityClass(p.deps.Config)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating PriorityClass %s: %w", p.deps.Config.HoldPriorityClass, err)
		}
	default:
		return fmt.Errorf("reading PriorityClass %s: %w", p.deps.Config.HoldPriorityClass, err)
	}
	p.done = true
	return nil
}
