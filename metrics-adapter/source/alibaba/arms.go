package alibaba

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/arms"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// ARMSConfig configures the ARMS Application Monitoring source: the inbound call statistics
// (appstat.incall) of an ARMS application, served on the Deployment that runs it.
type ARMSConfig struct {
	// Common: refresh defaults to 30s, staleAfter (a value whose window ended longer ago
	// is refused) to Delay + 2m.
	Common
	// Window is the span a value covers (default 2m, at least 1m: ARMS aggregates per
	// minute).
	Window remote.Duration `json:"window,omitempty"`
	// Delay is how far behind now the window ends, so that ARMS has finished aggregating it
	// (default 1m).
	Delay remote.Duration `json:"delay,omitempty"`
	// Targets map Deployments to ARMS applications.
	Targets []AppTarget `json:"targets"`
}

// AppTarget maps a Deployment to an ARMS application.
type AppTarget struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	// PID is the ARMS application ID, like abc123@4ad4bd7e1c8a1c1.
	PID string `json:"pid"`
	// RPC, when set, narrows to one interface (like "/api/checkout").
	RPC string `json:"rpc,omitempty"`
}

type armsTarget struct {
	idx    int
	object series.Object
	pid    string
	rpc    string
}

type armsSpec struct {
	target  *armsTarget
	measure series.Measure
}

// ARMS is the ARMS Application Monitoring source.
type ARMS struct {
	base[armsSpec]
	clients    *alibabacloud.Pool[*arms.Client]
	clock      clock.WithTicker
	window     time.Duration
	delay      time.Duration
	staleAfter time.Duration
	targets    []*armsTarget
	log        logr.Logger
}

