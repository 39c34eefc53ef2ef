package provider

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// slsRouteLabel selects an ingress route in Alibaba's adapter: <namespace>-<service>-<port>.
const slsRouteLabel = "sls.ingress.route"

// externalQuery builds the query of an External metric from its selector. Standard names take
// namespace (the HPA's namespace when absent), service, port, ingress and route labels; the
// Alibaba names take sls.ingress.route and accept and ignore the other sls.* labels (project,
// logstore, query parameters), which name where that adapter read its logs.
func (p *Provider) externalQuery(m Metric, namespace string, sel labels.Selector) (series.Query, error) {
	q := series.Query{Measure: m.Measure, Quantile: m.Quantile, Window: p.window, StaleAfter: p.staleAfter}
	if sel == nil {
		sel = labels.Everything()
	}
	reqs, _ := sel.Requirements()
	if strings.HasPrefix(m.Name, "sls_") {
		return p.slsQuery(q, m, reqs)
	}
	for _, r := range reqs {
		switch r.Key() {
		case "namespace", "service", "port", "ingress", "route":
		default:
			return q, apierrors.NewBadRequest(fmt.Sprintf("metric %s: unknown selector label %q; use namespace, service, port, ingress or route", m.Name, r.Key()))
		}
	}
	exact, inexact := exactLabels(sel)
	if ns, ok := exact["namespace"]; ok {
		namespace = ns
	}
	switch {
	case exact["service"] != "":
		q.Object = series.Object{Kind: series.ServiceObject, Namespace: namespace, Name: exact["service"]}
	case exact["ingress"] != "":
		q.Object = series.Object{Kind: series.IngressObject, Namespace: namespace, Name: exact["ingress"]}
	case exact["route"] != "":
		q.Object = series.Object{Kind: series.RouteObject, Namespace: namespace, Name: exact["route"]}
	default:
		q.Object = series.Object{Kind: series.NamespaceObject, Namespace: namespace}
	}
	q.Port = exact["port"]
	if q.Match = keyMatcher(sel); q.Match != nil {
		q.Filter, q.Inexact = exact, inexact
		delete(q.Filter, "namespace")
	}
	return q, nil
}

func (p *Provider) slsQuery(q series.Query, m Metric, reqs labels.Requirements) (series.Query, error) {
	route := ""
	for _, r := range reqs {
		if r.Key() == slsRouteLabel {
			v, ok := single(r)
			if !ok {
				return q, apierrors.NewBadRequest(fmt.Sprintf("metric %s: %s must select one route with =", m.Name, slsRouteLabel))
			}
			route = v
			continue
		}
		if !strings.HasPrefix(r.Key(), "sls.") {
			return q, apierrors.NewBadRequest(fmt.Sprintf("metric %s: unknown selector label %q; select with %s: <namespace>-<service>-<port>", m.Name, r.Key(), slsRouteLabel))
		}
	}
	if route == "" {
		return q, apierrors.NewBadRequest(fmt.Sprintf("metric %s needs the selector %s: <namespace>-<service>-<port>", m.Name, slsRouteLabel))
	}
	ns, svc, port, ok := profile.SplitServicePort(route, p.services)
	if !ok {
		return q, apierrors.NewBadRequest(fmt.Sprintf("metric %s: %s=%q does not name an existing Service as <namespace>-<service>-<port>", m.Name, slsRouteLabel, route))
	}
	q.Object = series.Object{Kind: series.ServiceObject, Namespace: ns, Name: svc}
	q.Port = port
	// Ingress controllers that report the backend port (Envoy, Traefik) must match it; those
	// that do not (ingress-nginx, Istio) count for every port of the Service.
	q.Match = func(k series.Key) bool { return k.Port == "" || k.Port == port }
	// A backend query cannot tell "no port label" from "another port": Filter leaves the
	// port out, so remote sources count every port of the Service, as ingress-nginx does.
	return q, nil
}

func single(r labels.Requirement) (string, bool) {
	switch r.Operator() {
	case selection.Equals, selection.DoubleEquals, selection.In:
		if vals := r.Values().UnsortedList(); len(vals) == 1 {
			return vals[0], true
		}
	default:
	}
	return "", false
}
