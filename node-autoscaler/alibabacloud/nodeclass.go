package alibabacloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud/apis/v1alpha1"
)

var _ cloudprovider.CloudProvider = (*CloudProvider)(nil)

// NodeClassController resolves an ECSNodeClass's selectors through the ECS API into its status
// and says, in its conditions and events, whether it can launch and why not.
type NodeClassController struct {
	Client   client.Client
	API      API
	Recorder events.EventRecorder
	// Resync is how often a class is resolved again without a change (5 m when zero).
	Resync time.Duration
}

// Register adds the controller to the manager.
func (c *NodeClassController) Register(_ context.Context, m manager.Manager) error {
	return ctrl.NewControllerManagedBy(m).Named("lockstep.ecsnodeclass").For(&v1alpha1.ECSNodeClass{}).Complete(c)
}

// Reconcile resolves one class and patches its status when it changed.
func (c *NodeClassController) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	nc := &v1alpha1.ECSNodeClass{}
	if err := c.Client.Get(ctx, req.NamespacedName, nc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := nc.DeepCopy()
	wasReady := nc.StatusConditions().Root().IsTrue()
	c.resolve(ctx, nc)
	conds := nc.StatusConditions()
	if !equality.Semantic.DeepEqual(before.Status, nc.Status) {
		if err := c.Client.Status().Patch(ctx, nc, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("patching ECSNodeClass %s status: %w", nc.Name, err)
		}
	}
	ready := conds.Root()
	switch {
	case !ready.IsTrue():
		c.Recorder.Eventf(nc, nil, corev1.EventTypeWarning, "NodeClassNotReady", "Resolve", "cannot launch: %s", NotReadyMessage(nc))
	case !wasReady:
		c.Recorder.Eventf(nc, nil, corev1.EventTypeNormal, "NodeClassReady", "Resolve",
			"launches in %d vSwitches with %d security groups from image %s", len(nc.Status.VSwitches), len(nc.Status.SecurityGroups), nc.Status.ImageID)
	}
	resync := c.Resync
	if resync == 0 {
		resync = 5 * time.Minute
	}
	if !ready.IsTrue() {
		resync = min(resync, 30*time.Second)
	}
	return reconcile.Result{RequeueAfter: resync}, nil
}

// NotReadyMessage says why the class cannot launch: each False condition with its message.
func NotReadyMessage(nc *v1alpha1.ECSNodeClass) string {
	var parts []string
	for _, t := range []string{v1alpha1.ConditionVSwitchesReady, v1alpha1.ConditionSecurityGroupsReady, v1alpha1.ConditionImageReady} {
		if c := nc.StatusConditions().Get(t); c != nil && !c.IsTrue() {
			parts = append(parts, t+": "+c.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// resolve fills the status from the selectors. A failed call leaves that part False with the
// API's message (a missing permission reads Forbidden.RAM, a revoked key InvalidAccessKeyId).
func (c *NodeClassController) resolve(ctx context.Context, nc *v1alpha1.ECSNodeClass) {
	conds := nc.StatusConditions()
	var vswitches []v1alpha1.VSwitch
	var errs []string
	for i, t := range nc.Spec.VSwitchSelectorTerms {
		found, err := c.API.DescribeVSwitches(ctx, t.ID, t.VPCID, t.ZoneID)
		if err != nil {
			errs = append(errs, fmt.Sprintf("vSwitchSelectorTerms[%d]: %v", i, err))
			continue
		}
		if len(found) == 0 {
			errs = append(errs, fmt.Sprintf("vSwitchSelectorTerms[%d] matches no vSwitch", i))
		}
		for _, v := range found {
			if !slices.ContainsFunc(vswitches, func(x v1alpha1.VSwitch) bool { return x.ID == v.VSwitchId }) {
				vswitches = append(vswitches, v1alpha1.VSwitch{ID: v.VSwitchId, ZoneID: v.ZoneId})
			}
		}
	}
	if len(errs) == 0 {
		nc.Status.VSwitches = vswitches
		conds.SetTrue(v1alpha1.ConditionVSwitchesReady)
	} else {
		conds.SetFalse(v1alpha1.ConditionVSwitchesReady, "VSwitchesNotFound", strings.Join(errs, "; "))
	}

	var groups []string
	errs = nil
	for i, t := range nc.Spec.SecurityGroupSelectorTerms {
		found, err := c.API.DescribeSecurityGroups(ctx, t.ID, t.Tags)
		if err != nil {
			errs = append(errs, fmt.Sprintf("securityGroupSelectorTerms[%d]: %v", i, err))
			continue
		}
		if len(found) == 0 {
			errs = append(errs, fmt.Sprintf("securityGroupSelectorTerms[%d] matches no security group", i))
		}
		for _, g := range found {
			if !slices.Contains(groups, g.SecurityGroupId) {
				groups = append(groups, g.SecurityGroupId)
			}
		}
	}
	if len(errs) == 0 {
		slices.Sort(groups)
		nc.Status.SecurityGroups = groups
		conds.SetTrue(v1alpha1.ConditionSecurityGroupsReady)
	} else {
		conds.SetFalse(v1alpha1.ConditionSecurityGroupsReady, "SecurityGroupsNotFound", strings.Join(errs, "; "))
	}

	switch img, err := c.API.DescribeImage(ctx, nc.Spec.ImageID); {
	case err == nil:
		nc.Status.ImageID = img.ImageId
		conds.SetTrue(v1alpha1.ConditionImageReady)
	case errors.Is(err, ErrNotFound):
		nc.Status.ImageID = ""
		conds.SetFalse(v1alpha1.ConditionImageReady, "ImageNotFound", err.Error())
	default:
		conds.SetFalse(v1alpha1.ConditionImageReady, "ImageNotResolved", err.Error())
	}
}
