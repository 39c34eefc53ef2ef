package alibabacloud

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"
)

// Labels this provider puts on its nodes besides Kubernetes' and Karpenter's well-known ones.
const (
	LabelInstanceFamily = "karpenter.lockstep.dev/instance-family"
	LabelInstanceCPU    = "karpenter.lockstep.dev/instance-cpu"
	LabelInstanceMemory = "karpenter.lockstep.dev/instance-memory"
)

func init() {
	karpv1.WellKnownLabels.Insert(LabelInstanceFamily, LabelInstanceCPU, LabelInstanceMemory)
}

// CatalogConfig times the catalogue's caches.
type CatalogConfig struct {
	// TypesTTL is how long the instance types and prices are kept (1 h when zero).
	TypesTTL time.Duration
	// StockTTL is how long the zones' stock is kept (1 m when zero).
	StockTTL time.Duration
	// UnavailableTTL is how long an offering that failed for lack of stock is left out (3 m when
	// zero).
	UnavailableTTL time.Duration
	// MaxPods is every node's pod capacity (110 when zero).
	MaxPods int64
	// PriceConcurrency bounds the DescribePrice calls in flight during a refresh (4 when zero,
	// the API client's own bound).
	PriceConcurrency int
	// RefreshTimeout bounds one background refresh (2 m when zero).
	RefreshTimeout time.Duration
	// PriceErrors counts instance types left without a price by a failed DescribePrice; nil
	// counts nothing.
	PriceErrors prometheus.Counter
	// Log receives a line per failed price and refresh (discarded when zero).
	Log logr.Logger
}

// Catalog is the region's instance types, their stock per zone and their prices, fetched from the
// ECS API and cached. Its size is bounded by the region's instance types × zones × 2.
//
// Refreshes run in the background, one of each kind at a time: callers are served the last good
// catalogue meanwhile (only the very first load is waited for), so a slow or failing ECS API
// never holds up a launch, a list or a lookup that the cached catalogue can answer.
type Catalog struct {
	api   API
	clock clock.Clock
	cfg   CatalogConfig

	mu          sync.Mutex
	types       []ecs.InstanceType
	typesAt     time.Time
	prices      map[priceKey]float64
	stock       map[bool]map[string]map[string]bool // spot → zone → type → in stock
	stockAt     time.Time
	unavailable map[offeringKey]time.Time
	// refreshing says which refreshes run; lastErr and failedAt are each kind's last failure
	// (cleared by a success); changed is closed, and replaced, whenever a refresh ends.
	refreshing map[refreshKind]bool
	lastErr    map[refreshKind]error
	failedAt   map[refreshKind]time.Time
	changed    chan struct{}
}

// refreshKind is one of the catalogue's two refreshes.
type refreshKind int

const (
	refreshTypes refreshKind = iota // instance types and prices
	refreshStock                    // the zones' stock
)

type priceKey struct {
	instanceType string
	spot         bool
}

type offeringKey struct {
	instanceType, zone string
	spot               bool
}

// NewCatalog returns an empty catalogue that fills itself on first use.
func NewCatalog(api API, clk clock.Clock, cfg CatalogConfig) *Catalog {
	if cfg.TypesTTL == 0 {
		cfg.TypesTTL = time.Hour
	}
	if cfg.StockTTL == 0 {
		cfg.StockTTL = time.Minute
	}
	if cfg.UnavailableTTL == 0 {
		cfg.UnavailableTTL = 3 * time.Minute
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 110
	}
	if cfg.PriceConcurrency <= 0 {
		cfg.PriceConcurrency = clients
	}
	if cfg.RefreshTimeout <= 0 {
		cfg.RefreshTimeout = 2 * time.Minute
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	return &Catalog{api: api, clock: clk, cfg: cfg, prices: map[priceKey]float64{}, unavailable: map[offeringKey]time.Time{},
		refreshing: map[refreshKind]bool{}, lastErr: map[refreshKind]error{}, failedAt: map[refreshKind]time.Time{}, changed: make(chan struct{})}
}

// MarkUnavailable leaves an offering out for UnavailableTTL after a launch found no stock.
func (c *Catalog) MarkUnavailable(instanceType, zone string, spot bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unavailable[offeringKey{instanceType, zone, spot}] = c.clock.Now().Add(c.cfg.UnavailableTTL)
}

// current starts the refreshes of what is older than its TTL, and returns with c.mu held once
// there is a catalogue to serve: at once when there is one (however old); else it waits for the
// first load, and returns its error when it fails (the next caller tries again) or ctx's.
func (c *Catalog) current(ctx context.Context) error {
	c.mu.Lock()
	for {
		now := c.clock.Now()
		if c.types != nil && c.stock != nil {
			c.start(refreshTypes, now.Sub(c.typesAt) >= c.cfg.TypesTTL, now)
			c.start(refreshStock, now.Sub(c.stockAt) >= c.cfg.StockTTL, now)
			for k, until := range c.unavailable {
				if !now.Before(until) {
					delete(c.unavailable, k)
				}
			}
			return nil
		}
		for _, kind := range []refreshKind{refreshTypes, refreshStock} {
			if err := c.lastErr[kind]; err != nil && !c.refreshing[kind] {
				c.lastErr[kind], c.failedAt[kind] = nil, time.Time{} // the next caller tries again
				c.mu.Unlock()
				return err
			}
		}
		c.start(refreshTypes, c.types == nil, now)
		c.start(refreshStock, c.stock == nil, now)
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the instance type catalogue: %w", ctx.Err())
		case <-changed:
		}
		c.mu.Lock()
	}
}

