package install_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

const (
	releaseNS = "lockstep-system"
	chartDir  = "../../chart"
)

var (
	cronHPAGVR       = schema.GroupVersionResource{Group: "autoscaling.alibabacloud.com", Version: "v1beta1", Resource: "cronhorizontalpodautoscalers"}
	vpaGVR           = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}
	nodePoolGVR      = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	nodeClaimGVR     = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}
	kwokNodeClassGVR = schema.GroupVersionResource{Group: "karpenter.kwok.sh", Version: "v1alpha1", Resource: "kwoknodeclasses"}
	crdGVR           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// The chart, installed with helm from `make image`'s archives, runs all four components on the
// real node; each does its work under its own service account and is refused what it must not
// do; an upgrade rotates the serving certificates with no failed call; uninstall keeps the CRDs.
func TestInstallOnRealNode(t *testing.T) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real node Ready with the images imported %s after its first step", env.RealNodeStartup.Round(time.Millisecond))

	start := time.Now()
	framework.Helm(t, env, "install", "lockstep", chartDir, "--namespace", releaseNS, "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "nodeAutoscaler.enabled=true",
		// No virtual node on the bed: spilling is the node-autoscaler's own bed tests' subject.
		"--set", "nodeAutoscaler.spill.enabled=false",
		"--set", "metricsAdapter.config.scrapeInterval=2s")
	t.Logf("helm install --wait: every Deployment available %s after the command started", time.Since(start).Round(time.Millisecond))
	pods := checkPodsRunForReal(t, cs)
	checkLeaders(t, cs, pods)

	ns := framework.Namespace(t, cs)
	t.Run("cronhpa", func(t *testing.T) { checkCronHPA(t, cs, dyn, ns) })
	t.Run("metrics-adapter", func(t *testing.T) { checkMetricsAdapter(t, cs, ns) })
	t.Run("vpa-inplace", func(t *testing.T) { checkVPAInplace(t, dyn, ns) })
	t.Run("node-autoscaler", func(t *testing.T) { checkNodeAutoscaler(t, cs, dyn, ns) })
	t.Run("refused", func(t *testing.T) { checkRefused(t, cs, env) })
	t.Run("upgrade", func(t *testing.T) { checkUpgradeWithoutUnavailability(t, cs, dyn, env, ns) })
	t.Run("uninstall", func(t *testing.T) { checkUninstall(t, cs, dyn, env) })
}

// checkPodsRunForReal: two pods per component, all Running and Ready on the real node (the
// kubelet's real probes passed), never restarted, with probes and restricted security contexts.
func checkPodsRunForReal(t *testing.T, cs kubernetes.Interface) map[string][]corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byComponent := map[string][]corev1.Pod{}
	for _, p := range list.Items {
		c := p.Labels["app.kubernetes.io/component"]
		byComponent[c] = append(byComponent[c], p)
		if p.Spec.NodeName != testbed.RealNodeName || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
			t.Errorf("pod %s: node %q, phase %s, ready %v; want Running and Ready on %s", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p), testbed.RealNodeName)
		}
		for _, st := range p.Status.ContainerStatuses {
			if st.RestartCount != 0 {
				t.Errorf("pod %s container %s restarted %d times", p.Name, st.Name, st.RestartCount)
			}
		}
		for _, ctr := range p.Spec.Containers {
			sc := ctr.SecurityContext
			if ctr.ReadinessProbe == nil || ctr.LivenessProbe == nil {
				t.Errorf("pod %s container %s lacks a readiness or liveness probe", p.Name, ctr.Name)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("pod %s container %s: security context %+v is not restricted", p.Name, ctr.Name, sc)
			}
		}
	}
	for _, c := range components {
		if len(byComponent[c]) != 2 {
			t.Errorf("%s: %d pods, want 2", c, len(byComponent[c]))
		}
	}
	return byComponent
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// checkLeaders: each controller's leader is one of its own pods (the lease was taken with the
// pod's service account).
func checkLeaders(t *testing.T, cs kubernetes.Interface, pods map[string][]corev1.Pod) {
	t.Helper()
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		leases, err := cs.CoordinationV1().Leases(releaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, c := range []string{"cronhpa", "vpa-inplace", "node-autoscaler"} {
			found := false
			for _, l := range leases.Items {
				holder := ptr.Deref(l.Spec.HolderIdentity, "")
				for _, p := range pods[c] {
					if strings.HasPrefix(holder, p.Name) {
						found = true
					}
				}
			}
			if !found {
				return fmt.Errorf("no lease in %s is held by a %s pod", releaseNS, c)
			}
		}
		return nil
	})
}

