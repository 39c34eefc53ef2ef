package v1alpha1

import (
	"github.com/awslabs/operatorpkg/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ECSNodeClassSpec is how ECS instances are launched for the NodePools that reference the class.
type ECSNodeClassSpec struct {
	// VSwitchSelectorTerms select the vSwitches (and so the zones) instances launch in. A term
	// names one vSwitch by ID, or every vSwitch of a VPC (optionally in one zone).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	VSwitchSelectorTerms []VSwitchSelectorTerm `json:"vSwitchSelectorTerms"`
	// SecurityGroupSelectorTerms select the security groups of the instances: by ID, or by tags.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	SecurityGroupSelectorTerms []SecurityGroupSelectorTerm `json:"securityGroupSelectorTerms"`
	// ImageID is the image instances boot from (an ACK node image for the cluster's version).
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_.-]+$`
	ImageID string `json:"imageId"`
	// SystemDisk is the instances' system disk.
	// +optional
	SystemDisk SystemDisk `json:"systemDisk,omitempty"`
	// UserData runs at first boot and joins the instance to the cluster (for ACK, the node pool's
	// attach script). Stored and sent base64-encoded; at most 32 KiB.
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	UserData string `json:"userData,omitempty"`
	// Tags are added to every instance, besides the ones the provider sets to find its
	// instances again.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// RAMRoleName is the instance RAM role.
	// +optional
	RAMRoleName string `json:"ramRoleName,omitempty"`
}

// VSwitchSelectorTerm selects vSwitches: ID, or VPCID with an optional ZoneID.
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.vpcId)",message="set id or vpcId"
// +kubebuilder:validation:XValidation:rule="!has(self.zoneId) || has(self.vpcId)",message="zoneId narrows a vpcId"
type VSwitchSelectorTerm struct {
	// +optional
	ID string `json:"id,omitempty"`
	// +optional
	VPCID string `json:"vpcId,omitempty"`
	// +optional
	ZoneID string `json:"zoneId,omitempty"`
}

// SecurityGroupSelectorTerm selects security groups: ID, or every group with all the tags.
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.tags)",message="set id or tags"
type SecurityGroupSelectorTerm struct {
	// +optional
	ID string `json:"id,omitempty"`
	// +kubebuilder:validation:MinProperties=1
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
}

// SystemDisk is an instance's system disk.
type SystemDisk struct {
	// Category is the disk category (cloud_essd by default).
	// +kubebuilder:validation:Enum=cloud_essd;cloud_ssd;cloud_efficiency;cloud_auto;cloud_essd_entry
	// +optional
	Category string `json:"category,omitempty"`
	// SizeGiB is its size (40 by default).
	// +kubebuilder:validation:Minimum=20
	// +kubebuilder:validation:Maximum=2048
	// +optional
	SizeGiB int32 `json:"sizeGiB,omitempty"`
}

// ECSNodeClassStatus is what the selectors resolved to, and whether the class can launch.
type ECSNodeClassStatus struct {
	// VSwitches are the selected vSwitches and their zones.
	// +optional
	VSwitches []VSwitch `json:"vSwitches,omitempty"`
	// SecurityGroups are the selected security group IDs.
	// +optional
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// ImageID is the image found (empty when it is not available).
	// +optional
	ImageID string `json:"imageId,omitempty"`
	// Conditions: Ready is True when every selector found something and the image is available.
	// +optional
	Conditions []status.Condition `json:"conditions,omitempty"`
}

// VSwitch is a resolved vSwitch.
type VSwitch struct {
	ID     string `json:"id"`
	ZoneID string `json:"zoneId"`
}

// ECSNodeClass is how the Alibaba Cloud provider launches ECS instances for NodePools.
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=ecsnodeclasses,scope=Cluster,categories=karpenter,shortName=ecsnc
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.imageId`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ECSNodeClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ECSNodeClassSpec   `json:"spec"`
	Status ECSNodeClassStatus `json:"status,omitempty"`
}

// ECSNodeClassList is a list of ECSNodeClasses.
// +kubebuilder:object:root=true
type ECSNodeClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ECSNodeClass `json:"items"`
}

// Condition types and reasons of an ECSNodeClass.
const (
	// ConditionVSwitchesReady, ConditionSecurityGroupsReady and ConditionImageReady make up Ready.
	ConditionVSwitchesReady      = "VSwitchesReady"
	ConditionSecurityGroupsReady = "SecurityGroupsReady"
	ConditionImageReady          = "ImageReady"
)

// StatusConditions implements status.Object: Ready depends on the three conditions.
func (in *ECSNodeClass) StatusConditions(opts ...status.ForOption) status.ConditionSet {
	return status.NewReadyConditions(ConditionVSwitchesReady, ConditionSecurityGroupsReady, ConditionImageReady).For(in, opts...)
}

// GetConditions implements status.Object.
func (in *ECSNodeClass) GetConditions() []status.Condition { return in.Status.Conditions }

// SetConditions implements status.Object.
func (in *ECSNodeClass) SetConditions(c []status.Condition) { in.Status.Conditions = c }
