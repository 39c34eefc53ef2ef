package nodeautoscaler

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/awslabs/operatorpkg/controller"
	"k8s.io/client-go/kubernetes/scheme"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay"
	"sigs.k8s.io/karpenter/pkg/controllers"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator"
	karpoptions "sigs.k8s.io/karpenter/pkg/operator/options"

	kwokprovider "sigs.k8s.io/karpenter/kwok/cloudprovider"
	// Registers the kwok provider's flags (--instance-types-file-path) with Karpenter's.
	_ "sigs.k8s.io/karpenter/kwok/options"

	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
)

// EventSource is the component name on Lockstep's events.
const EventSource = "lockstep-node-autoscaler"

func init() {
	karpoptions.Injectables = append(karpoptions.Injectables, &Options{})
	operator.AppName = "lockstep-node-autoscaler"
}

// Run parses the command line (Karpenter's flags and Lockstep's), starts Karpenter's operator and
// controllers with the selected cloud provider and Lockstep's spill controllers, and returns when
// SIGTERM or SIGINT stops them (the leader releases its lease first).
func Run() error {
	if err := ValidateArgs(os.Args[1:]); err != nil {
		return err
	}
	ctx, op := operator.NewOperator()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := FromContext(ctx)

	provider, err := newProvider(ctx, op, opts.CloudProvider)
	if err != nil {
		return err
	}
	decorated := overlay.Decorate(provider, op.GetClient(), op.InstanceTypeStore)
	cluster := state.NewCluster(op.Clock, op.GetClient(), decorated)
	ctrls := controllers.NewControllers(ctx, op.Manager, op.Clock, op.GetClient(), op.EventRecorder,
		decorated, provider, cluster, op.InstanceTypeStore)
	if opts.Spill {
		recorder, flush, err := eventrec.New(op.GetConfig(), scheme.Scheme, EventSource)
		if err != nil {
			return err
		}
		if err := op.Add(flush); err != nil {
			return fmt.Errorf("adding the event flusher: %w", err)
		}
		metrics, err := spill.NewMetrics(crmetrics.Registry)
		if err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		ctrls = append(ctrls, spill.NewControllers(spill.Deps{
			Client: op.GetClient(), Clock: op.Clock, Recorder: recorder, Metrics: metrics, Config: opts.SpillConfig,
		})...)
	}
	for _, c := range ctrls {
		if err := c.Register(ctx, op.Manager); err != nil {
			return fmt.Errorf("registering controller %s: %w", controllerName(c), err)
		}
	}
	if err := op.Manager.Start(ctx); err != nil {
		return fmt.Errorf("running: %w", err)
	}
	return nil
}

func controllerName(c controller.Controller) string { return fmt.Sprintf("%T", c) }

// newProvider builds the selected cloud provider.
func newProvider(ctx context.Context, op *operator.Operator, name string) (cloudprovider.CloudProvider, error) {
	switch name {
	case ProviderKwok:
		types, err := kwokprovider.ConstructInstanceTypes(ctx)
		if err != nil {
			return nil, fmt.Errorf("kwok instance types: %w", err)
		}
		return kwokprovider.NewCloudProvider(ctx, op.GetClient(), types), nil
	default:
		return nil, fmt.Errorf("unknown cloud provider %q", name)
	}
}