// probeDeployment runs the probe image (imported, never pulled) on the real node.
func probeDeployment(name string, replicas int32, args ...string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{testbed.RealNodeLabel: "true"},
					Containers: []corev1.Container{{
						Name: "probe", Image: testbed.ProbeImage, ImagePullPolicy: corev1.PullNever, Args: args,
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

func cronHPA(ns, name, target, schedule string, size int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.alibabacloud.com/v1beta1", "kind": "CronHorizontalPodAutoscaler",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"scaleTargetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
			"jobs":           []any{map[string]any{"name": "sale", "schedule": schedule, "targetSize": size}},
		},
	}}
}

// checkCronHPA: the chart's webhook refuses an invalid object, and the chart's controller runs a
// valid one: the Deployment is scaled at the date and the run recorded.
func checkCronHPA(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, probeDeployment("batch", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := dyn.Resource(cronHPAGVR).Namespace(ns).Create(ctx, cronHPA(ns, "broken", "batch", "every tuesday", 3), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "denied the request") {
		t.Fatalf("an invalid schedule should be refused by the webhook, got %v", err)
	}
	date := time.Now().UTC().Add(5 * time.Second).Truncate(time.Second).Format("2006-01-02 15:04:05")
	if _, err := dyn.Resource(cronHPAGVR).Namespace(ns).Create(ctx, cronHPA(ns, "sale", "batch", "@date "+date, 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "batch", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 2 {
			return fmt.Errorf("batch has %d replicas, want 2 after the scheduled time", *d.Spec.Replicas)
		}
		obj, err := dyn.Resource(cronHPAGVR).Namespace(ns).Get(ctx, "sale", metav1.GetOptions{})
		if err != nil {
			return err
		}
		records, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, r := range records {
			if m, ok := r.(map[string]any); ok && m["state"] == "Succeed" {
				return nil
			}
		}
		return fmt.Errorf("no Succeed record yet: %v", records)
	})
}

// checkMetricsAdapter: an HPA on requests_per_second gets its value from the chart's adapter,
// which scraped an ingress-nginx style endpoint running on the real node.
func checkMetricsAdapter(t *testing.T, cs kubernetes.Interface, ns string) {
	ctx := context.Background()
	ingress := probeDeployment("ingress-nginx", 1, "--ingress-nginx-metrics=:10254", "--namespace="+ns, "--service=checkout", "--ingress=web", "--rate=20")
	ingress.Spec.Template.Labels = map[string]string{"app": "ingress-nginx", "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, ingress, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "gateway"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, probeDeployment("gateway", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "gateway"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "gateway"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    3,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ObjectMetricSourceType,
				Object: &autoscalingv2.ObjectMetricSource{
					DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "Service", Name: "checkout"},
					Metric:          autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
					Target:          autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("5"))},
				},
			}},
		},
	}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 3*time.Minute, func(ctx context.Context) error {
		got, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "gateway", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, m := range got.Status.CurrentMetrics {
			if m.Object != nil && m.Object.Current.AverageValue != nil && m.Object.Current.AverageValue.MilliValue() > 0 {
				t.Logf("HPA gateway: requests_per_second %s per replica, desired replicas %d", m.Object.Current.AverageValue, got.Status.DesiredReplicas)
				if got.Status.DesiredReplicas < 2 {
					return fmt.Errorf("desired replicas %d at 20 req/s against 5 per replica", got.Status.DesiredReplicas)
				}
				return nil
			}
		}
		return fmt.Errorf("no value yet; conditions %+v", got.Status.Conditions)
	})
}

// checkVPAInplace: the chart's vpa-inplace takes a VPA naming it and writes its status.
func checkVPAInplace(t *testing.T, dyn dynamic.Interface, ns string) {
	ctx := context.Background()
	vpa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
		"metadata": map[string]any{"name": "batch", "namespace": ns},
		"spec": map[string]any{
			"targetRef":    map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "batch"},
			"recommenders": []any{map[string]any{"name": "lockstep"}},
			"updatePolicy": map[string]any{"updateMode": "Off"},
		},
	}}
	if _, err := dyn.Resource(vpaGVR).Namespace(ns).Create(ctx, vpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		obj, err := dyn.Resource(vpaGVR).Namespace(ns).Get(ctx, "batch", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "NoPodsMatched" && m["status"] == "False" {
				return nil
			}
		}
		return fmt.Errorf("VPA status not written yet: %v", conds)
	})
}

