// Package metricsadapter serves custom.metrics.k8s.io and external.metrics.k8s.io from memory:
// ingress QPS, error ratio and latency quantiles, and application-tier request rate and
// latency, scraped by the embedded scraper (no Prometheus needed) and computed with PromQL
// semantics. Run wires the scraper, the provider and custom-metrics-apiserver together.
package metricsadapter

import (
	"errors"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/scrape"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/alibaba"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/prometheus"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// Config is the adapter's configuration file (--config), YAML or JSON.
type Config struct {
	// ScrapeInterval is how often every target is scraped (default 15s).
	ScrapeInterval Duration `json:"scrapeInterval,omitempty"`
	// ScrapeTimeout bounds one scrape (default 10s, at most the interval).
	ScrapeTimeout Duration `json:"scrapeTimeout,omitempty"`
	// Window is the rate window, like the range in rate(x[1m]) (default 4 scrape intervals).
	Window Duration `json:"window,omitempty"`
	// StaleAfter refuses values whose newest sample is older (default 3 scrape intervals).
	StaleAfter Duration `json:"staleAfter,omitempty"`
	// SeriesLimit is the most series one scrape target may expose (default 100,000); a
	// target above it fails as a whole, like Prometheus' sample_limit.
	SeriesLimit int `json:"seriesLimit,omitempty"`
	// MaxRemoteQueries is the most queries each remote source keeps refreshing (default
	// 10,000); past it the least recently asked is dropped.
	MaxRemoteQueries int `json:"maxRemoteQueries,omitempty"`
	// FrontProxyVerification is "cached" (default): the aggregator's front-proxy client
	// certificate chain is verified once a minute per chain, not on every request; "always"
	// verifies it on every request, as the library does.
	FrontProxyVerification string `json:"frontProxyVerification,omitempty"`
	// Ingress lists the ingress controllers to scrape.
	Ingress []scrape.IngressTargets `json:"ingress,omitempty"`
	// AppProfile is the profile of annotated application pods (default http-app); "none"
	// turns application discovery off.
	AppProfile string `json:"appProfile,omitempty"`
	// Profiles adds custom profiles (or replaces built-in ones of the same name).
	Profiles []profile.Profile `json:"profiles,omitempty"`
	// Prometheus, when set, answers what the embedded scraper has no series for, from a
	// Prometheus-compatible HTTP API with templated queries.
	Prometheus *prometheus.Config `json:"prometheus,omitempty"`
	// AlibabaCloud, when set, adds the CloudMonitor and ARMS sources and gives the
	// credentials that auth.alibabaCloud of the Prometheus source sends (SLS MetricStore,
	// ARMS Prometheus).
	AlibabaCloud *alibaba.Config `json:"alibabaCloud,omitempty"`
}

// Duration is a time.Duration written as "15s" in configuration.
type Duration = remote.Duration

// LoadConfig reads a configuration file; an empty path gives the defaults.
func LoadConfig(path string) (Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path) //nolint:gosec // the operator names the file with --config
		if err != nil {
			return c, fmt.Errorf("reading the configuration: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return c, fmt.Errorf("configuration %s: %w", path, err)
		}
	}
	return c, c.complete()
}

// complete fills defaults and validates, so that a bad configuration fails at start with a
// message naming the field.
func (c *Config) complete() error {
	c.defaults()
	if err := c.validateTiming(); err != nil {
		return err
	}
	if err := c.validatePrometheus(); err != nil {
		return err
	}
	return c.validateProfiles()
}

