package alifake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// InstanceType is an ECS instance type the fake region sells.
type InstanceType struct {
	ID, Family, Arch string // Arch: X86 or ARM, as the API says
	Cores            int
	MemoryGiB        float64
	// Price and SpotPrice are hourly.
	Price, SpotPrice float64
}

// VSwitch is a vSwitch of the fake region.
type VSwitch struct{ ID, VPCID, ZoneID string }

// SecurityGroup is a security group of the fake region.
type SecurityGroup struct {
	ID   string
	Tags map[string]string
}

// Instance is an instance the fake launched.
type Instance struct {
	ID, Type, Zone, VSwitch, Image, Status, ClientToken string
	SecurityGroups                                      []string
	Spot                                                bool
	Tags                                                map[string]string
	UserData                                            string
	Created                                             time.Time
}

// ECS is a fake ECS region behind a Server: instance types, zones' stock, vSwitches, security
// groups, images and the instances launched, answered as the ECS API documentation describes
// (RunInstances, DescribeInstances, DeleteInstances, DescribeInstanceTypes,
// DescribeAvailableResource, DescribePrice, DescribeVSwitches, DescribeSecurityGroups,
// DescribeImages).
type ECS struct {
	mu        sync.Mutex
	types     []InstanceType
	zones     []string
	noStock   map[string]bool // zone/type
	vswitches []VSwitch
	groups    []SecurityGroup
	images    map[string]bool
	instances map[string]*Instance
	// tokens are the RunInstances ClientTokens used, with the parameters they came with.
	tokens map[string]string
	next   int
	clock  clock.PassiveClock
}

// NewECS registers the ECS actions on s; clk stamps the instances' creation times.
func NewECS(s *Server, clk clock.PassiveClock, types []InstanceType, zones []string, vswitches []VSwitch, groups []SecurityGroup, images ...string) *ECS {
	e := &ECS{types: types, zones: zones, noStock: map[string]bool{}, vswitches: vswitches, groups: groups,
		images: map[string]bool{}, instances: map[string]*Instance{}, tokens: map[string]string{}, clock: clk}
	for _, i := range images {
		e.images[i] = true
	}
	for action, h := range map[string]Handler{
		"DescribeInstanceTypes":     e.describeInstanceTypes,
		"DescribeAvailableResource": e.describeAvailableResource,
		"DescribePrice":             e.describePrice,
		"DescribeVSwitches":         e.describeVSwitches,
		"DescribeSecurityGroups":    e.describeSecurityGroups,
		"DescribeImages":            e.describeImages,
		"RunInstances":              e.runInstances,
		"DescribeInstances":         e.describeInstances,
		"DeleteInstances":           e.deleteInstances,
	} {
		s.Handle(action, h)
	}
	return e
}

// SetStock says whether zone has stock of an instance type.
func (e *ECS) SetStock(zone, instanceType string, inStock bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noStock[zone+"/"+instanceType] = !inStock
}

// RemoveImage makes an image unavailable.
func (e *ECS) RemoveImage(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.images, id)
}

// Instances returns copies of the instances that exist.
func (e *ECS) Instances() []Instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Instance, 0, len(e.instances))
	for _, i := range e.instances {
		c := *i
		c.SecurityGroups = slices.Clone(i.SecurityGroups)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func paramError(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: msg}
}

// repeated reads name.1, name.2, … as the SDK sends repeated parameters.
func repeated(p url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// tags reads Tag.N.Key / Tag.N.Value.
func tags(p url.Values) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k := p.Get("Tag." + strconv.Itoa(i) + ".Key")
		if k == "" {
			return out
		}
		out[k] = p.Get("Tag." + strconv.Itoa(i) + ".Value")
	}
}

func (e *ECS) describeInstanceTypes(url.Values) (map[string]any, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := make([]map[string]any, 0, len(e.types))
	for _, t := range e.types {
		list = append(list, map[string]any{
			"InstanceTypeId": t.ID, "InstanceTypeFamily": t.Family, "CpuCoreCount": t.Cores,
			"MemorySize": t.MemoryGiB, "CpuArchitecture": t.Arch,
		})
	}
	return map[string]any{"InstanceTypes": map[string]any{"InstanceType": list}, "NextToken": ""}, nil
}

