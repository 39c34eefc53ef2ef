package nodeautoscaler

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/awslabs/operatorpkg/controller"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
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

	alibabacloudcreds "github.com/lockstep-dev/lockstep/internal/alibabacloud"
	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud"
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

	recorder, flush, err := eventrec.New(op.GetConfig(), scheme.Scheme, EventSource)
	if err != nil {
		return err
	}
	if err := op.Add(flush); err != nil {
		return fmt.Errorf("adding the event flusher: %w", err)
	}
	provider, extra, err := newProvider(ctx, op, opts, recorder)
	if err != nil {
		return err
	}
	decorated := overlay.Decorate(provider, op.GetClient(), op.InstanceTypeStore)
	cluster := state.NewCluster(op.Clock, op.GetClient(), decorated)
	ctrls := controllers.NewControllers(ctx, op.Manager, op.Clock, op.GetClient(), op.EventRecorder,
		decorated, provider, cluster, op.InstanceTypeStore)
	ctrls = append(ctrls, extra...)
	if opts.Spill {
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

// newProvider builds the selected cloud provider and the controllers it brings.
func newProvider(ctx context.Context, op *operator.Operator, opts *Options, recorder events.EventRecorder) (cloudprovider.CloudProvider, []controller.Controller, error) {
	switch opts.CloudProvider {
	case ProviderKwok:
		types, err := kwokprovider.ConstructInstanceTypes(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("kwok instance types: %w", err)
		}
		return kwokprovider.NewCloudProvider(ctx, op.GetClient(), types), nil, nil
	case ProviderAlibabaCloud:
		a := opts.AlibabaCloud
		creds := alibabacloudcreds.Credentials{SecretDir: a.CredentialsDir}
		if a.RRSA {
			creds.RRSA = &alibabacloudcreds.RRSA{}
		}
		cp, err := creds.Provider(a.Region, EventSource)
		if err != nil {
			return nil, nil, fmt.Errorf("alibabacloud credentials: %w", err)
		}
		api, err := alibabacloud.NewAPI(alibabacloud.ClientConfig{Region: a.Region, Endpoint: a.Endpoint, Scheme: a.Scheme, Clock: op.Clock}, cp)
		if err != nil {
			return nil, nil, err
		}
		priceErrors := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockstep_node_autoscaler_alibabacloud_price_errors_total",
			Help: "Instance types left without a price by a failed DescribePrice call during a catalogue refresh (not offered until they have one).",
		})
		if err := crmetrics.Registry.Register(priceErrors); err != nil {
			return nil, nil, fmt.Errorf("registering the catalogue's metrics: %w", err)
		}
		catalog := alibabacloud.NewCatalog(api, op.Clock, alibabacloud.CatalogConfig{
			PriceErrors: priceErrors, Log: ctrl.Log.WithName("alibabacloud-catalog"),
		})
		provider := alibabacloud.NewCloudProvider(op.GetClient(), api, catalog, a.Region, a.ClusterName)
		return provider, []controller.Controller{&alibabacloud.NodeClassController{Client: op.GetClient(), API: api, Recorder: recorder}}, nil
	default:
		return nil, nil, fmt.Errorf("unknown cloud provider %q", opts.CloudProvider)
	}
}