func (c *Config) defaults() {
	if c.ScrapeInterval.Duration == 0 {
		c.ScrapeInterval.Duration = 15 * time.Second
	}
	if c.ScrapeTimeout.Duration == 0 {
		c.ScrapeTimeout.Duration = min(10*time.Second, c.ScrapeInterval.Duration)
	}
	if c.Window.Duration == 0 {
		c.Window.Duration = 4 * c.ScrapeInterval.Duration
	}
	if c.StaleAfter.Duration == 0 {
		c.StaleAfter.Duration = 3 * c.ScrapeInterval.Duration
	}
	if c.AppProfile == "" {
		c.AppProfile = "http-app"
	}
	if c.FrontProxyVerification == "" {
		c.FrontProxyVerification = "cached"
	}
	if c.SeriesLimit == 0 {
		c.SeriesLimit = scrape.DefaultSeriesLimit
	}
	if c.MaxRemoteQueries == 0 {
		c.MaxRemoteQueries = remote.DefaultMaxWanted
	}
	if c.Prometheus != nil {
		// Remote answers are refreshed as often as targets are scraped.
		c.Prometheus.Refresh = c.ScrapeInterval.Duration
	}
}

func (c *Config) validateTiming() error {
	switch {
	case c.ScrapeInterval.Duration < time.Second:
		return fmt.Errorf("scrapeInterval %s: at least 1s", c.ScrapeInterval)
	case c.ScrapeTimeout.Duration <= 0 || c.ScrapeTimeout.Duration > c.ScrapeInterval.Duration:
		return fmt.Errorf("scrapeTimeout %s: positive and at most scrapeInterval (%s)", c.ScrapeTimeout, c.ScrapeInterval)
	case c.Window.Duration < 2*c.ScrapeInterval.Duration:
		return fmt.Errorf("window %s: at least two scrape intervals (%s), or a rate has fewer than two samples", c.Window, 2*c.ScrapeInterval.Duration)
	case c.StaleAfter.Duration <= c.ScrapeInterval.Duration:
		return fmt.Errorf("staleAfter %s: longer than scrapeInterval (%s)", c.StaleAfter, c.ScrapeInterval)
	case c.FrontProxyVerification != "cached" && c.FrontProxyVerification != "always":
		return fmt.Errorf("frontProxyVerification %q: cached or always", c.FrontProxyVerification)
	case c.SeriesLimit < 0:
		return fmt.Errorf("seriesLimit %d: must be positive", c.SeriesLimit)
	case c.MaxRemoteQueries < 0:
		return fmt.Errorf("maxRemoteQueries %d: must be positive", c.MaxRemoteQueries)
	}
	return nil
}

func (c *Config) validatePrometheus() error {
	if c.AlibabaCloud != nil {
		if err := c.AlibabaCloud.Validate(); err != nil {
			return err
		}
	}
	if c.Prometheus == nil {
		return nil
	}
	if c.Prometheus.Auth != nil && c.Prometheus.Auth.AlibabaCloud && c.AlibabaCloud == nil {
		return errors.New("prometheus.auth.alibabaCloud: needs the alibabaCloud section (regionId and credentials)")
	}
	_, err := prometheus.New(*c.Prometheus, prometheus.Deps{})
	return err
}

func (c *Config) validateProfiles() error {
	profiles := c.AllProfiles()
	for i, it := range c.Ingress {
		if _, ok := profiles[it.Profile]; !ok {
			return fmt.Errorf("ingress[%d]: unknown profile %q", i, it.Profile)
		}
		if it.Selector == "" || it.Port == "" {
			return fmt.Errorf("ingress[%d] (%s): selector and port are required", i, it.Profile)
		}
	}
	if _, ok := profiles[c.AppProfile]; !ok && c.AppProfile != "none" {
		return fmt.Errorf("appProfile: unknown profile %q", c.AppProfile)
	}
	for _, p := range c.Profiles {
		if p.Name == "" || (p.Tier != profile.IngressTier && p.Tier != profile.AppTier) {
			return fmt.Errorf("profile %q: a name and tier ingress or app are required", p.Name)
		}
		if _, err := scrape.NewMapper(p); err != nil {
			return err
		}
	}
	return nil
}

// AllProfiles returns the built-in profiles with the custom ones added.
func (c *Config) AllProfiles() map[string]profile.Profile {
	out := profile.Builtin()
	for _, p := range c.Profiles {
		out[p.Name] = p
	}
	return out
}