func (e *ECS) describeAvailableResource(p url.Values) (map[string]any, *Error) {
	if p.Get("DestinationResource") != "InstanceType" {
		return nil, paramError("DestinationResource must be InstanceType here")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	zones := make([]map[string]any, 0, len(e.zones))
	for _, z := range e.zones {
		supported := make([]map[string]any, 0, len(e.types))
		for _, t := range e.types {
			st := "Available"
			if e.noStock[z+"/"+t.ID] {
				st = "SoldOut"
			}
			supported = append(supported, map[string]any{"Value": t.ID, "Status": st, "StatusCategory": map[bool]string{true: "WithStock", false: "WithoutStock"}[st == "Available"]})
		}
		zones = append(zones, map[string]any{"ZoneId": z, "Status": "Available", "AvailableResources": map[string]any{
			"AvailableResource": []map[string]any{{"Type": "InstanceType", "SupportedResources": map[string]any{"SupportedResource": supported}}},
		}})
	}
	return map[string]any{"AvailableZones": map[string]any{"AvailableZone": zones}}, nil
}

func (e *ECS) describePrice(p url.Values) (map[string]any, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.types {
		if t.ID != p.Get("InstanceType") {
			continue
		}
		price := t.Price
		if s := p.Get("SpotStrategy"); s == "SpotAsPriceGo" || s == "SpotWithPriceLimit" {
			price = t.SpotPrice
		}
		return map[string]any{"PriceInfo": map[string]any{"Price": map[string]any{"TradePrice": price, "OriginalPrice": price, "Currency": "CNY"}}}, nil
	}
	return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidInstanceType.NotFound", Message: "The specified InstanceType does not exist."}
}

func (e *ECS) describeVSwitches(p url.Values) (map[string]any, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var list []map[string]any
	for _, v := range e.vswitches {
		if id := p.Get("VSwitchId"); id != "" && id != v.ID {
			continue
		}
		if vpc := p.Get("VpcId"); vpc != "" && vpc != v.VPCID {
			continue
		}
		if z := p.Get("ZoneId"); z != "" && z != v.ZoneID {
			continue
		}
		list = append(list, map[string]any{"VSwitchId": v.ID, "VpcId": v.VPCID, "ZoneId": v.ZoneID, "Status": "Available"})
	}
	return map[string]any{"VSwitches": map[string]any{"VSwitch": list}, "TotalCount": len(list), "PageNumber": 1, "PageSize": 50}, nil
}

func (e *ECS) describeSecurityGroups(p url.Values) (map[string]any, *Error) {
	want := tags(p)
	e.mu.Lock()
	defer e.mu.Unlock()
	var list []map[string]any
	for _, g := range e.groups {
		if id := p.Get("SecurityGroupId"); id != "" && id != g.ID {
			continue
		}
		match := true
		for k, v := range want {
			if g.Tags[k] != v {
				match = false
			}
		}
		if match {
			list = append(list, map[string]any{"SecurityGroupId": g.ID})
		}
	}
	return map[string]any{"SecurityGroups": map[string]any{"SecurityGroup": list}, "TotalCount": len(list), "NextToken": ""}, nil
}

func (e *ECS) describeImages(p url.Values) (map[string]any, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var list []map[string]any
	if id := p.Get("ImageId"); e.images[id] {
		list = append(list, map[string]any{"ImageId": id, "Status": "Available"})
	}
	return map[string]any{"Images": map[string]any{"Image": list}, "TotalCount": len(list)}, nil
}

func (e *ECS) runInstances(p url.Values) (map[string]any, *Error) {
	typ, vsw, img := p.Get("InstanceType"), p.Get("VSwitchId"), p.Get("ImageId")
	groups := repeated(p, "SecurityGroupIds")
	switch {
	case typ == "" || vsw == "" || img == "" || len(groups) == 0:
		return nil, paramError("InstanceType, VSwitchId, ImageId and SecurityGroupIds are required")
	case p.Get("Amount") != "1":
		return nil, paramError("this fake launches one instance per call")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// A used ClientToken with the same parameters answers as the first call did; with other
	// parameters it is refused, whether the first call launched anything or not.
	if tok := p.Get("ClientToken"); tok != "" {
		if used, ok := e.tokens[tok]; ok && used != requestParameters(p) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "IdempotentParameterMismatch", Message: "The specified parameter ClientToken has been used with different request parameters."}
		}
		e.tokens[tok] = requestParameters(p)
		for _, i := range e.instances {
			if i.ClientToken == tok {
				return map[string]any{"InstanceIdSets": map[string]any{"InstanceIdSet": []string{i.ID}}}, nil
			}
		}
	}
	var zone string
	for _, v := range e.vswitches {
		if v.ID == vsw {
			zone = v.ZoneID
		}
	}
	if zone == "" {
		return nil, &Error{Status: http.StatusNotFound, Code: "InvalidVSwitchId.NotFound", Message: "The specified VSwitchId does not exist."}
	}
	if !e.images[img] {
		return nil, &Error{Status: http.StatusNotFound, Code: "InvalidImageId.NotFound", Message: "The specified ImageId does not exist."}
	}
	if !slices.ContainsFunc(e.types, func(t InstanceType) bool { return t.ID == typ }) {
		return nil, &Error{Status: http.StatusNotFound, Code: "InvalidInstanceType.NotFound", Message: "The specified InstanceType does not exist."}
	}
	if e.noStock[zone+"/"+typ] {
		return nil, &Error{Status: http.StatusForbidden, Code: "OperationDenied.NoStock", Message: "The resource is out of stock in the specified zone. Please try other types, or choose other regions and zones."}
	}
	e.next++
	inst := &Instance{
		ID: fmt.Sprintf("i-fake%012d", e.next), Type: typ, Zone: zone, VSwitch: vsw, Image: img, Status: "Pending",
		ClientToken: p.Get("ClientToken"), SecurityGroups: groups, Tags: tags(p), UserData: p.Get("UserData"),
		Spot: p.Get("SpotStrategy") == "SpotAsPriceGo" || p.Get("SpotStrategy") == "SpotWithPriceLimit", Created: e.clock.Now(),
	}
	e.instances[inst.ID] = inst
	return map[string]any{"InstanceIdSets": map[string]any{"InstanceIdSet": []string{inst.ID}}}, nil
}

