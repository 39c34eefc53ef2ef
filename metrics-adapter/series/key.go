package series

// Family is what a raw series counts.
type Family uint8

// The families a profile can map a scraped series to. All are counters.
const (
	// Requests counts requests (per status when the series carries one).
	Requests Family = iota + 1
	// DurationBucket is a cumulative latency histogram bucket; Key.LE is its bound in seconds.
	DurationBucket
	// DurationSum is the total latency in seconds of the requests in DurationCount.
	DurationSum
	// DurationCount counts the requests observed by the latency histogram.
	DurationCount
	// RequestBytes counts bytes received from clients (inflow).
	RequestBytes
	// ServerErrors counts requests answered with a server error, for sources that count
	// them apart from Requests (Envoy's upstream_rq_xx beside upstream_rq_total).
	ServerErrors
)

// String names the family in logs and errors.
func (f Family) String() string {
	switch f {
	case Requests:
		return "requests"
	case DurationBucket:
		return "duration_bucket"
	case DurationSum:
		return "duration_sum"
	case DurationCount:
		return "duration_count"
	case RequestBytes:
		return "request_bytes"
	case ServerErrors:
		return "server_errors"
	}
	return "unknown"
}

// Key says what a raw series measures and which Kubernetes objects it belongs to. Empty
// fields are unknown. Many raw series share a Key (they differ in labels the adapter does not
// use, such as method or path); each is kept and rated on its own, then summed, so that a
// counter reset in one does not distort the others.
type Key struct {
	Family Family
	// Namespace of every object below.
	Namespace string
	// Service is the backend Service of an ingress series, or the Service of an app series.
	Service string
	// Port is the backend Service port, as the ingress reports it (number or name).
	Port string
	// Ingress is the networking.k8s.io Ingress that routed the request.
	Ingress string
	// Route is the Gateway API HTTPRoute that routed the request.
	Route string
	// Workload is the Deployment (or other owner) of an app pod.
	Workload string
	// Pod is the pod that served (app tier) the request.
	Pod string
	// Error is true for requests answered with a server error (5xx).
	Error bool
	// LE is the upper bound in seconds of a DurationBucket series.
	LE float64
}

// ObjectKind is a kind of object that series are indexed by.
type ObjectKind uint8

// The object kinds series are indexed by.
const (
	ServiceObject ObjectKind = iota + 1
	IngressObject
	RouteObject
	WorkloadObject
	PodObject
	// NamespaceObject holds every series of a namespace (External metrics without a
	// narrower selector).
	NamespaceObject
)

// Object names one object series are indexed by.
type Object struct {
	Kind      ObjectKind
	Namespace string
	Name      string
}

// objects returns the objects a key belongs to.
func (k Key) objects() []Object {
	out := make([]Object, 0, 6)
	if k.Namespace == "" {
		return out
	}
	out = append(out, Object{NamespaceObject, k.Namespace, ""})
	for _, o := range []struct {
		kind ObjectKind
		name string
	}{{ServiceObject, k.Service}, {IngressObject, k.Ingress}, {RouteObject, k.Route}, {WorkloadObject, k.Workload}, {PodObject, k.Pod}} {
		if o.name != "" {
			out = append(out, Object{o.kind, k.Namespace, o.name})
		}
	}
	return out
}
