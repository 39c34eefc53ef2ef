// Package vpainplace resizes running pods in place through the pods/resize subresource, driven
// by the standard autoscaling.k8s.io/v1 VerticalPodAutoscaler API, without restarts or evictions.
// Its recommender (usage histories → status.recommendation) is in recommender/, the pure resize
// decisions in resizer/, and the controllers that read, decide and act in controller/. New wires
// them into one controller-runtime manager.
package vpainplace

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/rest"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/internal/leaderelect"
	"github.com/lockstep-dev/lockstep/internal/scaleclient"
	"github.com/lockstep-dev/lockstep/vpa-inplace/controller"
	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// DefaultRecommenderName is the name VPAs put in spec.recommenders to be handled by Lockstep.
const DefaultRecommenderName = "lockstep"

// Options configure vpa-inplace. Zero values take the defaults of the flags in cmd/vpa-inplace.
type Options struct {
	// MetricsAddr, ProbeAddr and PprofAddr serve Prometheus metrics, /healthz and /readyz, and
	// Go's profiles ("0" disables).
	MetricsAddr, ProbeAddr, PprofAddr string
	// LeaderElection makes only one replica act; Namespace holds the lease.
	LeaderElection          bool
	LeaderElectionNamespace string
	// LeaderElectionTiming times the election (leaderelect.Defaults when zero).
	LeaderElectionTiming leaderelect.Timing
	// RecommenderName is the spec.recommenders name handled; HandleUnnamed also takes VPAs that
	// name no recommender (leave it off where upstream's recommender runs).
	RecommenderName string
	HandleUnnamed   bool
	// Recommender tunes the recommendations (recommender.DefaultConfig when zero).
	Recommender recommender.Config
	// Resizer tunes the resize decisions (resizer.DefaultConfig when zero).
	Resizer resizer.Config
	// RecommenderDisabled runs only the updater: recommendations come from another recommender
	// that writes status for VPAs naming RecommenderName.
	RecommenderDisabled bool
	// RecommendInterval is how often usage is read; CheckpointInterval how often histories are saved.
	RecommendInterval, CheckpointInterval time.Duration
	// MaxPerWorkload and MaxInFlight bound resizes in flight per workload and in total.
	MaxPerWorkload, MaxInFlight int
	// Workers is the number of VPAs reconciled in parallel.
	Workers int
	// Resync is how often a VPA is reconciled without an event.
	Resync time.Duration
	// VirtualNodeSelector and VirtualNodeTaintKey recognise serverless virtual nodes.
	VirtualNodeSelector labels.Selector
	VirtualNodeTaintKey string
	// Clock is the time source; the real clock when nil.
	Clock clock.WithTicker
	// Registry receives the metrics; controller-runtime's registry when nil.
	Registry prometheus.Registerer
	// SkipNameValidation allows a second controller of the same name in one process (tests).
	SkipNameValidation bool
}