// refreshRetry is how long a failed refresh waits before the next, while the last good
// catalogue is served.
const refreshRetry = 30 * time.Second

// start runs a refresh of kind in the background when due, none runs, and the last one did not
// fail within refreshRetry. Called locked.
func (c *Catalog) start(kind refreshKind, due bool, now time.Time) {
	if !due || c.refreshing[kind] || (!c.failedAt[kind].IsZero() && now.Sub(c.failedAt[kind]) < refreshRetry) {
		return
	}
	c.refreshing[kind] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RefreshTimeout)
		defer cancel()
		var err error
		if kind == refreshTypes {
			err = c.refreshTypesAndPrices(ctx)
		} else {
			err = c.refreshStock(ctx)
		}
		if err != nil {
			c.cfg.Log.Error(err, "Refreshing the instance type catalogue failed; serving the last good one")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.refreshing[kind], c.lastErr[kind], c.failedAt[kind] = false, err, time.Time{}
		if err != nil {
			c.failedAt[kind] = c.clock.Now()
		}
		close(c.changed)
		c.changed = make(chan struct{})
	}()
}

// refreshTypesAndPrices fetches the instance types, then their prices with bounded concurrency.
// A type whose price call fails keeps its last good price, or is not offered until it has one;
// a failed DescribeInstanceTypes keeps the whole last catalogue.
func (c *Catalog) refreshTypesAndPrices(ctx context.Context) error {
	types, err := c.api.DescribeInstanceTypes(ctx)
	if err != nil {
		return fmt.Errorf("instance types: %w", err)
	}
	c.mu.Lock()
	old := c.prices
	c.mu.Unlock()
	prices := make(map[priceKey]float64, 2*len(types))
	var pmu sync.Mutex
	jobs := make(chan priceKey)
	var wg sync.WaitGroup
	for range min(c.cfg.PriceConcurrency, max(2*len(types), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				p, err := c.api.DescribePrice(ctx, k.instanceType, k.spot)
				pmu.Lock()
				if err == nil {
					prices[k] = p
				} else {
					if last, ok := old[k]; ok {
						prices[k] = last
					}
					if c.cfg.PriceErrors != nil {
						c.cfg.PriceErrors.Inc()
					}
					c.cfg.Log.Error(err, "No price for an instance type; it keeps its last price or is not offered", "instanceType", k.instanceType, "spot", k.spot)
				}
				pmu.Unlock()
			}
		}()
	}
	for _, t := range types {
		for _, spot := range []bool{false, true} {
			jobs <- priceKey{t.InstanceTypeId, spot}
		}
	}
	close(jobs)
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types, c.prices, c.typesAt = types, prices, c.clock.Now()
	return nil
}

