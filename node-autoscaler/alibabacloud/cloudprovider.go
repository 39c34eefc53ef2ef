// Package alibabacloud is the node-autoscaler's Alibaba Cloud provider: a Karpenter CloudProvider
// that launches ECS instances (pay-as-you-go or spot) for NodeClaims as an ECSNodeClass says,
// with instance types, zones' stock and prices from the ECS API, and a controller that resolves an
// ECSNodeClass's selectors and reports whether it can launch.
package alibabacloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud/apis/v1alpha1"
)

// Tags and annotations the provider writes.
const (
	// TagCluster marks the instances this cluster's provider launched; List finds them by it.
	TagCluster = "karpenter.lockstep.dev/cluster"
	// TagNodeClaim and TagNodePool name the NodeClaim and NodePool of an instance.
	TagNodeClaim = "karpenter.sh/nodeclaim"
	TagNodePool  = "karpenter.sh/nodepool"
	// AnnotationImageID and AnnotationSecurityGroups record what an instance was launched with,
	// for drift.
	AnnotationImageID        = "karpenter.lockstep.dev/image-id"
	AnnotationSecurityGroups = "karpenter.lockstep.dev/security-groups"
	// maxLaunchAttempts bounds the offerings one Create tries.
	maxLaunchAttempts = 6
)

// Drift reasons.
const (
	DriftImage          cloudprovider.DriftReason = "ImageDrift"
	DriftSecurityGroups cloudprovider.DriftReason = "SecurityGroupsDrift"
)

// CloudProvider launches ECS instances for Karpenter.
type CloudProvider struct {
	kube    client.Client
	api     API
	catalog *Catalog
	region  string
	cluster string
}

// NewCloudProvider returns the provider for region, tagging instances with cluster.
func NewCloudProvider(kube client.Client, api API, catalog *Catalog, region, cluster string) *CloudProvider {
	return &CloudProvider{kube: kube, api: api, catalog: catalog, region: region, cluster: cluster}
}

// ProviderID is the ACK form: <region>.<instance ID>.
func (p *CloudProvider) ProviderID(instanceID string) string { return p.region + "." + instanceID }

func (p *CloudProvider) instanceID(providerID string) (string, error) {
	id, ok := strings.CutPrefix(providerID, p.region+".")
	if !ok || !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("provider ID %q is not %s.<instance ID>", providerID, p.region)
	}
	return id, nil
}

// Name implements cloudprovider.CloudProvider.
func (p *CloudProvider) Name() string { return "alibabacloud" }

// GetSupportedNodeClasses implements cloudprovider.CloudProvider.
func (p *CloudProvider) GetSupportedNodeClasses() []status.Object {
	return []status.Object{&v1alpha1.ECSNodeClass{}}
}

// RepairPolicies implements cloudprovider.CloudProvider: a node NotReady or Unknown for 10 minutes
// is replaced (when Karpenter's NodeRepair gate is on).
func (p *CloudProvider) RepairPolicies() []cloudprovider.RepairPolicy {
	return []cloudprovider.RepairPolicy{
		{ConditionType: corev1.NodeReady, ConditionStatus: corev1.ConditionFalse, TolerationDuration: 10 * time.Minute},
		{ConditionType: corev1.NodeReady, ConditionStatus: corev1.ConditionUnknown, TolerationDuration: 10 * time.Minute},
	}
}

func (p *CloudProvider) nodeClass(ctx context.Context, name string) (*v1alpha1.ECSNodeClass, error) {
	nc := &v1alpha1.ECSNodeClass{}
	if err := p.kube.Get(ctx, types.NamespacedName{Name: name}, nc); err != nil {
		return nil, err
	}
	return nc, nil
}

func zonesOf(nc *v1alpha1.ECSNodeClass) []string {
	var zones []string
	for _, v := range nc.Status.VSwitches {
		if !slices.Contains(zones, v.ZoneID) {
			zones = append(zones, v.ZoneID)
		}
	}
	return zones
}

// GetInstanceTypes implements cloudprovider.CloudProvider: the region's types with offerings in
// the zones of the NodePool's ECSNodeClass.
func (p *CloudProvider) GetInstanceTypes(ctx context.Context, np *karpv1.NodePool) ([]*cloudprovider.InstanceType, error) {
	if np.Spec.Template.Spec.NodeClassRef == nil {
		return nil, nil
	}
	nc, err := p.nodeClass(ctx, np.Spec.Template.Spec.NodeClassRef.Name)
	if err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return p.catalog.InstanceTypes(ctx, p.region, zonesOf(nc))
}

