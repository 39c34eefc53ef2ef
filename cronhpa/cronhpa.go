// Package cronhpa is scheduled scaling for sales events: a drop-in replacement for Alibaba
// Cloud's CronHorizontalPodAutoscaler (autoscaling.alibabacloud.com/v1beta1). Its API is in
// apis/v1beta1, pure schedule logic in schedule/, the reconciler in controller/ and the
// admission webhook in webhook/. New wires them into one controller-runtime manager.
package cronhpa

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/cronhpa/controller"
	cronwebhook "github.com/lockstep-dev/lockstep/cronhpa/webhook"
	"github.com/lockstep-dev/lockstep/internal/eventrec"
	"github.com/lockstep-dev/lockstep/internal/leaderelect"
	"github.com/lockstep-dev/lockstep/internal/scaleclient"
)

// Options configure the cronhpa controller. Zero values take the defaults of the flags in
// cmd/cronhpa.
type Options struct {
	// MetricsAddr serves Prometheus metrics ("0" disables).
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz ("0" disables).
	ProbeAddr string
	// PprofAddr serves Go's /debug/pprof profiles (empty or "0" disables).
	PprofAddr string
	// LeaderElection makes only one replica act; on by default in cmd/cronhpa.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; the in-cluster namespace when empty.
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod time the leader election (defaults 10s,
	// 7s, 1s: a crashed leader is replaced within about 12.4 s). On
	// shutdown the leader releases the lease, so a rolling update hands over at once.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// WebhookPort and WebhookCertDir serve the validating webhook (tls.crt, tls.key);
	// WebhookPort 0 disables it.
	WebhookPort    int
	WebhookHost    string
	WebhookCertDir string
	// DefaultLocation applies to objects without spec.timezone.
	DefaultLocation *time.Location
	// StartingDeadline is how late a missed time may still run.
	StartingDeadline time.Duration
	// Workers is the number of objects reconciled in parallel.
	Workers int
	// Clock is the time source; the real clock when nil.
	Clock clock.Clock
	// Registry receives the metrics; controller-runtime's registry when nil.
	Registry prometheus.Registerer
	// SkipNameValidation allows a second controller of the same name in one process, for
	// tests that restart the controller.
	SkipNameValidation bool
}

// Leader election defaults (see package leaderelect): a crashed leader is replaced within
// about 12.4 s.
const (
	DefaultLeaseDuration = leaderelect.DefaultLeaseDuration
	DefaultRenewDeadline = leaderelect.DefaultRenewDeadline
	DefaultRetryPeriod   = leaderelect.DefaultRetryPeriod
)

// ValidateLeaderElection checks the leader election timing the way client-go requires it:
// lease > renew deadline > 1.2 × retry period > 0.
func ValidateLeaderElection(lease, renew, retry time.Duration) error {
	return leaderelect.Validate(lease, renew, retry)
}

// Scheme returns the kinds the controller reads and writes through its client:
// CronHorizontalPodAutoscaler, autoscaling/v2 HPAs and core/v1. Registering only these, rather
// than every built-in API, keeps the type registry out of the controller's memory.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, autoscalingv2.AddToScheme, v1beta1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// complete fills the defaults and checks the leader election timing.
func (o *Options) complete() error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Registry == nil {
		o.Registry = crmetrics.Registry
	}
	if o.DefaultLocation == nil {
		o.DefaultLocation = time.UTC
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.StartingDeadline <= 0 {
		o.StartingDeadline = 5 * time.Minute
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	return ValidateLeaderElection(o.LeaseDuration, o.RenewDeadline, o.RetryPeriod)
}

// New builds the controller manager: the reconciler, the webhook and the probes.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	mgrOpts := ctrl.Options{
		Scheme: scheme,
		// managedFields are most of a small object's size and the controller never reads them:
		// dropping them from the cache keeps 10,000 objects well inside 100 MiB.
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.ProbeAddr,
		PprofBindAddress:        opts.PprofAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "lockstep-cronhpa",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Step down on SIGTERM: the next replica takes over without waiting for the lease to
		// expire. Safe because the manager returns only after every reconcile has finished.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
	}
	if opts.WebhookPort != 0 {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: opts.WebhookHost, Port: opts.WebhookPort, CertDir: opts.WebhookCertDir})
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	scaler, err := newScaler(cfg, mgr)
	if err != nil {
		return nil, err
	}
	recorder, stopEvents, err := eventrec.New(cfg, scheme, "cron-horizontal-pod-autoscaler")
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(stopEvents); err != nil {
		return nil, fmt.Errorf("adding the event broadcaster: %w", err)
	}
	rec := &controller.Reconciler{
		Client:          mgr.GetClient(),
		Scaler:          scaler,
		Clock:           opts.Clock,
		Recorder:        recorder,
		Metrics:         controller.NewMetrics(opts.Registry, mgr.GetCache()),
		DefaultLocation: opts.DefaultLocation,
		DefaultDeadline: opts.StartingDeadline,
		Alarm:           controller.NewAlarm(opts.Clock),
	}
	if err := rec.SetupWithManager(mgr, opts.Workers, opts.SkipNameValidation); err != nil {
		return nil, fmt.Errorf("setting up the controller: %w", err)
	}
	if opts.WebhookPort != 0 {
		v := &cronwebhook.Validator{Resolver: scaler, DefaultLocation: opts.DefaultLocation}
		if err := v.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the webhook: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding readiness check: %w", err)
	}
	return mgr, nil
}

func newScaler(cfg *rest.Config, mgr ctrl.Manager) (*controller.Scaler, error) {
	scales, err := scaleclient.New(cfg, mgr.GetRESTMapper())
	if err != nil {
		return nil, err
	}
	return &controller.Scaler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Mapper: mgr.GetRESTMapper(), Scales: scales}, nil
}
