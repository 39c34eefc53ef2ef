package profile

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// Rule maps one scraped metric to series keys. JSON/YAML field names are those of the
// adapter's configuration file (custom rules).
type Rule struct {
	// Metric is the scraped metric name, including any _total, _bucket, _sum or _count suffix.
	Metric string `json:"metric"`
	// Families says what the metric counts; a histogram's _count can be both requests and
	// the latency histogram's count.
	Families []series.Family `json:"-"`
	// FamilyNames is Families as written in configuration: requests, duration_bucket,
	// duration_sum, duration_count, request_bytes, server_errors.
	FamilyNames []string `json:"families"`
	// Match keeps only series whose labels have these exact values.
	Match map[string]string `json:"match,omitempty"`
	// Labels name the labels holding each object; an empty name means "not in this metric".
	Labels Labels `json:"labels"`
	// Unit multiplies durations (sum and bucket bounds) into seconds: 0.001 for milliseconds.
	// Zero means 1.
	Unit float64 `json:"unit,omitempty"`
	// Status names the label with the response status (code like 503, or class like 5 or
	// 5xx); a value starting with 5 marks a server error.
	Status string `json:"status,omitempty"`
	// Parse decodes one label into objects, for metrics that pack several into one value
	// (Envoy cluster names, Traefik service names).
	Parse *Parser `json:"-"`
}

// Labels name the labels that hold each object of a series.Key.
type Labels struct {
	Namespace string `json:"namespace,omitempty"`
	Service   string `json:"service,omitempty"`
	Port      string `json:"port,omitempty"`
	Ingress   string `json:"ingress,omitempty"`
	Route     string `json:"route,omitempty"`
	Workload  string `json:"workload,omitempty"`
	Pod       string `json:"pod,omitempty"`
}

// Parser decodes the value of one label into the objects of a key.
type Parser struct {
	// Label is the label to decode.
	Label string
	// Decode fills the key from the label's value and reports whether it understood it.
	Decode func(value string, into *series.Key, services Services) bool
}

// Services tells which Services exist, to split names that join a namespace, a Service and
// a port with dashes ("shop-checkout-api-80"), where dashes also occur inside names.
type Services interface {
	ServiceExists(namespace, name string) bool
}

// LabelSet is read access to one series' labels.
type LabelSet interface {
	Get(name string) string
}

// Target is what is known about the scraped target itself; application pods found by
// annotation supply their own identity, which fills whatever the labels do not.
type Target struct {
	Namespace string
	Pod       string
	Workload  string
}

// Apply maps one sample's labels under this rule. It appends the keys (one per family) to
// dst; ok is false when the series is not for this rule (a Match label differs, or no
// namespace could be found). target is the scraped pod when it is the pod that served the
// requests (application tier), nil for an ingress controller.
func (r *Rule) Apply(dst []series.Key, labels LabelSet, target *Target, services Services) ([]series.Key, bool) {
	for name, want := range r.Match {
		if labels.Get(name) != want {
			return dst, false
		}
	}
	var k series.Key
	get := func(name string) string {
		if name == "" {
			return ""
		}
		return labels.Get(name)
	}
	k.Namespace = get(r.Labels.Namespace)
	k.Service = get(r.Labels.Service)
	k.Port = get(r.Labels.Port)
	k.Ingress = get(r.Labels.Ingress)
	k.Route = get(r.Labels.Route)
	k.Workload = get(r.Labels.Workload)
	k.Pod = get(r.Labels.Pod)
	if r.Parse != nil && !r.Parse.Decode(labels.Get(r.Parse.Label), &k, services) {
		return dst, false
	}
	if target != nil {
		k.Namespace, k.Pod = target.Namespace, target.Pod
		k.Workload = firstNonEmpty(target.Workload, k.Workload)
	}
	if k.Namespace == "" {
		return dst, false
	}
	if r.Status != "" {
		k.Error = strings.HasPrefix(labels.Get(r.Status), "5")
	}
	for _, f := range r.Families {
		fk := k
		fk.Family = f
		switch f {
		case series.DurationBucket:
			le, err := strconv.ParseFloat(labels.Get("le"), 64)
			if err != nil || math.IsNaN(le) {
				return dst, false
			}
			fk.LE = le * r.unit()
		case series.ServerErrors:
			if !k.Error {
				continue
			}
		default:
		}
		dst = append(dst, fk)
	}
	return dst, true
}

// Scale returns the factor a sample value of family f is multiplied by: durations into
// seconds; everything else unchanged.
func (r *Rule) Scale(f series.Family) float64 {
	if f == series.DurationSum {
		return r.unit()
	}
	return 1
}

func (r *Rule) unit() float64 {
	if r.Unit == 0 {
		return 1
	}
	return r.Unit
}

// Compile checks a rule and resolves FamilyNames into Families.
func (r *Rule) Compile() error {
	if r.Metric == "" {
		return fmt.Errorf("a rule needs a metric name")
	}
	if len(r.Families) == 0 {
		for _, n := range r.FamilyNames {
			f, ok := familyByName[n]
			if !ok {
				return fmt.Errorf("rule for %s: unknown family %q (want one of requests, duration_bucket, duration_sum, duration_count, request_bytes, server_errors)", r.Metric, n)
			}
			r.Families = append(r.Families, f)
		}
	}
	if len(r.Families) == 0 {
		return fmt.Errorf("rule for %s: no families", r.Metric)
	}
	if r.Unit < 0 || math.IsNaN(r.Unit) || math.IsInf(r.Unit, 0) {
		return fmt.Errorf("rule for %s: unit must be a positive factor", r.Metric)
	}
	return nil
}

var familyByName = map[string]series.Family{
	"requests":        series.Requests,
	"duration_bucket": series.DurationBucket,
	"duration_sum":    series.DurationSum,
	"duration_count":  series.DurationCount,
	"request_bytes":   series.RequestBytes,
	"server_errors":   series.ServerErrors,
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
