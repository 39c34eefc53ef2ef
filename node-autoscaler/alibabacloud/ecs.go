package alibabacloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud"
)

// Errors the provider tells apart.
var (
	// ErrNotFound: the instance does not exist (any more).
	ErrNotFound = errors.New("not found")
	// ErrNoStock: the zone has no stock of the instance type (or does not sell it) now.
	ErrNoStock = errors.New("no stock")
	// ErrThrottled: the API refused the call for flow control, also after the retries.
	ErrThrottled = errors.New("throttled")
)

// RunInput is one instance to launch.
type RunInput struct {
	InstanceType, VSwitchID, ImageID string
	SecurityGroupIDs                 []string
	Spot                             bool
	SystemDiskCategory               string
	SystemDiskGiB                    int32
	UserData                         string
	RAMRoleName                      string
	Name                             string
	Tags                             map[string]string
	// ClientToken makes the call idempotent: a retry with the same token launches nothing new.
	ClientToken string
}

// API is the part of the ECS API the provider calls.
type API interface {
	DescribeInstanceTypes(ctx context.Context) ([]ecs.InstanceType, error)
	// DescribeAvailableResource lists, per zone, the instance types with stock for on-demand
	// (spot false) or spot instances.
	DescribeAvailableResource(ctx context.Context, spot bool) ([]ecs.AvailableZone, error)
	// DescribePrice is the hourly price of an instance type, on-demand or spot.
	DescribePrice(ctx context.Context, instanceType string, spot bool) (float64, error)
	DescribeVSwitches(ctx context.Context, id, vpcID, zoneID string) ([]ecs.VSwitch, error)
	DescribeSecurityGroups(ctx context.Context, id string, tags map[string]string) ([]ecs.SecurityGroup, error)
	// DescribeImage returns ErrNotFound when the image does not exist or is not available.
	DescribeImage(ctx context.Context, id string) (*ecs.Image, error)
	RunInstance(ctx context.Context, in RunInput) (string, error)
	// DescribeInstances lists instances by IDs, or all with every tag in tags.
	DescribeInstances(ctx context.Context, ids []string, tags map[string]string) ([]ecs.Instance, error)
	// DeleteInstance releases an instance (forced: running ones too); ErrNotFound when gone.
	DeleteInstance(ctx context.Context, id string) error
}

// ClientConfig is how to reach ECS.
type ClientConfig struct {
	Region string
	// Endpoint is the API host (ecs-vpc.<region>.aliyuncs.com inside a VPC, or a test fake);
	// empty takes the SDK's for the region.
	Endpoint string
	// Scheme is HTTPS (the default) or HTTP (a local fake).
	Scheme string
	// Timeout bounds one call (10 s when zero).
	Timeout time.Duration
	// Retries is how many times a throttled call is tried again (3 when zero; negative: none),
	// waiting 1 s, 2 s, 4 s ….
	Retries int
	// Transport carries the requests (http.DefaultTransport when nil).
	Transport http.RoundTripper
	// Clock times the waits between retries.
	Clock clock.Clock
}

// clients is how many calls run at once.
const clients = 4

// sdkAPI is API on the Alibaba Cloud SDK.
type sdkAPI struct {
	region  string
	pool    *alibabacloud.Pool[*ecs.Client]
	retries int
	clock   clock.Clock
}