// Create implements cloudprovider.CloudProvider: it launches the cheapest available offering
// that meets the NodeClaim's requirements and requests, falling back to the next ones when a zone
// has no stock (and remembering that for a while); with none left it reports insufficient capacity.
func (p *CloudProvider) Create(ctx context.Context, claim *karpv1.NodeClaim) (*karpv1.NodeClaim, error) {
	nc, err := p.nodeClass(ctx, claim.Spec.NodeClassRef.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, cloudprovider.NewInsufficientCapacityError(fmt.Errorf("ECSNodeClass %s not found: %w", claim.Spec.NodeClassRef.Name, err))
		}
		return nil, fmt.Errorf("reading ECSNodeClass: %w", err)
	}
	if ready := nc.StatusConditions().Root(); !ready.IsTrue() {
		return nil, cloudprovider.NewNodeClassNotReadyError(fmt.Errorf("ECSNodeClass %s is not ready: %s", nc.Name, NotReadyMessage(nc)))
	}
	its, err := p.catalog.InstanceTypes(ctx, p.region, zonesOf(nc))
	if err != nil {
		return nil, fmt.Errorf("instance types: %w", err)
	}
	// One launch per NodeClaim: a retried Create finds the instance the first one made.
	if inst, err := p.existing(ctx, claim); err != nil || inst != nil {
		if err != nil {
			return nil, err
		}
		return p.adopt(claim, nc, its, inst)
	}
	candidates := Candidates(its, claim)
	if len(candidates) == 0 {
		return nil, cloudprovider.NewInsufficientCapacityError(errors.New("no available offering meets the NodeClaim's requirements and requests"))
	}
	var tried []string
	for _, cand := range candidates[:min(len(candidates), maxLaunchAttempts)] {
		id, err := p.api.RunInstance(ctx, p.runInput(nc, claim, cand))
		if errors.Is(err, ErrNoStock) {
			p.catalog.MarkUnavailable(cand.Type.Name, cand.Zone, cand.Spot)
			tried = append(tried, cand.String())
			log.FromContext(ctx).Info("no stock, trying the next offering", "offering", cand.String(), "error", err.Error())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("launching %s: %w", cand, err)
		}
		return p.launched(claim, nc, cand, id), nil
	}
	return nil, cloudprovider.NewInsufficientCapacityError(fmt.Errorf("no stock for %s", strings.Join(tried, ", ")))
}

// Candidate is one offering to launch.
type Candidate struct {
	Type  *cloudprovider.InstanceType
	Zone  string
	Spot  bool
	Price float64
}

func (c Candidate) String() string {
	ct := karpv1.CapacityTypeOnDemand
	if c.Spot {
		ct = karpv1.CapacityTypeSpot
	}
	return fmt.Sprintf("%s in %s (%s)", c.Type.Name, c.Zone, ct)
}

// Candidates are the available offerings of the types that meet the claim's requirements and
// whose allocatable resources cover its requests, cheapest first. Pure.
func Candidates(its []*cloudprovider.InstanceType, claim *karpv1.NodeClaim) []Candidate {
	reqs := scheduling.NewNodeSelectorRequirementsWithMinValues(claim.Spec.Requirements...)
	var out []Candidate
	for _, it := range its {
		if it.Requirements.Intersects(reqs) != nil || !fits(claim.Spec.Resources.Requests, it.Allocatable()) {
			continue
		}
		for _, o := range it.Offerings.Available().Compatible(reqs) {
			out = append(out, Candidate{Type: it, Zone: o.Zone(), Spot: o.CapacityType() == karpv1.CapacityTypeSpot, Price: o.Price})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Price != out[j].Price {
			return out[i].Price < out[j].Price
		}
		return out[i].String() < out[j].String()
	})
	return out
}

func fits(requests, allocatable corev1.ResourceList) bool {
	for name, q := range requests {
		if a, ok := allocatable[name]; !ok || q.Cmp(a) > 0 {
			return false
		}
	}
	return true
}

// launched is the NodeClaim Karpenter gets back: the offering's labels, the provider ID, capacity
// and allocatable, and what drift compares later.
func (p *CloudProvider) launched(claim *karpv1.NodeClaim, nc *v1alpha1.ECSNodeClass, c Candidate, instanceID string) *karpv1.NodeClaim {
	labels := map[string]string{}
	for key, req := range c.Type.Requirements {
		if req.Len() == 1 && req.Operator() == corev1.NodeSelectorOpIn {
			labels[key] = req.Values()[0]
		}
	}
	labels[corev1.LabelTopologyZone] = c.Zone
	labels[karpv1.CapacityTypeLabelKey] = karpv1.CapacityTypeOnDemand
	if c.Spot {
		labels[karpv1.CapacityTypeLabelKey] = karpv1.CapacityTypeSpot
	}
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Labels: labels,
			Annotations: map[string]string{
				AnnotationImageID:        nc.Status.ImageID,
				AnnotationSecurityGroups: strings.Join(slices.Sorted(slices.Values(nc.Status.SecurityGroups)), ","),
			},
		},
		Status: karpv1.NodeClaimStatus{
			ProviderID:  p.ProviderID(instanceID),
			ImageID:     nc.Status.ImageID,
			Capacity:    c.Type.Capacity,
			Allocatable: c.Type.Allocatable(),
		},
	}
}

