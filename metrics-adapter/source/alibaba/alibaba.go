// Package alibaba holds the metrics-adapter sources that read Alibaba Cloud APIs through
// github.com/aliyun/alibaba-cloud-sdk-go: CloudMonitor (load balancer listener QPS, latency
// and errors of CLB and ALB) and ARMS Application Monitoring (per-application call rate,
// errors and latency). Like every remote source they answer the API from memory and refresh
// in the background. SLS MetricStore and ARMS Prometheus speak PromQL and are read by the
// prometheus source with these credentials (auth.alibabaCloud).
package alibaba

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Config is the alibabaCloud section of the adapter's configuration.
type Config struct {
	// RegionID is the region of the APIs, like cn-hangzhou.
	RegionID string `json:"regionId"`
	// Credentials say where the credentials come from.
	Credentials Credentials `json:"credentials,omitempty"`
	// CloudMonitor, when set, serves load balancer listener metrics.
	CloudMonitor *CloudMonitorConfig `json:"cloudMonitor,omitempty"`
	// ARMS, when set, serves application metrics.
	ARMS *ARMSConfig `json:"arms,omitempty"`
}

// Deps are what the Alibaba Cloud sources need besides their configuration.
type Deps struct {
	Clock clock.WithTicker
	Log   logr.Logger
	// Transport, when set, carries the API calls (tests).
	Transport http.RoundTripper
	// Observer, when set, returns what is told the duration and outcome of every API call
	// of the named source ("cloudmonitor", "arms").
	Observer func(source string) func(took time.Duration, err error)
	// MaxQueries bounds the queries each source refreshes (remote.DefaultMaxWanted when 0).
	MaxQueries int
	// Evicted, when set, returns what is called for each query a source drops to keep
	// MaxQueries.
	Evicted func(source string) func()
}

func (d Deps) observe(source string) func(time.Duration, error) {
	if d.Observer == nil {
		return nil
	}
	return d.Observer(source)
}

// Source is a running Alibaba Cloud source.
type Source interface {
	Evaluate(q series.Query, now int64) (series.Value, error)
	Objects(kind series.ObjectKind) []series.Object
	Run(ctx context.Context)
}

var regionPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Validate checks the configuration without reading credentials.
func (c Config) Validate() error {
	_, _, err := c.build(false, Deps{})
	return err
}

// New builds the configured sources and the credentials they share.
func New(c Config, deps Deps) ([]Source, *CredentialSource, error) {
	return c.build(true, deps)
}

func (c Config) build(connect bool, deps Deps) ([]Source, *CredentialSource, error) {
	if !regionPattern.MatchString(c.RegionID) {
		return nil, nil, fmt.Errorf("alibabaCloud.regionId %q: a region like cn-hangzhou is required", c.RegionID)
	}
	if err := c.Credentials.Validate("alibabaCloud.credentials"); err != nil {
		return nil, nil, err
	}
	var creds *CredentialSource
	if connect {
		var err error
		if creds, err = NewCredentialSource(c.Credentials, c.RegionID); err != nil {
			return nil, nil, fmt.Errorf("alibabaCloud.%w", err)
		}
	}
	var out []Source
	if c.CloudMonitor != nil {
		s, err := NewCloudMonitor(*c.CloudMonitor, c.RegionID, creds.provider(), deps)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
	}
	if c.ARMS != nil {
		s, err := NewARMS(*c.ARMS, c.RegionID, creds.provider(), deps)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
	}
	if !connect {
		return nil, nil, nil
	}
	return out, creds, nil
}
