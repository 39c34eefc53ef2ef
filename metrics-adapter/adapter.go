package metricsadapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/server/healthz"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/clock"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"

	"github.com/lockstep-dev/lockstep/metrics-adapter/frontproxy"
	"github.com/lockstep-dev/lockstep/metrics-adapter/provider"
	"github.com/lockstep-dev/lockstep/metrics-adapter/scrape"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/alibaba"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/prometheus"
)

// Options configure Run.
type Options struct {
	Config Config
	Log    logr.Logger
	// Clock drives scrapes and staleness; the real clock when nil.
	Clock clock.WithTicker
	// HTTPClient scrapes targets; a default client when nil.
	HTTPClient *http.Client
}

// Run serves the custom and external metrics APIs until ctx ends. base carries the API
// server's flags (secure serving, delegated authentication and authorization, kubeconfig).
func Run(ctx context.Context, base *basecmd.AdapterBase, o Options) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	cfg := o.Config
	informers, err := base.Informers()
	if err != nil {
		return fmt.Errorf("creating informers: %w", err)
	}
	pods := informers.Core().V1().Pods()
	services := informers.Core().V1().Services()
	// Deployments and Ingresses are only checked for existence: keep their names alone.
	deployments := informers.Apps().V1().Deployments()
	ingresses := informers.Networking().V1().Ingresses()
	if err := setTransforms(map[cache.SharedIndexInformer]cache.TransformFunc{
		pods.Informer(): stripManagedFields, services.Informer(): stripManagedFields,
		deployments.Informer(): nameOnly, ingresses.Informer(): nameOnly,
	}); err != nil {
		return err
	}
	// Enough samples for the window at the scrape interval, with room for jitter.
	capacity := int(cfg.Window.Duration/cfg.ScrapeInterval.Duration)*3/2 + 2
	store := series.NewStore(capacity)
	var scraper *scrape.Scraper
	obs := newObservability(legacyregistry.Registerer(), store.Len, func() int { return scraper.Targets() })
	scraper, err = scrape.New(scrape.Options{
		Store: store, Clock: o.Clock, Client: o.HTTPClient, Interval: cfg.ScrapeInterval.Duration, Timeout: cfg.ScrapeTimeout.Duration,
		Profiles: cfg.AllProfiles(), SeriesLimit: cfg.SeriesLimit, Services: serviceLister{services.Lister()}, Observer: obs, Log: o.Log.WithName("scrape"),
	})
	if err != nil {
		return err
	}
	index := objectIndex{services: services.Lister(), pods: pods.Lister(), deployments: deployments.Lister(), ingresses: ingresses.Lister()}
	source, err := remoteSources(ctx, cfg, o, obs, store, index)
	if err != nil {
		return err
	}
	prov := provider.New(provider.Options{
		Source: source, Pods: podLister{pods.Lister()}, Services: serviceLister{services.Lister()}, Clock: o.Clock,
		Window: cfg.Window.Duration, StaleAfter: cfg.StaleAfter.Duration, Observe: obs.api, ObserveAge: obs.age,
	})
	base.WithCustomMetrics(prov)
	base.WithExternalMetrics(prov)
	if cfg.FrontProxyVerification == "cached" {
		if err := cacheFrontProxy(base, o.Clock, obs); err != nil {
			return err
		}
	}
	server, err := base.Server()
	if err != nil {
		return fmt.Errorf("building the API server: %w", err)
	}
	synced := func() bool {
		return pods.Informer().HasSynced() && services.Informer().HasSynced() && deployments.Informer().HasSynced() && ingresses.Informer().HasSynced()
	}
	if err := server.GenericAPIServer.AddReadyzChecks(healthz.NamedCheck("informers-synced", func(*http.Request) error {
		if !synced() {
			return errors.New("pod, service, deployment and ingress informers have not synced")
		}
		return nil
	})); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}

	trigger := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, n any) { poke(n) }, DeleteFunc: poke,
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	informers.Start(ctx.Done())
	d := &discoverer{cfg: cfg, pods: pods.Lister(), scraper: scraper, clock: o.Clock, log: o.Log.WithName("discovery")}
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced, services.Informer().HasSynced) {
			return
		}
		d.run(ctx, trigger)
	}()
	go forget(ctx, store, o.Clock, cfg)
	defer scraper.Wait()
	if err := server.GenericAPIServer.PrepareRun().RunWithContext(ctx); err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// cacheFrontProxy puts the front-proxy certificate cache in front of the authenticator the
// library built from the delegated authentication flags.
func cacheFrontProxy(base *basecmd.AdapterBase, clk clock.PassiveClock, obs *observability) error {
	cfg, err := base.Config()
	if err != nil {
		return fmt.Errorf("building the API server configuration: %w", err)
	}
	auth := &cfg.GenericConfig.Authentication
	if auth.Authenticator == nil || auth.RequestHeaderConfig == nil {
		return nil // no delegated authentication (--authentication-skip-lookup without a CA)
	}
	auth.Authenticator = frontproxy.New(auth.Authenticator, auth.RequestHeaderConfig, frontproxy.Options{Clock: clk, Observe: obs.frontProxyAuth})
	return nil
}

// discoverer keeps the scrape loops in line with the pods.
type discoverer struct {
	cfg      Config
	pods     corelisters.PodLister
	scraper  *scrape.Scraper
	clock    clock.WithTicker
	log      logr.Logger
	lastErrs string
}