// refreshStock fetches the zones' stock, on-demand and spot.
func (c *Catalog) refreshStock(ctx context.Context) error {
	stock := map[bool]map[string]map[string]bool{}
	for _, spot := range []bool{false, true} {
		zones, err := c.api.DescribeAvailableResource(ctx, spot)
		if err != nil {
			return fmt.Errorf("zones' stock: %w", err)
		}
		stock[spot] = map[string]map[string]bool{}
		for _, z := range zones {
			inZone := map[string]bool{}
			for _, r := range z.AvailableResources.AvailableResource {
				if r.Type != "InstanceType" {
					continue
				}
				for _, s := range r.SupportedResources.SupportedResource {
					if s.Status == "Available" {
						inZone[s.Value] = true
					}
				}
			}
			stock[spot][z.ZoneId] = inZone
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stock, c.stockAt = stock, c.clock.Now()
	return nil
}

// InstanceTypes is every instance type of the region with an offering (on-demand and spot) in each
// of zones; offerings without stock, or that recently failed for lack of it, are unavailable.
func (c *Catalog) InstanceTypes(ctx context.Context, region string, zones []string) ([]*cloudprovider.InstanceType, error) {
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	out := make([]*cloudprovider.InstanceType, 0, len(c.types))
	for _, t := range c.types {
		if it := c.instanceType(t, region, zones); it != nil {
			out = append(out, it)
		}
	}
	return out, nil
}

// Lookup returns the instance type's description (nil when the region has no such type).
func (c *Catalog) Lookup(ctx context.Context, name string) (*ecs.InstanceType, error) {
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	for i := range c.types {
		if c.types[i].InstanceTypeId == name {
			t := c.types[i]
			return &t, nil
		}
	}
	return nil, nil
}

func arch(cpuArchitecture string) string {
	if strings.EqualFold(cpuArchitecture, "ARM") {
		return karpv1.ArchitectureArm64
	}
	return karpv1.ArchitectureAmd64
}

// Capacity is what an instance type has for pods before reservations.
func (c *Catalog) Capacity(t ecs.InstanceType) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(t.CpuCoreCount), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(int64(t.MemorySize*1024)*1024*1024, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(c.cfg.MaxPods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("40Gi"),
	}
}

// overhead is what the kubelet, the system and eviction keep: CPU 100 m + 1 % of the cores, memory
// 255 MiB + 6 % (kubelet and system), 100 MiB and 10 % of the system disk before eviction.
func overhead(capacity corev1.ResourceList) *cloudprovider.InstanceTypeOverhead {
	cpu := capacity.Cpu().MilliValue()
	mem := capacity.Memory().Value()
	return &cloudprovider.InstanceTypeOverhead{
		KubeReserved: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(100+cpu/100, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(255*1024*1024+mem*6/100, resource.BinarySI),
		},
		EvictionThreshold: corev1.ResourceList{
			corev1.ResourceMemory:           resource.MustParse("100Mi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("4Gi"),
		},
	}
}

func (c *Catalog) instanceType(t ecs.InstanceType, region string, zones []string) *cloudprovider.InstanceType {
	var offerings cloudprovider.Offerings
	now := c.clock.Now()
	for _, zone := range zones {
		for _, spot := range []bool{false, true} {
			price, priced := c.prices[priceKey{t.InstanceTypeId, spot}]
			if !priced || price <= 0 {
				continue
			}
			ct := karpv1.CapacityTypeOnDemand
			if spot {
				ct = karpv1.CapacityTypeSpot
			}
			until, failed := c.unavailable[offeringKey{t.InstanceTypeId, zone, spot}]
			offerings = append(offerings, &cloudprovider.Offering{
				Requirements: scheduling.NewRequirements(
					scheduling.NewRequirement(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, zone),
					scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, ct),
				),
				Price:     price,
				Available: c.stock[spot][zone][t.InstanceTypeId] && (!failed || !now.Before(until)),
			})
		}
	}
	if len(offerings) == 0 {
		return nil
	}
	capacity := c.Capacity(t)
	zonesOffered := slices.Compact(slices.Sorted(slices.Values(zones)))
	return &cloudprovider.InstanceType{
		Name: t.InstanceTypeId,
		Requirements: scheduling.NewRequirements(
			scheduling.NewRequirement(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, t.InstanceTypeId),
			scheduling.NewRequirement(corev1.LabelArchStable, corev1.NodeSelectorOpIn, arch(t.CpuArchitecture)),
			scheduling.NewRequirement(corev1.LabelOSStable, corev1.NodeSelectorOpIn, string(corev1.Linux)),
			scheduling.NewRequirement(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, zonesOffered...),
			scheduling.NewRequirement(corev1.LabelTopologyRegion, corev1.NodeSelectorOpIn, region),
			scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot),
			scheduling.NewRequirement(LabelInstanceFamily, corev1.NodeSelectorOpIn, t.InstanceTypeFamily),
			scheduling.NewRequirement(LabelInstanceCPU, corev1.NodeSelectorOpIn, strconv.Itoa(t.CpuCoreCount)),
			scheduling.NewRequirement(LabelInstanceMemory, corev1.NodeSelectorOpIn, strconv.FormatInt(int64(t.MemorySize*1024), 10)),
		),
		Offerings: offerings,
		Capacity:  capacity,
		Overhead:  overhead(capacity),
	}
}
