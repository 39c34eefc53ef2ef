package nodeautoscaler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	karpoptions "sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
)

// Provider names accepted by --cloud-provider.
const (
	ProviderKwok         = "kwok"
	ProviderAlibabaCloud = "alibabacloud"
)

// Providers lists the cloud providers this build can run.
var Providers = []string{ProviderKwok, ProviderAlibabaCloud}

// AlibabaCloudOptions configure the Alibaba Cloud provider.
type AlibabaCloudOptions struct {
	// Region is where instances launch (cn-hangzhou).
	Region string
	// Endpoint overrides the ECS API host (a VPC endpoint, or a test fake); Scheme is https or http.
	Endpoint, Scheme string
	// CredentialsDir is a mounted Secret with access-key-id, access-key-secret (and
	// security-token); RRSA uses ACK's RAM Roles for Service Accounts; neither: the SDK's default
	// chain (environment, then the node's RAM role).
	CredentialsDir string
	RRSA           bool
	// ClusterName tags the instances so that List finds this cluster's.
	ClusterName string
}

// Options are Lockstep's flags of the node-autoscaler. They join Karpenter's own flags (its
// options.Injectable): one command line, one --help.
type Options struct {
	// CloudProvider selects the provider (Providers).
	CloudProvider string
	// Kubeconfig is the kubeconfig outside a cluster (sets KUBECONFIG, which Karpenter reads).
	Kubeconfig string
	// Spill is off when false: Karpenter alone.
	Spill bool
	// SpillConfig tunes spill and move-back.
	SpillConfig spill.Config
	// AlibabaCloud configures --cloud-provider=alibabacloud.
	AlibabaCloud AlibabaCloudOptions

	virtualSelector, virtualTaint string
	holdPriority                  int
}

type optionsKey struct{}

// AddFlags registers Lockstep's flags on Karpenter's flag set.
func (o *Options) AddFlags(fs *karpoptions.FlagSet) {
	def := spill.DefaultConfig()
	c := &o.SpillConfig
	fs.StringVar(&o.CloudProvider, "cloud-provider", ProviderKwok, "cloud provider that launches nodes: "+strings.Join(Providers, ", "))
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig to use outside a cluster (the KUBECONFIG variable works too)")
	a := &o.AlibabaCloud
	fs.StringVar(&a.Region, "alibabacloud-region", os.Getenv("ALIBABA_CLOUD_REGION_ID"), "Alibaba Cloud region the nodes launch in (alibabacloud provider)")
	fs.StringVar(&a.Endpoint, "alibabacloud-endpoint", "", "ECS API host, e.g. ecs-vpc.cn-hangzhou.aliyuncs.com (empty: the SDK's for the region)")
	fs.StringVar(&a.Scheme, "alibabacloud-scheme", "https", "scheme of the ECS API: https, or http for a local proxy")
	fs.StringVar(&a.CredentialsDir, "alibabacloud-credentials-dir", "", "directory of a mounted Secret with access-key-id and access-key-secret (and security-token)")
	fs.BoolVar(&a.RRSA, "alibabacloud-rrsa", false, "take credentials from ACK's RAM Roles for Service Accounts (the pod identity webhook's environment)")
	fs.StringVar(&a.ClusterName, "cluster-name", "", "name of the cluster, tagged on the instances the alibabacloud provider launches")
	fs.BoolVar(&o.Spill, "spill", true, "spill pending pods onto serverless virtual nodes while nodes boot, and move them back")
	fs.DurationVar(&c.Budget, "spill-budget", def.Budget, "how long a pending pod may expect to wait for a node before it is spilled (pods and namespaces override it with the "+spill.BudgetAnnotation+" annotation)")
	fs.DurationVar(&c.DefaultBootTime, "default-boot-time", def.DefaultBootTime, "a NodePool's boot time until one of its nodes was seen booting")
	fs.StringVar(&o.virtualSelector, "virtual-node-selector", def.VirtualNodeSelector.String(), "label selector of the serverless virtual nodes")
	fs.StringVar(&o.virtualTaint, "virtual-node-taint", taintString(def.VirtualNodeTaint), "taint of the serverless virtual nodes, key[=value]:effect; spilled pods tolerate it")
	fs.DurationVar(&c.HoldDuration, "hold-duration", def.HoldDuration, "longest time a placeholder holds room on real capacity for a spilled pod")
	fs.StringVar(&c.HoldImage, "hold-image", def.HoldImage, "image of the placeholder pods; empty takes the sandbox (pause) image the real nodes report, which they already hold (registry.k8s.io/pause:3.10 until one reports it)")
	fs.DurationVar(&c.HoldStartTimeout, "hold-start-timeout", def.HoldStartTimeout, "how long a placeholder may go without running (unscheduled, or its image not pulled) before a Warning event on the spilled pod says so")
	fs.StringVar(&c.HoldPriorityClass, "hold-priority-class", def.HoldPriorityClass, "PriorityClass of the placeholder pods (created when missing)")
	fs.IntVar(&o.holdPriority, "hold-priority", int(def.HoldPriority), "value of the placeholders' PriorityClass (negative: every workload preempts placeholders)")
	fs.BoolVar(&c.MoveBack, "move-back", def.MoveBack, "move spilled pods back onto real nodes once those are Ready")
	fs.IntVar(&c.MaxMovesInFlight, "max-moves-in-flight", def.MaxMovesInFlight, "spilled pods being moved back at once, in total")
	fs.IntVar(&c.MaxMovesPerWorkload, "max-moves-per-workload", def.MaxMovesPerWorkload, "spilled pods being moved back at once, per workload")
	fs.DurationVar(&c.MoveBackAfter, "move-back-after", def.MoveBackAfter, "how long a spilled pod runs on serverless capacity before it may move back")
}

