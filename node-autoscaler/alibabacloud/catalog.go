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
}

// Catalog is the region's instance types, their stock per zone and their prices, fetched from the
// ECS API and cached. Its size is bounded by the region's instance types × zones × 2.
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
}

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
	return &Catalog{api: api, clock: clk, cfg: cfg, prices: map[priceKey]float64{}, unavailable: map[offeringKey]time.Time{}}
}

// MarkUnavailable leaves an offering out for UnavailableTTL after a launch found no stock.
func (c *Catalog) MarkUnavailable(instanceType, zone string, spot bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unavailable[offeringKey{instanceType, zone, spot}] = c.clock.Now().Add(c.cfg.UnavailableTTL)
}

// refresh fetches what is older than its TTL. Called locked: concurrent callers wait for one
// fetch rather than each making their own.
func (c *Catalog) refresh(ctx context.Context) error {
	now := c.clock.Now()
	if c.types == nil || now.Sub(c.typesAt) >= c.cfg.TypesTTL {
		types, err := c.api.DescribeInstanceTypes(ctx)
		if err != nil {
			return fmt.Errorf("instance types: %w", err)
		}
		prices := make(map[priceKey]float64, 2*len(types))
		for _, t := range types {
			for _, spot := range []bool{false, true} {
				p, err := c.api.DescribePrice(ctx, t.InstanceTypeId, spot)
				if err != nil {
					return fmt.Errorf("price of %s: %w", t.InstanceTypeId, err)
				}
				prices[priceKey{t.InstanceTypeId, spot}] = p
			}
		}
		c.types, c.prices, c.typesAt = types, prices, now
	}
	if c.stock == nil || now.Sub(c.stockAt) >= c.cfg.StockTTL {
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
		c.stock, c.stockAt = stock, now
	}
	for k, until := range c.unavailable {
		if !now.Before(until) {
			delete(c.unavailable, k)
		}
	}
	return nil
}

// InstanceTypes is every instance type of the region with an offering (on-demand and spot) in each
// of zones; offerings without stock, or that recently failed for lack of it, are unavailable.
func (c *Catalog) InstanceTypes(ctx context.Context, region string, zones []string) ([]*cloudprovider.InstanceType, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
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
