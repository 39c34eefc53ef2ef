package alibabacloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"k8s.io/apimachinery/pkg/types"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud/apis/v1alpha1"
)

func (p *CloudProvider) runInput(nc *v1alpha1.ECSNodeClass, claim *karpv1.NodeClaim, c Candidate) RunInput {
	var vswitch string
	for _, v := range nc.Status.VSwitches {
		if v.ZoneID == c.Zone {
			vswitch = v.ID
			break
		}
	}
	tags := map[string]string{}
	for k, v := range nc.Spec.Tags {
		tags[k] = v
	}
	tags[TagCluster] = p.cluster
	tags[TagNodeClaim] = claim.Name
	tags[TagNodePool] = claim.Labels[karpv1.NodePoolLabelKey]
	disk := nc.Spec.SystemDisk
	if disk.Category == "" {
		disk.Category = "cloud_essd"
	}
	if disk.SizeGiB == 0 {
		disk.SizeGiB = 40
	}
	in := RunInput{
		InstanceType: c.Type.Name, VSwitchID: vswitch, ImageID: nc.Status.ImageID,
		SecurityGroupIDs: nc.Status.SecurityGroups, Spot: c.Spot,
		SystemDiskCategory: disk.Category, SystemDiskGiB: disk.SizeGiB,
		UserData: nc.Spec.UserData, RAMRoleName: nc.Spec.RAMRoleName,
		Name: claim.Name, Tags: tags,
	}
	in.ClientToken = ClientToken(claim.UID, in)
	return in
}

// ClientToken is a launch's idempotence token: the NodeClaim's UID and a digest of every other
// launch parameter, the offering among them (64 characters at most, as ECS allows). A retried
// call with the same parameters launches nothing new; another offering, or anything else that
// changed, gets a token of its own, since ECS refuses a used token with other parameters
// (IdempotentParameterMismatch).
func ClientToken(claim types.UID, in RunInput) string {
	h := sha256.New()
	// Each field is written with its length, so no two inputs write the same bytes.
	field := func(v string) { _, _ = fmt.Fprintf(h, "%d:%s;", len(v), v) }
	for _, v := range []string{in.InstanceType, in.VSwitchID, in.ImageID, strconv.FormatBool(in.Spot), in.SystemDiskCategory,
		strconv.Itoa(int(in.SystemDiskGiB)), in.UserData, in.RAMRoleName, in.Name} {
		field(v)
	}
	for _, sg := range slices.Sorted(slices.Values(in.SecurityGroupIDs)) {
		field(sg)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
		field(k)
		field(in.Tags[k])
	}
	return string(claim) + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// existing finds the instance a NodeClaim already has: one a Create launched before its answer
// was lost, whichever offering it was. nil when there is none.
func (p *CloudProvider) existing(ctx context.Context, claim *karpv1.NodeClaim) (*ecs.Instance, error) {
	insts, err := p.api.DescribeInstances(ctx, nil, map[string]string{TagCluster: p.cluster, TagNodeClaim: claim.Name})
	if err != nil {
		return nil, fmt.Errorf("looking for the instance of NodeClaim %s: %w", claim.Name, err)
	}
	for i := range insts {
		if insts[i].Status != "Stopping" && insts[i].Status != "Stopped" {
			return &insts[i], nil
		}
	}
	return nil, nil
}

// adopt hands back the NodeClaim of an instance launched for it earlier.
func (p *CloudProvider) adopt(claim *karpv1.NodeClaim, nc *v1alpha1.ECSNodeClass, its []*cloudprovider.InstanceType, inst *ecs.Instance) (*karpv1.NodeClaim, error) {
	for _, it := range its {
		if it.Name == inst.InstanceType {
			spot := inst.SpotStrategy != "" && inst.SpotStrategy != "NoSpot"
			return p.launched(claim, nc, Candidate{Type: it, Zone: inst.ZoneId, Spot: spot}, inst.InstanceId), nil
		}
	}
	return nil, fmt.Errorf("NodeClaim %s already has instance %s, of type %s, which the catalogue no longer offers", claim.Name, inst.InstanceId, inst.InstanceType)
}