// checkNodeAutoscaler: a pod that fits only a NodePool's nodes makes the chart's node-autoscaler
// launch a NodeClaim; its kwok node registers and the pod runs there.
func checkNodeAutoscaler(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	ctx := context.Background()
	class := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": map[string]any{"name": "install-test"},
	}}
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": map[string]any{"name": "install-test"},
		"spec": map[string]any{
			"template": map[string]any{"spec": map[string]any{
				"nodeClassRef": map[string]any{"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "install-test"},
				"requirements": []any{
					map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"on-demand"}},
					map[string]any{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": []any{"c-4x-amd64-linux"}},
				},
				"expireAfter": "Never",
			}},
			"limits": map[string]any{"cpu": "8"},
		},
	}}
	for gvr, obj := range map[schema.GroupVersionResource]*unstructured.Unstructured{kwokNodeClassGVR: class, nodePoolGVR: pool} {
		if _, err := dyn.Resource(gvr).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	burst := probeDeployment("burst", 1)
	burst.Spec.Template.Spec.NodeSelector = map[string]string{"karpenter.sh/nodepool": "install-test"}
	burst.Spec.Template.Spec.Containers[0].ReadinessProbe = nil // kwok runs it: nothing to probe.
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, burst, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		claims, err := dyn.Resource(nodeClaimGVR).List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=install-test"})
		if err != nil {
			return err
		}
		if len(claims.Items) == 0 {
			return errors.New("no NodeClaim launched for the pending pod")
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=burst"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" && p.Spec.NodeName != testbed.RealNodeName {
				return nil
			}
		}
		return fmt.Errorf("%d NodeClaims, burst pod not running on its node yet", len(claims.Items))
	})
	// The pool is emptied and deleted so the upgrade and uninstall below see a quiet cluster.
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "burst", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = dyn.Resource(nodePoolGVR).Delete(ctx, "install-test", metav1.DeleteOptions{})
}

// refusals: per component, a verb its service account needs and one it must not have.
var refusals = map[string]struct {
	allowed, refused authorizationv1.ResourceAttributes
}{
	"cronhpa": {
		allowed: authorizationv1.ResourceAttributes{Group: "apps", Resource: "deployments", Subresource: "scale", Verb: "update", Namespace: "default"},
		refused: authorizationv1.ResourceAttributes{Resource: "secrets", Verb: "get", Namespace: "kube-system"},
	},
	"metrics-adapter": {
		allowed: authorizationv1.ResourceAttributes{Resource: "pods", Verb: "list"},
		refused: authorizationv1.ResourceAttributes{Resource: "pods", Verb: "delete", Namespace: "default"},
	},
	"vpa-inplace": {
		allowed: authorizationv1.ResourceAttributes{Resource: "pods", Subresource: "resize", Verb: "patch", Namespace: "default"},
		// Resizes go through pods/resize; the pod itself is patched only for the updater's
		// state annotation, and never deleted (an eviction is the only way a pod goes).
		refused: authorizationv1.ResourceAttributes{Resource: "pods", Verb: "delete", Namespace: "default"},
	},
	"node-autoscaler": {
		allowed: authorizationv1.ResourceAttributes{Group: "karpenter.sh", Resource: "nodeclaims", Verb: "create"},
		refused: authorizationv1.ResourceAttributes{Group: "apps", Resource: "deployments", Verb: "update", Namespace: "default"},
	},
}

// checkRefused: with a token of each component's own service account, the API server answers
// its SelfSubjectAccessReviews (allowed for a verb it needs, refused for one it must not have),
// and refuses the forbidden call itself.
func checkRefused(t *testing.T, cs kubernetes.Interface, env *testbed.Env) {
	ctx := context.Background()
	for _, c := range components {
		sa := "lockstep-" + c
		tr, err := cs.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: token: %v", c, err)
		}
		cfg := rest.AnonymousClientConfig(env.Config)
		cfg.BearerToken = tr.Status.Token
		own, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := refusals[c]
		for _, tc := range []struct {
			attrs authorizationv1.ResourceAttributes
			want  bool
		}{{r.allowed, true}, {r.refused, false}} {
			review, err := own.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &tc.attrs},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: review: %v", c, err)
			}
			if review.Status.Allowed != tc.want {
				t.Errorf("%s may %s %s/%s in %q: %v, want %v", sa, tc.attrs.Verb, tc.attrs.Resource, tc.attrs.Subresource, tc.attrs.Namespace, review.Status.Allowed, tc.want)
			}
		}
		if c == "cronhpa" {
			_, err := own.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{})
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s reading a Secret: %v, want Forbidden", sa, err)
			}
		}
	}
}