// NewAPI returns the ECS API signed with creds.
func NewAPI(cfg ClientConfig, creds credentials.CredentialsProvider) (API, error) {
	scheme := strings.ToUpper(cfg.Scheme)
	if scheme == "" {
		scheme = "HTTPS"
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	pool, err := alibabacloud.NewPool(clients, transport, func(t http.RoundTripper) (*ecs.Client, error) {
		sc := sdk.NewConfig().WithScheme(scheme).WithAutoRetry(false).WithTimeout(timeout)
		sc.Transport = t
		c, err := ecs.NewClientWithOptions(cfg.Region, sc, creds)
		if err != nil {
			return nil, fmt.Errorf("ECS client: %w", alibabacloud.Redact(err))
		}
		c.Domain = cfg.Endpoint
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = 3
	case retries < 0:
		retries = 0
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &sdkAPI{region: cfg.Region, pool: pool, retries: retries, clock: clk}, nil
}

// call runs one API call, retrying throttled ones with exponential backoff, and turns SDK errors
// into the provider's (codes and messages, never the signed URL).
func (a *sdkAPI) call(ctx context.Context, action string, fn func(*ecs.Client) error) error {
	wait := time.Second
	for attempt := 0; ; attempt++ {
		var err error
		a.pool.With(func(c *ecs.Client) { err = fn(c) })
		if err == nil {
			return nil
		}
		err = apiError(action, err)
		if !errors.Is(err, ErrThrottled) || attempt >= a.retries {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-a.clock.After(wait):
		}
		wait *= 2
	}
}

// Codes of ECS errors that mean no capacity for that type in that zone now.
var noStockCodes = []string{"OperationDenied.NoStock", "Zone.NotOnSale", "InvalidInstanceType.ZoneNotSupported", "InvalidResourceType.NotSupported"}

func apiError(action string, err error) error {
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", action, alibabacloud.Redact(err))
	}
	msg := fmt.Sprintf("%s: %s (HTTP %d): %s", action, se.ErrorCode(), se.HttpStatus(), alibabacloud.FirstLine(se.Message()))
	switch {
	case alibabacloud.Throttled(se.ErrorCode(), se.HttpStatus()):
		return fmt.Errorf("%w: %s", ErrThrottled, msg)
	case strings.HasSuffix(se.ErrorCode(), ".NotFound") && strings.Contains(se.ErrorCode(), "InstanceId"):
		return fmt.Errorf("%w: %s", ErrNotFound, msg)
	}
	for _, c := range noStockCodes {
		if se.ErrorCode() == c {
			return fmt.Errorf("%w: %s", ErrNoStock, msg)
		}
	}
	return errors.New(msg)
}

func spotStrategy(spot bool) string {
	if spot {
		return "SpotAsPriceGo"
	}
	return "NoSpot"
}

func (a *sdkAPI) DescribeInstanceTypes(ctx context.Context) ([]ecs.InstanceType, error) {
	var out []ecs.InstanceType
	token := ""
	for page := 0; page < 100; page++ {
		req := ecs.CreateDescribeInstanceTypesRequest()
		req.MaxResults = requests.NewInteger(1600)
		req.NextToken = token
		var resp *ecs.DescribeInstanceTypesResponse
		if err := a.call(ctx, "DescribeInstanceTypes", func(c *ecs.Client) (err error) { resp, err = c.DescribeInstanceTypes(req); return }); err != nil {
			return nil, err
		}
		out = append(out, resp.InstanceTypes.InstanceType...)
		if token = resp.NextToken; token == "" {
			return out, nil
		}
	}
	return nil, errors.New("DescribeInstanceTypes: more than 100 pages")
}

func (a *sdkAPI) DescribeAvailableResource(ctx context.Context, spot bool) ([]ecs.AvailableZone, error) {
	req := ecs.CreateDescribeAvailableResourceRequest()
	req.DestinationResource = "InstanceType"
	req.InstanceChargeType = "PostPaid"
	req.SpotStrategy = spotStrategy(spot)
	var resp *ecs.DescribeAvailableResourceResponse
	if err := a.call(ctx, "DescribeAvailableResource", func(c *ecs.Client) (err error) { resp, err = c.DescribeAvailableResource(req); return }); err != nil {
		return nil, err
	}
	return resp.AvailableZones.AvailableZone, nil
}

func (a *sdkAPI) DescribePrice(ctx context.Context, instanceType string, spot bool) (float64, error) {
	req := ecs.CreateDescribePriceRequest()
	req.ResourceType = "instance"
	req.InstanceType = instanceType
	req.PriceUnit = "Hour"
	req.SpotStrategy = spotStrategy(spot)
	var resp *ecs.DescribePriceResponse
	if err := a.call(ctx, "DescribePrice", func(c *ecs.Client) (err error) { resp, err = c.DescribePrice(req); return }); err != nil {
		return 0, err
	}
	return resp.PriceInfo.Price.TradePrice, nil
}

func (a *sdkAPI) DescribeVSwitches(ctx context.Context, id, vpcID, zoneID string) ([]ecs.VSwitch, error) {
	var out []ecs.VSwitch
	for page := 1; page <= 100; page++ {
		req := ecs.CreateDescribeVSwitchesRequest()
		req.VSwitchId, req.VpcId, req.ZoneId = id, vpcID, zoneID
		req.PageNumber, req.PageSize = requests.NewInteger(page), requests.NewInteger(50)
		var resp *ecs.DescribeVSwitchesResponse
		if err := a.call(ctx, "DescribeVSwitches", func(c *ecs.Client) (err error) { resp, err = c.DescribeVSwitches(req); return }); err != nil {
			return nil, err
		}
		out = append(out, resp.VSwitches.VSwitch...)
		if len(out) >= resp.TotalCount || len(resp.VSwitches.VSwitch) == 0 {
			return out, nil
		}
	}
	return out, nil
}

func (a *sdkAPI) DescribeSecurityGroups(ctx context.Context, id string, tags map[string]string) ([]ecs.SecurityGroup, error) {
	req := ecs.CreateDescribeSecurityGroupsRequest()
	req.SecurityGroupId = id
	req.MaxResults = requests.NewInteger(100)
	if len(tags) > 0 {
		t := make([]ecs.DescribeSecurityGroupsTag, 0, len(tags))
		for k, v := range tags {
			t = append(t, ecs.DescribeSecurityGroupsTag{Key: k, Value: v})
		}
		req.Tag = &t
	}
	var out []ecs.SecurityGroup
	for page := 0; page < 100; page++ {
		var resp *ecs.DescribeSecurityGroupsResponse
		if err := a.call(ctx, "DescribeSecurityGroups", func(c *ecs.Client) (err error) { resp, err = c.DescribeSecurityGroups(req); return }); err != nil {
			return nil, err
		}
		out = append(out, resp.SecurityGroups.SecurityGroup...)
		if resp.NextToken == "" {
			break
		}
		req.NextToken = resp.NextToken
	}
	return out, nil
}

func (a *sdkAPI) DescribeImage(ctx context.Context, id string) (*ecs.Image, error) {
	req := ecs.CreateDescribeImagesRequest()
	req.ImageId = id
	req.Status = "Available"
	var resp *ecs.DescribeImagesResponse
	if err := a.call(ctx, "DescribeImages", func(c *ecs.Client) (err error) { resp, err = c.DescribeImages(req); return }); err != nil {
		return nil, err
	}
	for i := range resp.Images.Image {
		if resp.Images.Image[i].ImageId == id {
			return &resp.Images.Image[i], nil
		}
	}
	return nil, fmt.Errorf("%w: image %s is not available in %s", ErrNotFound, id, a.region)
}

func (a *sdkAPI) RunInstance(ctx context.Context, in RunInput) (string, error) {
	req := ecs.CreateRunInstancesRequest()
	req.InstanceType, req.VSwitchId, req.ImageId = in.InstanceType, in.VSwitchID, in.ImageID
	sgs := append([]string(nil), in.SecurityGroupIDs...)
	req.SecurityGroupIds = &sgs
	req.InstanceChargeType = "PostPaid"
	req.SpotStrategy = spotStrategy(in.Spot)
	req.SystemDiskCategory = in.SystemDiskCategory
	req.SystemDiskSize = fmt.Sprint(in.SystemDiskGiB)
	if in.UserData != "" {
		req.UserData = base64.StdEncoding.EncodeToString([]byte(in.UserData))
	}
	req.RamRoleName = in.RAMRoleName
	req.InstanceName = in.Name
	req.Amount, req.MinAmount = requests.NewInteger(1), requests.NewInteger(1)
	req.ClientToken = in.ClientToken
	tags := make([]ecs.RunInstancesTag, 0, len(in.Tags))
	for k, v := range in.Tags {
		tags = append(tags, ecs.RunInstancesTag{Key: k, Value: v})
	}
	req.Tag = &tags
	var resp *ecs.RunInstancesResponse
	if err := a.call(ctx, "RunInstances", func(c *ecs.Client) (err error) { resp, err = c.RunInstances(req); return }); err != nil {
		return "", err
	}
	if len(resp.InstanceIdSets.InstanceIdSet) != 1 {
		return "", fmt.Errorf("RunInstances: %d instance IDs in the answer, want 1", len(resp.InstanceIdSets.InstanceIdSet))
	}
	return resp.InstanceIdSets.InstanceIdSet[0], nil
}

func (a *sdkAPI) DescribeInstances(ctx context.Context, ids []string, tags map[string]string) ([]ecs.Instance, error) {
	req := ecs.CreateDescribeInstancesRequest()
	req.MaxResults = requests.NewInteger(100)
	if len(ids) > 0 {
		req.InstanceIds = `["` + strings.Join(ids, `","`) + `"]`
	}
	if len(tags) > 0 {
		t := make([]ecs.DescribeInstancesTag, 0, len(tags))
		for k, v := range tags {
			t = append(t, ecs.DescribeInstancesTag{Key: k, Value: v})
		}
		req.Tag = &t
	}
	var out []ecs.Instance
	for page := 0; page < 1000; page++ {
		var resp *ecs.DescribeInstancesResponse
		if err := a.call(ctx, "DescribeInstances", func(c *ecs.Client) (err error) { resp, err = c.DescribeInstances(req); return }); err != nil {
			return nil, err
		}
		out = append(out, resp.Instances.Instance...)
		if resp.NextToken == "" {
			break
		}
		req.NextToken = resp.NextToken
	}
	return out, nil
}

func (a *sdkAPI) DeleteInstance(ctx context.Context, id string) error {
	req := ecs.CreateDeleteInstancesRequest()
	req.InstanceId = &[]string{id}
	req.Force = requests.NewBoolean(true)
	return a.call(ctx, "DeleteInstances", func(c *ecs.Client) (err error) { _, err = c.DeleteInstances(req); return })
}
