package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/cms"
	"github.com/go-logr/logr"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// CloudMonitorConfig configures the CloudMonitor source: load balancer listener metrics of
// CLB (namespace acs_slb_dashboard) and ALB (acs_alb), served on the Kubernetes objects the
// listeners front.
type CloudMonitorConfig struct {
	// Common: refresh defaults to 30s (datapoints are per minute), staleAfter to 5m (a
	// datapoint is stamped with the start of its minute and lands a minute or two later).
	Common
	// Targets map objects to listeners.
	Targets []LBTarget `json:"targets"`
}

// LBTarget maps a Kubernetes object to a load balancer listener.
type LBTarget struct {
	// Kind is Service (default), Ingress or HTTPRoute.
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Port, when set, is the Service port the listener serves: a query that names a port
	// (sls.ingress.route <namespace>-<service>-<port>, or port=) only matches it.
	Port string `json:"port,omitempty"`
	// CLB or ALB names the listener; set one.
	CLB *CLBListener `json:"clb,omitempty"`
	ALB *ALBListener `json:"alb,omitempty"`
}

// CLBListener is a Classic Load Balancer listener.
type CLBListener struct {
	InstanceID string `json:"instanceId"`
	Port       int    `json:"port"`
	// VIP narrows to one service address.
	VIP string `json:"vip,omitempty"`
}

// ALBListener is an Application Load Balancer listener, or one server group behind it.
type ALBListener struct {
	LoadBalancerID   string `json:"loadBalancerId"`
	ListenerProtocol string `json:"listenerProtocol"`
	ListenerPort     int    `json:"listenerPort"`
	// ServerGroupID narrows to the server group of one backend (ALB Ingress creates one
	// per Service).
	ServerGroupID string `json:"serverGroupId,omitempty"`
}

// lbMeasure says how a measure is computed from CloudMonitor metrics: num / den (den empty
// for plain values) times scale.
type lbMeasure struct {
	num, den string
	scale    float64
}

// clbMeasures are the CLB layer-7 listener metrics (per second, Rt in milliseconds,
// TrafficRXNew in bits per second).
var clbMeasures = map[series.Measure]lbMeasure{
	series.RequestRate:    {num: "Qps", scale: 1},
	series.ErrorRatio:     {num: "StatusCode5xx", den: "Qps", scale: 1},
	series.LatencyAverage: {num: "Rt", scale: 0.001},
	series.InflowRate:     {num: "TrafficRXNew", scale: 1.0 / 8},
}

// albListenerMeasures and albGroupMeasures are the ALB listener and server group metrics.
var (
	albListenerMeasures = map[series.Measure]lbMeasure{
		series.RequestRate:    {num: "ListenerQPS", scale: 1},
		series.ErrorRatio:     {num: "ListenerHTTPCode5XX", den: "ListenerQPS", scale: 1},
		series.LatencyAverage: {num: "ListenerRequestTime", scale: 0.001},
		series.InflowRate:     {num: "ListenerInBits", scale: 1.0 / 8},
	}
	albGroupMeasures = map[series.Measure]lbMeasure{
		series.RequestRate:    {num: "ServerGroupQPS", scale: 1},
		series.ErrorRatio:     {num: "ServerGroupHTTPCodeUpstream5XX", den: "ServerGroupQPS", scale: 1},
		series.LatencyAverage: {num: "ServerGroupRequestTime", scale: 0.001},
	}
)

// lbTarget is a validated target.
type lbTarget struct {
	object    series.Object
	port      string
	namespace string
	dims      string
	statistic string
	measures  map[series.Measure]lbMeasure
	desc      string
	// idx is the target's position in the configuration, part of its cache keys.
	idx int
}

type cmsSpec struct {
	target  *lbTarget
	measure series.Measure
}

// CloudMonitor is the CloudMonitor source.
type CloudMonitor struct {
	base[cmsSpec]
	clients    *alibabacloud.Pool[*cms.Client]
	targets    []*lbTarget
	staleAfter time.Duration
	log        logr.Logger
}

var kinds = map[string]series.ObjectKind{"": series.ServiceObject, "Service": series.ServiceObject, "Ingress": series.IngressObject, "HTTPRoute": series.RouteObject}

