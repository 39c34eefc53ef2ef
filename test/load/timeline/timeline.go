// Package timeline records a load scenario second by second, for each side (Lockstep and the
// baseline): replicas per tier as the HPA decided them and as pods ran and answered, pods
// pending, on serverless capacity and moving back, nodes, and the load's rate, answers and latency. It turns
// the record into the scenario's summary. Observe and Summarize are pure; the Sampler gathers.
package timeline

import (
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/lockstep-dev/lockstep/node-autoscaler/spill"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// Tier is a side's workload: its Deployment and the HPA of the same name.
type Tier struct {
	// Name is the tier's role in the scenario ("ingress", "service").
	Name string `json:"name"`
	// Workload names the Deployment and its HPA.
	Workload string `json:"workload"`
}

// TierSample is one tier at one second.
type TierSample struct {
	// Desired is what the tier's HPA decided (status.desiredReplicas), or the Deployment's
	// replicas while the HPA has decided nothing yet (no metrics: desiredReplicas is 0).
	Desired int32 `json:"desired"`
	// Replicas is the Deployment's spec.replicas.
	Replicas int32 `json:"replicas"`
	// Running pods, of which Backed answer (a real process serves them).
	Running int `json:"running"`
	Backed  int `json:"backed"`
	// Pending pods have no node or have not started.
	Pending int `json:"pending"`
	// Serverless pods run on a virtual node.
	Serverless int `json:"serverless"`
	// MovingBack pods are being moved back from serverless capacity: node-autoscaler released
	// them from their ReplicaSet, and they serve until their replacement on a node is ready.
	MovingBack int `json:"movingBack,omitempty"`
	// Unserved pods have been Ready for UnservedGrace or longer with no backend answering for
	// them: a real cluster would send them requests that nothing serves. The harness's fault,
	// not the autoscaler's, so Summarize refuses a side with any.
	Unserved int `json:"unserved,omitempty"`
	// CPURequest is the cores its running pods request on nodes; ServerlessCPURequest on
	// virtual nodes.
	CPURequest           float64 `json:"cpuRequest"`
	ServerlessCPURequest float64 `json:"serverlessCpuRequest"`
}

// Sample is one side at one second of the run.
type Sample struct {
	// Second is the time from the load's start.
	Second int `json:"second"`
	// Tiers by name.
	Tiers map[string]TierSample `json:"tiers"`
	// Nodes the side's pods may use, and how many are Ready.
	Nodes      int `json:"nodes"`
	NodesReady int `json:"nodesReady"`
	// Load is what was sent in this second: its target rate, how it was answered, and the
	// answered requests' P50 and P99.
	Load `json:"load"`
}

// Load is what the load generator saw for one second.
type Load struct {
	Rate    float64       `json:"rate"`
	Sent    int           `json:"sent"`
	OK      int           `json:"ok"`
	Failed  int           `json:"failed"`
	Errors  int           `json:"errors"`
	Dropped int           `json:"dropped"`
	P50     time.Duration `json:"p50ns"`
	P99     time.Duration `json:"p99ns"`
}

// Cluster is what the sampler read from the API for one side at one moment.
type Cluster struct {
	Deployments []appsv1.Deployment
	HPAs        []autoscalingv2.HorizontalPodAutoscaler
	Pods        []corev1.Pod
	Nodes       []corev1.Node
	// Backed names the pods whose backends answer.
	Backed map[string]bool
	// Now is when it was read (how long pods have been Ready).
	Now time.Time
}

// UnservedGrace is how long a pod may be Ready before its backend answers: kwok marks a pod
// Ready at once, while its process takes a moment to start (on a real kubelet the readiness
// probe waits for it).
const UnservedGrace = 10 * time.Second

// VirtualNodeLabel marks a serverless virtual node (as ACK's virtual-kubelet and
// virtual-kubelet's providers label theirs).
const VirtualNodeLabel = "type"

// VirtualNodeValue is VirtualNodeLabel's value on a virtual node.
const VirtualNodeValue = "virtual-kubelet"

// Observe turns what the sampler read and what the load saw into a Sample of tiers.
func Observe(second int, tiers []Tier, c Cluster, l Load) Sample {
	s := Sample{Second: second, Tiers: map[string]TierSample{}}
	virtual := map[string]bool{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Labels[VirtualNodeLabel] == VirtualNodeValue {
			virtual[n.Name] = true
			continue
		}
		s.Nodes++
		if testbed.NodeReady(n) {
			s.NodesReady++
		}
	}
	for _, t := range tiers {
		s.Tiers[t.Name] = observeTier(t, c, virtual)
	}
	return s.WithLoad(l)
}

// observeTier counts a tier's replicas and pods; virtual names the virtual nodes.
func observeTier(t Tier, c Cluster, virtual map[string]bool) TierSample {
	var ts TierSample
	for i := range c.HPAs {
		if c.HPAs[i].Name == t.Workload {
			ts.Desired = c.HPAs[i].Status.DesiredReplicas
		}
	}
	var selector map[string]string
	for i := range c.Deployments {
		d := &c.Deployments[i]
		if d.Name != t.Workload {
			continue
		}
		if d.Spec.Replicas != nil {
			ts.Replicas = *d.Spec.Replicas
		}
		if d.Spec.Selector != nil {
			selector = d.Spec.Selector.MatchLabels
		}
	}
	for i := range c.Pods {
		p := &c.Pods[i]
		if selector == nil || !matches(selector, workloadLabels(p)) || p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			ts.Running++
			if c.Backed[p.Name] {
				ts.Backed++
			} else if since, ready := readySince(p); ready && !c.Now.IsZero() && c.Now.Sub(since) >= UnservedGrace {
				ts.Unserved++
			}
			if _, ok := p.Annotations[spill.MovingBackAnnotation]; ok {
				ts.MovingBack++
			}
			if virtual[p.Spec.NodeName] {
				ts.Serverless++
				ts.ServerlessCPURequest += cpuRequest(p)
			} else {
				ts.CPURequest += cpuRequest(p)
			}
		case corev1.PodPending:
			ts.Pending++
		}
	}
	if ts.Desired == 0 {
		ts.Desired = ts.Replicas
	}
	return ts
}

// WithLoad returns s with the load of its second set to l.
func (s Sample) WithLoad(l Load) Sample {
	s.Load = l
	return s
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// workloadLabels are the pod's labels with the one node-autoscaler took off when it released
// the pod to move it back (it still serves its workload until its replacement is ready).
func workloadLabels(p *corev1.Pod) map[string]string {
	k, v, ok := strings.Cut(p.Annotations[spill.ReleasedLabelAnnotation], "=")
	if !ok {
		return p.Labels
	}
	out := make(map[string]string, len(p.Labels)+1)
	for lk, lv := range p.Labels {
		out[lk] = lv
	}
	out[k] = v
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// readySince returns when the pod became Ready, and whether it is.
func readySince(p *corev1.Pod) (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
		}
	}
	return time.Time{}, false
}

func cpuRequest(p *corev1.Pod) float64 {
	var cores float64
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			cores += q.AsApproximateFloat64()
		}
	}
	return cores
}