// minSyncGap spaces discoveries out when pods change constantly.
const minSyncGap = time.Second

func (d *discoverer) run(ctx context.Context, trigger <-chan struct{}) {
	ticker := d.clock.NewTicker(d.cfg.ScrapeInterval.Duration)
	defer ticker.Stop()
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		case <-ticker.C():
		}
		select {
		case <-ctx.Done():
			return
		case <-d.clock.After(minSyncGap):
		}
	}
}

func (d *discoverer) sync(ctx context.Context) {
	all, err := d.pods.List(labels.Everything())
	if err != nil {
		d.log.Error(err, "Listing pods")
		return
	}
	appProfile := d.cfg.AppProfile
	if appProfile == "none" {
		appProfile = ""
	}
	targets, errs := scrape.Discover(all, d.cfg.Ingress, appProfile)
	if msg := fmt.Sprint(errs); len(errs) > 0 && msg != d.lastErrs {
		d.log.Info("Some pods cannot be scraped", "problems", msg)
		d.lastErrs = msg
	}
	d.scraper.Sync(ctx, targets)
}

// forget drops series that have not been scraped for a window plus the staleness limit.
func forget(ctx context.Context, store *series.Store, clk clock.WithTicker, cfg Config) {
	ticker := clk.NewTicker(cfg.ScrapeInterval.Duration)
	defer ticker.Stop()
	keep := cfg.Window.Duration + cfg.StaleAfter.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
			store.Forget(clk.Now().Add(-keep).UnixMilli())
		}
	}
}

type podLister struct{ l corelisters.PodLister }

// PodNames implements provider.PodLister.
func (p podLister) PodNames(namespace string, selector labels.Selector) ([]string, error) {
	pods, err := p.l.Pods(namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	out := make([]string, 0, len(pods))
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodRunning {
			out = append(out, pod.Name)
		}
	}
	return out, nil
}

type serviceLister struct{ l corelisters.ServiceLister }

// ServiceExists implements profile.Services.
func (s serviceLister) ServiceExists(namespace, name string) bool {
	_, err := s.l.Services(namespace).Get(name)
	return err == nil
}

func setTransforms(transforms map[cache.SharedIndexInformer]cache.TransformFunc) error {
	for inf, fn := range transforms {
		if err := inf.SetTransform(fn); err != nil {
			return fmt.Errorf("setting an informer transform: %w", err)
		}
	}
	return nil
}

// objectIndex answers provider.ObjectIndex from the informers' caches. HTTPRoutes are not
// watched (the Gateway API may not be installed): their existence is unknown.
type objectIndex struct {
	services    corelisters.ServiceLister
	pods        corelisters.PodLister
	deployments appslisters.DeploymentLister
	ingresses   networkinglisters.IngressLister
}

// Exists implements provider.ObjectIndex.
func (x objectIndex) Exists(o series.Object) (exists, known bool) {
	var err error
	switch o.Kind {
	case series.ServiceObject:
		_, err = x.services.Services(o.Namespace).Get(o.Name)
	case series.PodObject:
		_, err = x.pods.Pods(o.Namespace).Get(o.Name)
	case series.WorkloadObject:
		_, err = x.deployments.Deployments(o.Namespace).Get(o.Name)
	case series.IngressObject:
		_, err = x.ingresses.Ingresses(o.Namespace).Get(o.Name)
	default:
		return false, false
	}
	return err == nil, err == nil || apierrors.IsNotFound(err)
}

// nameOnly keeps an object's identity and drops the rest, for informers that only answer
// whether an object exists.
func nameOnly(obj any) (any, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name, UID: o.UID, ResourceVersion: o.ResourceVersion}}, nil
	case *networkingv1.Ingress:
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name, UID: o.UID, ResourceVersion: o.ResourceVersion}}, nil
	}
	return obj, nil
}

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// remoteSources chains the scraped store with the configured remote sources, started in the
// background: explicit per-object mappings (CloudMonitor, ARMS) before templated PromQL. The
// remote sources are asked only about objects that exist.
func remoteSources(ctx context.Context, cfg Config, o Options, obs *observability, store *series.Store, index provider.ObjectIndex) (provider.Source, error) {
	chain := provider.Chain{store}
	var cloud *alibaba.CredentialSource
	if cfg.AlibabaCloud != nil {
		srcs, creds, err := alibaba.New(*cfg.AlibabaCloud, alibaba.Deps{Clock: o.Clock, Log: o.Log.WithName("alibaba"), Observer: obs.source,
			MaxQueries: cfg.MaxRemoteQueries, Evicted: obs.evictions})
		if err != nil {
			return nil, err
		}
		cloud = creds
		for _, s := range srcs {
			go s.Run(ctx)
			chain = append(chain, provider.ExistingOnly(index, s))
		}
	}
	if cfg.Prometheus != nil {
		deps := prometheus.Deps{Clock: o.Clock, Log: o.Log.WithName("prometheus"), Observe: obs.source("prometheus"),
			MaxQueries: cfg.MaxRemoteQueries, Evicted: obs.evictions("prometheus")}
		if cloud != nil { // a nil *CredentialSource in the interface would not read as nil
			deps.Cloud = cloud
		}
		prom, err := prometheus.New(*cfg.Prometheus, deps)
		if err != nil {
			return nil, err
		}
		go prom.Run(ctx)
		chain = append(chain, provider.ExistingOnly(index, prom))
	}
	if len(chain) == 1 {
		return store, nil
	}
	return chain, nil
}