func (t LBTarget) compile(i int) (*lbTarget, error) {
	where := fmt.Sprintf("alibabaCloud.cloudMonitor.targets[%d]", i)
	kind, ok := kinds[t.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: kind %q: Service, Ingress or HTTPRoute", where, t.Kind)
	}
	if t.Namespace == "" || t.Name == "" {
		return nil, fmt.Errorf("%s: namespace and name are required", where)
	}
	out := &lbTarget{idx: i, object: series.Object{Kind: kind, Namespace: t.Namespace, Name: t.Name}, port: t.Port}
	var dims map[string]string
	switch {
	case (t.CLB == nil) == (t.ALB == nil):
		return nil, fmt.Errorf("%s: set one of clb and alb", where)
	case t.CLB != nil:
		if t.CLB.InstanceID == "" || t.CLB.Port <= 0 || t.CLB.Port > 65535 {
			return nil, fmt.Errorf("%s.clb: instanceId and a port 1-65535 are required", where)
		}
		dims = map[string]string{"instanceId": t.CLB.InstanceID, "port": strconv.Itoa(t.CLB.Port)}
		if t.CLB.VIP != "" {
			dims["vip"] = t.CLB.VIP
		}
		out.namespace, out.statistic, out.measures = "acs_slb_dashboard", "Average", clbMeasures
		out.desc = fmt.Sprintf("CLB %s:%d", t.CLB.InstanceID, t.CLB.Port)
	default:
		a := t.ALB
		if a.LoadBalancerID == "" || a.ListenerPort <= 0 || a.ListenerPort > 65535 {
			return nil, fmt.Errorf("%s.alb: loadBalancerId and a listenerPort 1-65535 are required", where)
		}
		switch a.ListenerProtocol {
		case "HTTP", "HTTPS", "QUIC":
		default:
			return nil, fmt.Errorf("%s.alb: listenerProtocol %q: HTTP, HTTPS or QUIC", where, a.ListenerProtocol)
		}
		dims = map[string]string{"loadBalancerId": a.LoadBalancerID, "listenerProtocol": a.ListenerProtocol, "listenerPort": strconv.Itoa(a.ListenerPort)}
		out.namespace, out.statistic, out.measures = "acs_alb", "Value", albListenerMeasures
		out.desc = fmt.Sprintf("ALB %s %s:%d", a.LoadBalancerID, a.ListenerProtocol, a.ListenerPort)
		if a.ServerGroupID != "" {
			dims["serverGroupId"] = a.ServerGroupID
			out.measures = albGroupMeasures
			out.desc += " server group " + a.ServerGroupID
		}
	}
	b, err := json.Marshal([]map[string]string{dims})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	out.dims = string(b)
	return out, nil
}

// NewCloudMonitor checks the configuration and returns the source; Run keeps it fresh.
func NewCloudMonitor(cfg CloudMonitorConfig, region string, creds credentials.CredentialsProvider, deps Deps) (*CloudMonitor, error) {
	if err := cfg.validate("alibabaCloud.cloudMonitor"); err != nil {
		return nil, err
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("alibabaCloud.cloudMonitor: targets: at least one")
	}
	s := &CloudMonitor{staleAfter: orDefault(cfg.StaleAfter.Duration, 5*time.Minute), log: deps.Log}
	seen := map[string]int{}
	for i, t := range cfg.Targets {
		ct, err := t.compile(i)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%v/%s", ct.object, ct.port)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("alibabaCloud.cloudMonitor.targets[%d]: the same object and port as targets[%d]", i, j)
		}
		seen[key] = i
		s.targets = append(s.targets, ct)
		s.objects = append(s.objects, ct.object)
	}
	if creds == nil {
		return s, nil // validation only
	}
	clients, err := alibabacloud.NewPool(concurrency, deps.Transport, func(t http.RoundTripper) (*cms.Client, error) {
		client, err := cms.NewClientWithOptions(region, cfg.sdkConfig(t), creds)
		if err != nil {
			return nil, fmt.Errorf("alibabaCloud.cloudMonitor: %w", alibabacloud.Redact(err))
		}
		client.Domain = cfg.Endpoint.Endpoint
		return client, nil
	})
	if err != nil {
		return nil, err
	}
	s.clients = clients
	s.cache = newCache(cfg.Common, "CloudMonitor", s.fetch, deps)
	return s, nil
}

// Evaluate implements provider.Source.
func (s *CloudMonitor) Evaluate(q series.Query, now int64) (series.Value, error) {
	t, err := s.target(q)
	if err != nil {
		return series.Value{}, err
	}
	if _, ok := t.measures[q.Measure]; !ok {
		return series.Value{}, fmt.Errorf("%w: CloudMonitor has no such measure for %s (it reports request rate, error ratio, average latency and, for listeners, inflow; no latency quantiles)", series.ErrNoSeries, t.desc)
	}
	spec := cmsSpec{target: t, measure: q.Measure}
	return s.cache.Get(fmt.Sprintf("%d/%d", t.idx, q.Measure), spec, now, s.staleAfter)
}