// NewARMS checks the configuration and returns the source; Run keeps it fresh. With nil
// credentials it only validates.
func NewARMS(cfg ARMSConfig, region string, creds credentials.CredentialsProvider, deps Deps) (*ARMS, error) {
	if err := cfg.validate("alibabaCloud.arms"); err != nil {
		return nil, err
	}
	s := &ARMS{window: orDefault(cfg.Window.Duration, 2*time.Minute), delay: orDefault(cfg.Delay.Duration, time.Minute), log: deps.Log, clock: deps.Clock}
	s.staleAfter = orDefault(cfg.StaleAfter.Duration, s.delay+2*time.Minute)
	refresh := cfg.refresh()
	switch {
	case len(cfg.Targets) == 0:
		return nil, errors.New("alibabaCloud.arms: targets: at least one")
	case s.window < time.Minute || s.window%time.Minute != 0:
		return nil, fmt.Errorf("alibabaCloud.arms.window %s: whole minutes, at least 1m", s.window)
	case s.staleAfter <= s.delay+refresh:
		return nil, fmt.Errorf("alibabaCloud.arms.staleAfter %s: longer than delay + refresh (%s)", s.staleAfter, s.delay+refresh)
	}
	seen := map[series.Object]int{}
	for i, t := range cfg.Targets {
		if t.Namespace == "" || t.Deployment == "" || t.PID == "" {
			return nil, fmt.Errorf("alibabaCloud.arms.targets[%d]: namespace, deployment and pid are required", i)
		}
		obj := series.Object{Kind: series.WorkloadObject, Namespace: t.Namespace, Name: t.Deployment}
		if j, dup := seen[obj]; dup {
			return nil, fmt.Errorf("alibabaCloud.arms.targets[%d]: the same Deployment as targets[%d]", i, j)
		}
		seen[obj] = i
		s.targets = append(s.targets, &armsTarget{idx: i, object: obj, pid: t.PID, rpc: t.RPC})
		s.objects = append(s.objects, obj)
	}
	if creds == nil {
		return s, nil
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	clients, err := alibabacloud.NewPool(concurrency, deps.Transport, func(t http.RoundTripper) (*arms.Client, error) {
		client, err := arms.NewClientWithOptions(region, cfg.sdkConfig(t), creds)
		if err != nil {
			return nil, fmt.Errorf("alibabaCloud.arms: %w", alibabacloud.Redact(err))
		}
		client.Domain = cfg.Endpoint.Endpoint
		return client, nil
	})
	if err != nil {
		return nil, err
	}
	s.clients = clients
	deps.Clock = s.clock
	s.cache = newCache(cfg.Common, "ARMS", s.fetch, deps)
	return s, nil
}

// Evaluate implements provider.Source: Deployment metrics.
func (s *ARMS) Evaluate(q series.Query, now int64) (series.Value, error) {
	if q.Object.Kind != series.WorkloadObject || q.Inexact || len(q.Filter) > 0 {
		return series.Value{}, series.ErrNoSeries
	}
	var t *armsTarget
	for _, c := range s.targets {
		if c.object == q.Object {
			t = c
			break
		}
	}
	switch {
	case t == nil:
		return series.Value{}, series.ErrNoSeries
	case q.Measure != series.RequestRate && q.Measure != series.ErrorRatio && q.Measure != series.LatencyAverage:
		return series.Value{}, fmt.Errorf("%w: ARMS reports request rate, error ratio and average latency for %s, no quantiles", series.ErrNoSeries, t.pid)
	}
	return s.cache.Get(fmt.Sprintf("%d/%d", t.idx, q.Measure), armsSpec{target: t, measure: q.Measure}, now, s.staleAfter)
}

// QueryMetricByPage paging: items per page, and the most pages read for one answer.
const (
	armsPageSize = 100
	armsMaxPages = 10
)

// fetch asks QueryMetricByPage for the calls of the window that ended Delay ago, as one
// slice, and computes the measure. The SDK takes no context: its client timeout bounds it.
func (s *ARMS) fetch(_ context.Context, spec armsSpec) (series.Value, error) {
	t := spec.target
	end := s.clock.Now().Add(-s.delay).Truncate(time.Minute)
	start := end.Add(-s.window)
	filters := []arms.QueryMetricByPageFilters{{Key: "pid", Value: t.pid}}
	if t.rpc != "" {
		filters = append(filters, arms.QueryMetricByPageFilters{Key: "rpc", Value: t.rpc})
	}
	// One item per interface and host: read every page, or refuse the answer. A sum over the
	// first page alone would be a smaller number, not an error.
	var items []map[string]any
	for page := 1; ; page++ {
		req := arms.CreateQueryMetricByPageRequest()
		req.Metric = "appstat.incall"
		req.Measures = &[]string{"count", "rt", "error"}
		req.IntervalInSec = requests.NewInteger(int(s.window.Milliseconds()))
		req.StartTime = requests.NewInteger64(start.UnixMilli())
		req.EndTime = requests.NewInteger64(end.UnixMilli())
		req.CurrentPage = requests.NewInteger(page)
		req.PageSize = requests.NewInteger(armsPageSize)
		req.Filters = &filters
		var resp *arms.QueryMetricByPageResponse
		var err error
		s.clients.With(func(c *arms.Client) { resp, err = c.QueryMetricByPage(req) })
		if err != nil {
			err = apiError("QueryMetricByPage", err)
			s.log.V(1).Info("ARMS call failed", "pid", t.pid, "page", page, "err", err.Error())
			return series.Value{}, err
		}
		if !resp.Success {
			return series.Value{}, failure("QueryMetricByPage", resp.Code, resp.Message)
		}
		items = append(items, resp.Data.Items...)
		if len(items) >= resp.Data.Total || len(resp.Data.Items) == 0 {
			if len(items) < resp.Data.Total {
				return series.Value{}, fmt.Errorf("%w: ARMS reported %d call statistics for %s but returned %d", series.ErrIncomplete, resp.Data.Total, t.pid, len(items))
			}
			break
		}
		if page == armsMaxPages {
			return series.Value{}, fmt.Errorf("%w: ARMS has %d call statistics for %s, more than the %d pages read; narrow the target with rpc", series.ErrIncomplete, resp.Data.Total, t.pid, armsMaxPages)
		}
	}
	if len(items) == 0 {
		return series.Value{}, fmt.Errorf("%w: ARMS returned no call statistics for %s between %s and %s", series.ErrNoData, t.pid,
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	var count, errs, rtSum float64
	for i, item := range items {
		c, ok1 := number(item["count"])
		e, ok2 := number(item["error"])
		rt, ok3 := number(item["rt"])
		if !ok1 || !ok2 || !ok3 {
			return series.Value{}, fmt.Errorf("QueryMetricByPage: item %d for %s lacks count, error or rt", i, t.pid)
		}
		count, errs, rtSum = count+c, errs+e, rtSum+rt*c
	}
	v := series.Value{Timestamp: end.UnixMilli(), Series: len(items)}
	switch {
	case spec.measure == series.RequestRate:
		v.V = count / s.window.Seconds()
	case count <= 0:
		return series.Value{}, fmt.Errorf("%w: no calls to %s in the window, so no ratio or latency", series.ErrNoData, t.pid)
	case spec.measure == series.ErrorRatio:
		v.V = errs / count
	default: // LatencyAverage: rt is the mean in milliseconds of each item's calls.
		v.V = rtSum / count / 1000
	}
	return v, nil
}