// Parse parses the flags and checks them.
func (o *Options) Parse(fs *karpoptions.FlagSet, args ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return fmt.Errorf("parsing flags: %w", err)
	}
	if !slices.Contains(Providers, o.CloudProvider) {
		return fmt.Errorf("--cloud-provider %q: want one of %s", o.CloudProvider, strings.Join(Providers, ", "))
	}
	if o.CloudProvider == ProviderAlibabaCloud {
		a := o.AlibabaCloud
		switch {
		case a.Region == "":
			return errors.New("--alibabacloud-region (or ALIBABA_CLOUD_REGION_ID) is required with --cloud-provider=alibabacloud")
		case a.ClusterName == "":
			return errors.New("--cluster-name is required with --cloud-provider=alibabacloud: it tags the instances this cluster owns")
		case a.CredentialsDir != "" && a.RRSA:
			return errors.New("--alibabacloud-credentials-dir and --alibabacloud-rrsa: set one, not both")
		case a.Scheme != "https" && a.Scheme != "http":
			return fmt.Errorf("--alibabacloud-scheme %q: https or http", a.Scheme)
		}
	}
	if o.Kubeconfig != "" {
		if err := os.Setenv("KUBECONFIG", o.Kubeconfig); err != nil {
			return fmt.Errorf("--kubeconfig: %w", err)
		}
	}
	sel, err := labels.Parse(o.virtualSelector)
	if err != nil {
		return fmt.Errorf("--virtual-node-selector %q: %w", o.virtualSelector, err)
	}
	o.SpillConfig.VirtualNodeSelector = sel
	if o.holdPriority < -1_000_000_000 || o.holdPriority > 1_000_000_000 {
		return fmt.Errorf("--hold-priority %d: out of PriorityClass range", o.holdPriority)
	}
	o.SpillConfig.HoldPriority = int32(o.holdPriority)
	if o.SpillConfig.VirtualNodeTaint, err = parseTaint(o.virtualTaint); err != nil {
		return fmt.Errorf("--virtual-node-taint: %w", err)
	}
	if err := o.SpillConfig.Validate(); err != nil {
		return fmt.Errorf("spill flags: %w", err)
	}
	return nil
}

// ToContext puts the options in ctx.
func (o *Options) ToContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, optionsKey{}, o)
}

// FromContext returns the options Parse put in ctx (nil when none).
func FromContext(ctx context.Context) *Options {
	o, _ := ctx.Value(optionsKey{}).(*Options)
	return o
}

func taintString(t corev1.Taint) string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + string(t.Effect)
}

// parseTaint reads key[=value]:effect.
func parseTaint(s string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || effect == "" {
		return corev1.Taint{}, fmt.Errorf("%q: want key[=value]:effect", s)
	}
	key, value, _ := strings.Cut(kv, "=")
	return corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect)}, nil
}

func injectables() []karpoptions.Injectable { return karpoptions.Injectables }

// ValidateArgs parses args with every flag set Karpenter will parse at start-up (its own, its
// providers', Lockstep's) and returns the first error, so that a wrong flag ends the program with
// a message instead of Karpenter's panic.
func ValidateArgs(args []string) error {
	fs := &karpoptions.FlagSet{FlagSet: flag.NewFlagSet("node-autoscaler", flag.ContinueOnError)}
	fs.SetOutput(io.Discard) // the error is returned
	for _, opt := range injectables() {
		opt.AddFlags(fs)
	}
	for _, opt := range injectables() {
		if err := opt.Parse(fs, args...); err != nil {
			return err
		}
	}
	return nil
}