// target finds the one target that answers q, or says why none does.
func (s *CloudMonitor) target(q series.Query) (*lbTarget, error) {
	if q.Inexact {
		return nil, series.ErrNoSeries
	}
	var found []*lbTarget
	for _, t := range s.targets {
		if t.object != q.Object || (q.Port != "" && t.port != "" && t.port != q.Port) {
			continue
		}
		found = append(found, t)
	}
	for k, v := range q.Filter {
		if k == "port" || (kindLabel[q.Object.Kind] == k && v == q.Object.Name) {
			continue
		}
		// A listener cannot be narrowed by another object's label.
		return nil, series.ErrNoSeries
	}
	switch len(found) {
	case 0:
		return nil, series.ErrNoSeries
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%w: %d CloudMonitor targets serve %s/%s; select one port", series.ErrNoData, len(found), q.Object.Namespace, q.Object.Name)
	}
}

var kindLabel = map[series.ObjectKind]string{series.ServiceObject: "service", series.IngressObject: "ingress", series.RouteObject: "route"}

// fetch computes one measure. The SDK takes no context: its client timeout bounds each call.
func (s *CloudMonitor) fetch(_ context.Context, spec cmsSpec) (series.Value, error) {
	m := spec.target.measures[spec.measure]
	num, ts, err := s.last(spec.target, m.num)
	if err != nil {
		return series.Value{}, err
	}
	v := num
	if m.den != "" {
		den, dts, err := s.last(spec.target, m.den)
		if err != nil {
			return series.Value{}, err
		}
		if den <= 0 {
			return series.Value{}, fmt.Errorf("%w: no requests on %s in the last datapoint, so no ratio", series.ErrNoData, spec.target.desc)
		}
		v, ts = num/den, min(ts, dts)
	}
	return series.Value{V: v * m.scale, Timestamp: ts, Series: 1}, nil
}

// last reads the newest datapoint of one metric with DescribeMetricLast.
func (s *CloudMonitor) last(t *lbTarget, metric string) (float64, int64, error) {
	req := cms.CreateDescribeMetricLastRequest()
	req.Namespace, req.MetricName, req.Dimensions, req.Period = t.namespace, metric, t.dims, "60"
	var resp *cms.DescribeMetricLastResponse
	var err error
	s.clients.With(func(c *cms.Client) { resp, err = c.DescribeMetricLast(req) })
	if err != nil {
		s.log.V(1).Info("CloudMonitor call failed", "metric", metric, "target", t.desc, "err", apiError("DescribeMetricLast", err).Error())
		return 0, 0, apiError("DescribeMetricLast", err)
	}
	if !resp.Success {
		return 0, 0, failure("DescribeMetricLast", resp.Code, resp.Message)
	}
	return newestDatapoint(resp.Datapoints, t.statistic, metric, t.desc)
}

// newestDatapoint picks the newest datapoint of a DescribeMetricLast answer (a JSON array of
// objects with timestamp in Unix milliseconds and one field per statistic) and reads stat.
func newestDatapoint(datapoints, stat, metric, desc string) (float64, int64, error) {
	var points []map[string]any
	if strings.TrimSpace(datapoints) != "" {
		if err := json.Unmarshal([]byte(datapoints), &points); err != nil {
			return 0, 0, fmt.Errorf("CloudMonitor %s for %s: unreadable datapoints: %w", metric, desc, err)
		}
	}
	best, bestTS := map[string]any(nil), int64(math.MinInt64)
	for _, p := range points {
		ts, ok := number(p["timestamp"])
		if ok && int64(ts) > bestTS {
			best, bestTS = p, int64(ts)
		}
	}
	if best == nil {
		return 0, 0, fmt.Errorf("%w: CloudMonitor returned no datapoints of %s for %s", series.ErrNoData, metric, desc)
	}
	v, ok := number(best[stat])
	if !ok {
		return 0, 0, fmt.Errorf("CloudMonitor %s for %s: the datapoint has no %s value", metric, desc, stat)
	}
	return v, bestTS, nil
}

// number reads a JSON number, or a number written as a string.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	default:
		return 0, false
	}
}