// complete fills the defaults and validates.
func (o *Options) complete() error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Registry == nil {
		o.Registry = crmetrics.Registry
	}
	if o.LeaderElectionTiming == (leaderelect.Timing{}) {
		o.LeaderElectionTiming = leaderelect.Defaults()
	}
	if o.RecommenderName == "" {
		o.RecommenderName = DefaultRecommenderName
	}
	if o.Recommender == (recommender.Config{}) {
		o.Recommender = recommender.DefaultConfig()
	}
	if o.Resizer == (resizer.Config{}) {
		o.Resizer = resizer.DefaultConfig()
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{{&o.RecommendInterval, 15 * time.Second}, {&o.CheckpointInterval, time.Minute}, {&o.Resync, 30 * time.Second}}
	for _, d := range defaults {
		if *d.d <= 0 {
			*d.d = d.def
		}
	}
	if o.MaxPerWorkload <= 0 {
		o.MaxPerWorkload = 10
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 200
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.VirtualNodeSelector == nil {
		o.VirtualNodeSelector = labels.Nothing()
	}
	if err := o.Recommender.Validate(); err != nil {
		return fmt.Errorf("recommender: %w", err)
	}
	if o.Resizer.Hysteresis < 0 || o.Resizer.MemoryHeadroom < 0 || o.Resizer.DownscaleCooldown < 0 || o.Resizer.DeferredBackoff < 0 {
		return fmt.Errorf("resizer: hysteresis, memory headroom, cooldown and backoff must not be negative")
	}
	t := o.LeaderElectionTiming
	return leaderelect.Validate(t.LeaseDuration, t.RenewDeadline, t.RetryPeriod)
}

// Scheme returns the kinds vpa-inplace reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme, vpav1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// New builds the manager: recommender, updater, probes and metrics.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	t := opts.LeaderElectionTiming
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.ProbeAddr,
		PprofBindAddress:              opts.PprofAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              "lockstep-vpa-inplace",
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &t.LeaseDuration,
		RenewDeadline:                 &t.RenewDeadline,
		RetryPeriod:                   &t.RetryPeriod,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	targets, err := NewTargets(cfg, mgr)
	if err != nil {
		return nil, err
	}
	mc, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the metrics.k8s.io client: %w", err)
	}
	recorder, stopEvents, err := eventrec.New(cfg, scheme, "vpa-inplace")
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(stopEvents); err != nil {
		return nil, fmt.Errorf("adding the event broadcaster: %w", err)
	}
	model := controller.NewModel(opts.Recommender)
	metrics := controller.NewMetrics(opts.Registry)
	log := ctrl.Log.WithName("vpa-inplace")
	rec := &controller.Recommender{
		Client: mgr.GetClient(), Usage: podMetrics{mc}, Targets: targets, Model: model, Clock: opts.Clock,
		Recorder: recorder, Metrics: metrics, Log: log.WithName("recommender"),
		Name: opts.RecommenderName, HandleUnnamed: opts.HandleUnnamed,
		Interval: opts.RecommendInterval, CheckpointInterval: opts.CheckpointInterval,
	}
	if !opts.RecommenderDisabled {
		if err := mgr.Add(rec); err != nil {
			return nil, fmt.Errorf("adding the recommender: %w", err)
		}
	}
	upd := &controller.Updater{
		Client: mgr.GetClient(), Targets: targets, Model: model, Clock: opts.Clock, Recorder: recorder,
		Metrics: metrics, Log: log.WithName("updater"), Config: opts.Resizer,
		Virtual: controller.VirtualNodes{Selector: opts.VirtualNodeSelector, TaintKey: opts.VirtualNodeTaintKey},
		Name:    opts.RecommenderName, HandleUnnamed: opts.HandleUnnamed,
		MaxPerWorkload: opts.MaxPerWorkload, MaxInFlight: opts.MaxInFlight, Resync: opts.Resync,
	}
	if err := upd.SetupWithManager(mgr, opts.Workers, opts.SkipNameValidation); err != nil {
		return nil, fmt.Errorf("setting up the updater: %w", err)
	}
	if err := mgr.Add(upd); err != nil {
		return nil, fmt.Errorf("adding the updater's janitor: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding readiness check: %w", err)
	}
	return mgr, nil
}

// NewTargets returns the target resolver on the manager's cache, RESTMapper and a scale client.
func NewTargets(cfg *rest.Config, mgr ctrl.Manager) (*controller.Targets, error) {
	scales, err := scaleclient.New(cfg, mgr.GetRESTMapper())
	if err != nil {
		return nil, err
	}
	return &controller.Targets{Client: mgr.GetClient(), Mapper: mgr.GetRESTMapper(), Scales: scales}, nil
}

// podMetrics lists every pod's usage from metrics.k8s.io.
type podMetrics struct{ c metricsclient.Interface }

func (p podMetrics) List(ctx context.Context) ([]metricsv1beta1.PodMetrics, error) {
	l, err := p.c.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pod metrics: %w", err)
	}
	return l.Items, nil
}