// servingPods returns the address (pod IP and port) of every pod serving the webhook or the
// adapter, with the Secret holding its certificate.
func servingPods(t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	list, err := cs.CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		switch p.Labels["app.kubernetes.io/component"] {
		case "cronhpa":
			out[net.JoinHostPort(p.Status.PodIP, "9443")] = "lockstep-cronhpa-webhook-cert"
		case "metrics-adapter":
			out[net.JoinHostPort(p.Status.PodIP, "6443")] = "lockstep-metrics-adapter-serving-cert"
		}
	}
	return out
}

// servedCert returns the leaf certificate a pod presents.
func servedCert(addr string) ([]byte, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// checkUpgradeWithoutUnavailability: while `helm upgrade` rotates the serving certificates, calls
// through the webhook (server-side dry runs of CronHPA creations) and through the adapter
// (custom metric reads) keep succeeding; every serving pod then presents its new certificate.
func checkUpgradeWithoutUnavailability(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, env *testbed.Env, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	fail := func(err error) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, err.Error())
	}
	wg.Add(2)
	go func() { // through the chart's webhook
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			obj := cronHPA(ns, fmt.Sprintf("dry-run-%d", i), "batch", "0 0 9 * * *", 3)
			_, err := dyn.Resource(cronHPAGVR).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			calls.Add(1)
			if err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("webhook: %w", err))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() { // through the chart's adapter
		defer wg.Done()
		path := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + ns + "/services/checkout/requests_per_second"
		for ctx.Err() == nil {
			err := cs.CoreV1().RESTClient().Get().AbsPath(path).Do(ctx).Error()
			calls.Add(1)
			if err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("adapter: %w", err))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	before := servingPods(t, cs)
	start := time.Now()
	framework.Helm(t, env, "upgrade", "lockstep", chartDir, "--namespace", releaseNS, "--reuse-values", "--wait", "--timeout", "5m")
	t.Logf("helm upgrade --wait took %s", time.Since(start).Round(time.Millisecond))
	// The kubelet refreshes the mounted Secrets and the servers reload them: every serving pod
	// ends up presenting the certificate in its Secret, with calls succeeding all along.
	framework.Eventually(t, 3*time.Minute, func(ctx context.Context) error {
		for addr, secretName := range servingPods(t, cs) {
			secret, err := cs.CoreV1().Secrets(releaseNS).Get(ctx, secretName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			served, err := servedCert(addr)
			if err != nil {
				return fmt.Errorf("%s: %w", addr, err)
			}
			block, _ := pem.Decode(secret.Data["tls.crt"])
			if block == nil {
				return fmt.Errorf("secret %s holds no certificate", secretName)
			}
			if !bytes.Equal(block.Bytes, served) {
				return fmt.Errorf("%s still serves its old certificate", addr)
			}
		}
		return nil
	})
	t.Logf("every serving pod presents its rotated certificate %s after the upgrade started (%d serving pods before)", time.Since(start).Round(time.Millisecond), len(before))
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	t.Logf("%d calls through the webhook and the adapter during the upgrade and the reload, %d failed", calls.Load(), failures.Load())
	if failures.Load() > 0 {
		t.Errorf("%d of %d calls failed during the certificate rotation; first: %v", failures.Load(), calls.Load(), firstFailure.Load())
	}
	if calls.Load() < 50 {
		t.Errorf("only %d calls were made: the rotation was not observed", calls.Load())
	}
}

// checkUninstall: uninstall removes the components and their APIServices and keeps the CRDs, so
// users' CronHPAs, VPAs and NodePools survive.
func checkUninstall(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, env *testbed.Env) {
	framework.Helm(t, env, "uninstall", "lockstep", "--namespace", releaseNS, "--wait", "--timeout", "3m")
	framework.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d Lockstep pods left", len(pods.Items))
		}
		return nil
	})
	for _, crd := range []string{
		"cronhorizontalpodautoscalers.autoscaling.alibabacloud.com",
		"verticalpodautoscalers.autoscaling.k8s.io",
		"nodepools.karpenter.sh",
	} {
		if _, err := dyn.Resource(crdGVR).Get(context.Background(), crd, metav1.GetOptions{}); err != nil {
			t.Errorf("CRD %s after uninstall: %v", crd, err)
		}
	}
	if _, err := cs.Discovery().ServerResourcesForGroupVersion("custom.metrics.k8s.io/v1beta2"); err == nil {
		t.Error("custom.metrics.k8s.io is still served after uninstall")
	}
}