// Delete implements cloudprovider.CloudProvider: it releases the instance, and reports
// NodeClaimNotFound once the instance is gone.
func (p *CloudProvider) Delete(ctx context.Context, claim *karpv1.NodeClaim) error {
	id, err := p.instanceID(claim.Status.ProviderID)
	if err != nil {
		return cloudprovider.NewNodeClaimNotFoundError(err)
	}
	switch err := p.api.DeleteInstance(ctx, id); {
	case errors.Is(err, ErrNotFound):
		return cloudprovider.NewNodeClaimNotFoundError(err)
	case err != nil:
		return fmt.Errorf("releasing %s: %w", id, err)
	}
	return nil
}

// Get implements cloudprovider.CloudProvider. Only an answer that positively lacks the instance is
// NodeClaimNotFound; a failed call is an error, so nothing running is ever given up for a glitch.
func (p *CloudProvider) Get(ctx context.Context, providerID string) (*karpv1.NodeClaim, error) {
	id, err := p.instanceID(providerID)
	if err != nil {
		return nil, cloudprovider.NewNodeClaimNotFoundError(err)
	}
	insts, err := p.api.DescribeInstances(ctx, []string{id}, nil)
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", id, err)
	}
	for i := range insts {
		if insts[i].InstanceId == id {
			return p.toNodeClaim(ctx, &insts[i])
		}
	}
	return nil, cloudprovider.NewNodeClaimNotFoundError(fmt.Errorf("instance %s not found", id))
}

// List implements cloudprovider.CloudProvider: the instances tagged with this cluster.
func (p *CloudProvider) List(ctx context.Context) ([]*karpv1.NodeClaim, error) {
	insts, err := p.api.DescribeInstances(ctx, nil, map[string]string{TagCluster: p.cluster})
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	out := make([]*karpv1.NodeClaim, 0, len(insts))
	for i := range insts {
		nc, err := p.toNodeClaim(ctx, &insts[i])
		if err != nil {
			return nil, err
		}
		out = append(out, nc)
	}
	return out, nil
}

func (p *CloudProvider) toNodeClaim(ctx context.Context, inst *ecs.Instance) (*karpv1.NodeClaim, error) {
	labels := map[string]string{
		corev1.LabelInstanceTypeStable: inst.InstanceType,
		corev1.LabelTopologyZone:       inst.ZoneId,
		corev1.LabelTopologyRegion:     p.region,
		karpv1.CapacityTypeLabelKey:    karpv1.CapacityTypeOnDemand,
	}
	if inst.SpotStrategy != "" && inst.SpotStrategy != "NoSpot" {
		labels[karpv1.CapacityTypeLabelKey] = karpv1.CapacityTypeSpot
	}
	claimName := ""
	for _, t := range inst.Tags.Tag {
		switch t.TagKey {
		case TagNodePool:
			labels[karpv1.NodePoolLabelKey] = t.TagValue
		case TagNodeClaim:
			claimName = t.TagValue
		}
	}
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Labels: labels, Annotations: map[string]string{
			AnnotationImageID:        inst.ImageId,
			AnnotationSecurityGroups: strings.Join(slices.Sorted(slices.Values(inst.SecurityGroupIds.SecurityGroupId)), ","),
		}},
		Status: karpv1.NodeClaimStatus{ProviderID: p.ProviderID(inst.InstanceId), ImageID: inst.ImageId},
	}
	if created, err := time.Parse("2006-01-02T15:04Z", inst.CreationTime); err == nil {
		nc.CreationTimestamp = metav1.NewTime(created)
	}
	t, err := p.catalog.Lookup(ctx, inst.InstanceType)
	if err != nil {
		return nil, err
	}
	if t != nil {
		nc.Status.Capacity = p.catalog.Capacity(*t)
		labels[corev1.LabelArchStable] = arch(t.CpuArchitecture)
	}
	return nc, nil
}

// IsDrifted implements cloudprovider.CloudProvider: an instance launched from another image or
// with other security groups than its ECSNodeClass now resolves to has drifted.
func (p *CloudProvider) IsDrifted(ctx context.Context, claim *karpv1.NodeClaim) (cloudprovider.DriftReason, error) {
	if claim.Spec.NodeClassRef == nil {
		return "", nil
	}
	nc, err := p.nodeClass(ctx, claim.Spec.NodeClassRef.Name)
	if err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return Drift(claim.Annotations, nc), nil
}

// Drift compares what an instance was launched with (its NodeClaim's annotations) with what its
// ECSNodeClass resolves to now. Pure.
func Drift(annotations map[string]string, nc *v1alpha1.ECSNodeClass) cloudprovider.DriftReason {
	if !nc.StatusConditions().Root().IsTrue() {
		return "" // nothing to compare with until the class resolves again
	}
	if image, ok := annotations[AnnotationImageID]; ok && image != nc.Status.ImageID {
		return DriftImage
	}
	if sgs, ok := annotations[AnnotationSecurityGroups]; ok && sgs != strings.Join(slices.Sorted(slices.Values(nc.Status.SecurityGroups)), ",") {
		return DriftSecurityGroups
	}
	return ""
}
