package scrape

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
)

// Annotations that make an application pod a scrape target. The prometheus.io ones are the
// long-standing convention; the profile annotation picks a profile other than the default.
const (
	AnnotationScrape  = "prometheus.io/scrape"
	AnnotationPort    = "prometheus.io/port"
	AnnotationPath    = "prometheus.io/path"
	AnnotationScheme  = "prometheus.io/scheme"
	AnnotationProfile = "metrics.lockstep.dev/profile"
)

// IngressTargets selects ingress controller pods to scrape with one profile.
type IngressTargets struct {
	// Profile is a built-in or custom profile name (ingress-nginx, envoy, istio, traefik, caddy, http-app).
	Profile string `json:"profile"`
	// Namespace limits the search; empty means every namespace.
	Namespace string `json:"namespace,omitempty"`
	// Selector is a label selector for the controller's pods.
	Selector string `json:"selector"`
	// Port is the metrics port: a number or a container port name.
	Port string `json:"port"`
	// Path defaults to /metrics.
	Path string `json:"path,omitempty"`
	// Scheme defaults to http.
	Scheme string `json:"scheme,omitempty"`
}

// Target is one endpoint to scrape.
type Target struct {
	// Key identifies the target across discoveries: profile, URL and pod.
	Key string
	// Name identifies the target in errors: profile and pod.
	Name    string
	URL     string
	Profile string
	// Pod is the serving pod for application targets, nil for ingress controllers.
	Pod *profile.Target
}

// Discover computes the scrape targets among pods: the ingress controller pods each
// IngressTargets selects, and application pods annotated prometheus.io/scrape: "true" (with
// appProfile, unless they name another). Only running pods with an IP are targets. It is pure
// so that discovery is table-tested; errors name the pod or selector at fault and do not stop
// the other targets.
func Discover(pods []*corev1.Pod, ingress []IngressTargets, appProfile string) ([]Target, []error) {
	var out []Target
	var errs []error
	selectors := make([]labels.Selector, len(ingress))
	for i, it := range ingress {
		sel, err := labels.Parse(it.Selector)
		if err != nil {
			errs = append(errs, fmt.Errorf("ingress targets %d (%s): selector %q: %w", i, it.Profile, it.Selector, err))
			continue
		}
		selectors[i] = sel
	}
	for _, pod := range pods {
		if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
			continue
		}
		for i, it := range ingress {
			if selectors[i] == nil || (it.Namespace != "" && it.Namespace != pod.Namespace) || !selectors[i].Matches(labels.Set(pod.Labels)) {
				continue
			}
			port, err := resolvePort(pod, it.Port)
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s/%s (%s): %w", pod.Namespace, pod.Name, it.Profile, err))
				continue
			}
			out = append(out, newTarget(it.Profile, it.Scheme, pod, port, it.Path, nil))
		}
		if appProfile == "" || pod.Annotations[AnnotationScrape] != "true" {
			continue
		}
		port, err := resolvePort(pod, pod.Annotations[AnnotationPort])
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s: annotation %s: %w", pod.Namespace, pod.Name, AnnotationPort, err))
			continue
		}
		prof := appProfile
		if p := pod.Annotations[AnnotationProfile]; p != "" {
			prof = p
		}
		id := &profile.Target{Namespace: pod.Namespace, Pod: pod.Name, Workload: workload(pod)}
		out = append(out, newTarget(prof, pod.Annotations[AnnotationScheme], pod, port, pod.Annotations[AnnotationPath], id))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, errs
}

func newTarget(prof, scheme string, pod *corev1.Pod, port int, path string, app *profile.Target) Target {
	if scheme == "" {
		scheme = "http"
	}
	if path == "" {
		path = "/metrics"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + path
	name := prof + " pod " + pod.Namespace + "/" + pod.Name
	return Target{Key: prof + " " + url + " " + pod.Namespace + "/" + pod.Name, Name: name, URL: url, Profile: prof, Pod: app}
}

// resolvePort finds a port by number or by container port name.
func resolvePort(pod *corev1.Pod, port string) (int, error) {
	if port == "" {
		return 0, fmt.Errorf("no metrics port")
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("port %d out of range", n)
		}
		return n, nil
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port {
				return int(p.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q", port)
}

// workload names the pod's controller, seen through a Deployment's ReplicaSet: the
// ReplicaSet's name without its pod-template-hash suffix.
func workload(pod *corev1.Pod) string {
	for _, o := range pod.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return strings.TrimSuffix(o.Name, "-"+h)
			}
		}
		return o.Name
	}
	return ""
}
