// Package sales is the in-step sales event as ready manifests: workloads.yaml (an ingress
// gateway and the checkout service behind it), lockstep.yaml (both tiers on the ingress QPS,
// checkout also on its P99 latency, CronHPAs raising both floors for the sale) and baseline.yaml
// (the same workloads on CPU-utilisation HPAs only). Users apply the files as they are; the load
// harness loads them here, puts them in its namespaces and moves the CronHPA jobs to its run.
package sales

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed workloads.yaml lockstep.yaml baseline.yaml
var files embed.FS

// Policy is how a side of the scenario scales.
type Policy string

const (
	// Lockstep scales both tiers on the ingress QPS, with CronHPA floors for the sale.
	Lockstep Policy = "lockstep"
	// Baseline scales both tiers on CPU utilisation only.
	Baseline Policy = "baseline"
)

// Times are when the sale's CronHPA jobs run.
type Times struct {
	// WarmUp raises the floors; SaleEnd lowers them again.
	WarmUp, SaleEnd time.Time
}

// The CronHPA jobs the manifests hold, by name.
const (
	warmUpJob  = "warm-up"
	saleEndJob = "sale-end"
)

// dateLayout is the CronHPA's one-shot "@date" format.
const dateLayout = "2006-01-02 15:04:05"

// Objects returns a side's objects in namespace: the workloads, then the policy's autoscalers,
// with every CronHPA job moved to t in UTC.
func Objects(policy Policy, namespace string, t Times) ([]*unstructured.Unstructured, error) {
	var file string
	switch policy {
	case Lockstep:
		file = "lockstep.yaml"
	case Baseline:
		file = "baseline.yaml"
	default:
		return nil, fmt.Errorf("unknown policy %q: %s or %s", policy, Lockstep, Baseline)
	}
	if namespace == "" {
		return nil, errors.New("no namespace")
	}
	if policy == Lockstep && !t.SaleEnd.After(t.WarmUp) {
		return nil, fmt.Errorf("the sale ends (%s) before its warm-up (%s)", t.SaleEnd, t.WarmUp)
	}
	var out []*unstructured.Unstructured
	for _, name := range []string{"workloads.yaml", file} {
		objs, err := decode(name)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			o.SetNamespace(namespace)
			if o.GetKind() == "CronHorizontalPodAutoscaler" {
				if err := moveJobs(o, t); err != nil {
					return nil, fmt.Errorf("%s %s: %w", name, o.GetName(), err)
				}
			}
		}
		out = append(out, objs...)
	}
	return out, nil
}

func decode(name string) ([]*unstructured.Unstructured, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		if len(o.Object) > 0 {
			out = append(out, o)
		}
	}
}

// moveJobs sets the CronHPA's time zone to UTC and its jobs' schedules to t.
func moveJobs(o *unstructured.Unstructured, t Times) error {
	jobs, _, err := unstructured.NestedSlice(o.Object, "spec", "jobs")
	if err != nil {
		return fmt.Errorf("reading its jobs: %w", err)
	}
	for i, j := range jobs {
		job, ok := j.(map[string]any)
		if !ok {
			return fmt.Errorf("job %d is not an object", i)
		}
		var at time.Time
		switch job["name"] {
		case warmUpJob:
			at = t.WarmUp
		case saleEndJob:
			at = t.SaleEnd
		default:
			return fmt.Errorf("job %v: the harness knows only %s and %s", job["name"], warmUpJob, saleEndJob)
		}
		job["schedule"] = "@date " + at.UTC().Format(dateLayout)
	}
	if err := unstructured.SetNestedSlice(o.Object, jobs, "spec", "jobs"); err != nil {
		return fmt.Errorf("writing its jobs: %w", err)
	}
	return unstructured.SetNestedField(o.Object, "UTC", "spec", "timezone")
}