// commonParameters are the parameters of every call (signature, time, key) rather than of the
// request itself.
var commonParameters = map[string]bool{"Signature": true, "SignatureNonce": true, "SignatureMethod": true, "SignatureVersion": true,
	"SignatureType": true, "Timestamp": true, "AccessKeyId": true, "SecurityToken": true, "Format": true, "Version": true, "ClientToken": true}

// requestParameters is a call's own parameters, sorted and encoded: what a ClientToken binds.
func requestParameters(p url.Values) string {
	own := url.Values{}
	for k, v := range p {
		if !commonParameters[k] {
			own[k] = v
		}
	}
	return own.Encode()
}

func (e *ECS) describeInstances(p url.Values) (map[string]any, *Error) {
	var ids []string
	if raw := p.Get("InstanceIds"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &ids); err != nil {
			return nil, paramError("InstanceIds must be a JSON array: " + err.Error())
		}
	}
	want := tags(p)
	e.mu.Lock()
	defer e.mu.Unlock()
	list := []map[string]any{}
	for _, i := range e.instances {
		if len(ids) > 0 && !slices.Contains(ids, i.ID) {
			continue
		}
		match := true
		for k, v := range want {
			if i.Tags[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		if i.Status == "Pending" {
			i.Status = "Running" // booted by the next look
		}
		var tagList []map[string]any
		for k, v := range i.Tags {
			tagList = append(tagList, map[string]any{"TagKey": k, "TagValue": v})
		}
		spot := "NoSpot"
		if i.Spot {
			spot = "SpotAsPriceGo"
		}
		list = append(list, map[string]any{
			"InstanceId": i.ID, "InstanceType": i.Type, "ZoneId": i.Zone, "ImageId": i.Image, "Status": i.Status,
			"SpotStrategy": spot, "CreationTime": i.Created.UTC().Format("2006-01-02T15:04Z"),
			"Tags":             map[string]any{"Tag": tagList},
			"SecurityGroupIds": map[string]any{"SecurityGroupId": i.SecurityGroups},
			"VpcAttributes":    map[string]any{"VSwitchId": i.VSwitch},
		})
	}
	slices.SortFunc(list, func(a, b map[string]any) int {
		return strings.Compare(a["InstanceId"].(string), b["InstanceId"].(string))
	})
	return map[string]any{"Instances": map[string]any{"Instance": list}, "TotalCount": len(list), "NextToken": ""}, nil
}

func (e *ECS) deleteInstances(p url.Values) (map[string]any, *Error) {
	ids := repeated(p, "InstanceId")
	if len(ids) == 0 {
		return nil, paramError("InstanceId is required")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		i, ok := e.instances[id]
		if !ok {
			return nil, &Error{Status: http.StatusNotFound, Code: "InvalidInstanceId.NotFound", Message: "The specified InstanceId does not exist."}
		}
		if i.Status == "Running" && p.Get("Force") != "true" {
			return nil, &Error{Status: http.StatusForbidden, Code: "IncorrectInstanceStatus", Message: "The current status of the resource does not support this operation."}
		}
		delete(e.instances, id)
	}
	return map[string]any{}, nil
}
