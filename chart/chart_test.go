// Package chart_test installs the Helm chart into the test bed with the real helm binary and
// checks what it creates, including that the generated RBAC lets each component do its work.
package chart_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	metricsadapter "github.com/lockstep-dev/lockstep/metrics-adapter"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	framework.Main(m, testbed.Options{ControllerManager: true, Scheduler: true, Nodes: 2})
}

func helm(t *testing.T, env *testbed.Env, args ...string) string {
	t.Helper()
	return framework.Helm(t, env, args...)
}

func helmFails(t *testing.T, env *testbed.Env, args ...string) string {
	t.Helper()
	return framework.HelmFails(t, env, args...)
}

func runHelm(t *testing.T, env *testbed.Env, args ...string) (string, error) {
	t.Helper()
	return framework.RunHelm(t, env, args...)
}

// TestValuesSchema: an unknown key or a value of the wrong type fails `helm install` with the
// value's path, before anything is created.
func TestValuesSchema(t *testing.T) {
	env := framework.Env(t)
	for _, tc := range []struct{ set, want string }{
		{"metricsAdaptr.enabled=false", "additional properties 'metricsAdaptr' not allowed"},
		{"cronhpa.webhook.failurePolicy=Never", "at '/cronhpa/webhook/failurePolicy'"},
		{"cronhpa.replicas=two", "at '/cronhpa/replicas': got string, want integer"},
		{"nodeAutoscaler.spill.budget=thirty", "at '/nodeAutoscaler/spill/budget'"},
		{"vpaInplace.serviceMonitor.enabeld=true", "additional properties 'enabeld' not allowed"},
		{"image.pullPolicy=Sometimes", "at '/image/pullPolicy'"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out := helmFails(t, env, "install", "schema-check", ".", "--namespace", "schema-check", "--create-namespace", "--set", tc.set)
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
	if out, err := runHelm(t, env, "status", "schema-check", "--namespace", "schema-check"); err == nil {
		t.Errorf("a release was created by a refused install:\n%s", out)
	}
	// Keys the schema leaves open stay open: the adapter's configuration and resources.
	helm(t, env, "template", "lockstep", ".", "--validate", "--set", "metricsAdapter.config.staleAfter=2m", "--set", "cronhpa.resources.limits.cpu=1")
}

func TestChartInstalls(t *testing.T) {
	env := framework.Env(t)
	cs := framework.Clientset(t)
	ctx := context.Background()
	helm(t, env, "lint", ".", "--strict")
	// The node-autoscaler is off by default (TestNodeAutoscalerOffByDefault); it is turned on
	// here so that its objects and permissions are checked too.
	out := helm(t, env, "install", "lockstep", ".", "--namespace", "lockstep-system", "--create-namespace", "--wait", "--timeout", "2m",
		"--set", "nodeAutoscaler.enabled=true")
	// The notes tell how to check each component and show an HPA on requests per second.
	for _, want := range []string{
		"rollout status deployment/lockstep-cronhpa", "rollout status deployment/lockstep-metrics-adapter",
		"rollout status deployment/lockstep-vpa-inplace", "rollout status deployment/lockstep-node-autoscaler",
		"kubectl get apiservices v1beta2.custom.metrics.k8s.io v1beta1.external.metrics.k8s.io",
		"metric: {name: requests_per_second}", "kubectl get nodepools,nodeclaims",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install notes lack %q:\n%s", want, out)
		}
	}

	// The CRD from chart/crds is served.
	if _, err := cs.Discovery().ServerResourcesForGroupVersion("autoscaling.alibabacloud.com/v1beta1"); err != nil {
		t.Fatalf("CronHorizontalPodAutoscaler API not served: %v", err)
	}
	// The controller's Deployment is available (kwok runs its pods).
	d, err := cs.AppsV1().Deployments("lockstep-system").Get(ctx, "lockstep-cronhpa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != *d.Spec.Replicas {
		t.Fatalf("cronhpa deployment: %d of %d available", d.Status.AvailableReplicas, *d.Spec.Replicas)
	}
	wh, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "lockstep-cronhpa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(wh.Webhooks) != 1 || len(wh.Webhooks[0].ClientConfig.CABundle) == 0 || wh.Webhooks[0].ClientConfig.Service.Name != "lockstep-cronhpa" {
		t.Fatalf("webhook configuration: %+v", wh.Webhooks)
	}
	secret, err := cs.CoreV1().Secrets("lockstep-system").Get(ctx, "lockstep-cronhpa-webhook-cert", metav1.GetOptions{})
	if err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Fatalf("webhook certificate secret: %v", err)
	}

	// The service account may do what the reconciler does, and no more than it needs.
	sa := "system:serviceaccount:lockstep-system:lockstep-cronhpa"
	checkAccess(t, cs, sa, []access{
		{"autoscaling.alibabacloud.com", "cronhorizontalpodautoscalers", "", "watch", true},
		{"autoscaling.alibabacloud.com", "cronhorizontalpodautoscalers", "status", "update", true},
		{"apps", "deployments", "scale", "update", true},
		{"apps", "statefulsets", "scale", "get", true},
		// HPA bounds are patched (only minReplicas and maxReplicas), never updated whole.
		{"autoscaling", "horizontalpodautoscalers", "", "patch", true},
		{"autoscaling", "horizontalpodautoscalers", "", "update", false},
		// Events are recorded through core/v1 (internal/eventrec), not events.k8s.io.
		{"", "events", "", "create", true},
		{"", "events", "", "patch", true},
		{"events.k8s.io", "events", "", "create", false},
		{"coordination.k8s.io", "leases", "", "update", true},
		{"apps", "deployments", "", "delete", false},
		{"", "secrets", "", "get", false},
	})

	checkMetricsAdapter(t, cs)
	checkVPAInplace(t, cs)
	checkNodeAutoscaler(t, cs)
	checkDisruptionBudgets(t, cs)

	checkUpgradeRotatesCerts(t, env, cs)

	helm(t, env, "uninstall", "lockstep", "--namespace", "lockstep-system", "--wait")
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		_, err := cs.AppsV1().Deployments("lockstep-system").Get(ctx, "lockstep-cronhpa", metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		default:
			return fmt.Errorf("deployment still there after uninstall")
		}
	})
}

// checkDisruptionBudgets: every component keeps a replica through voluntary disruptions
// (drains, node upgrades).
func checkDisruptionBudgets(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		for _, name := range []string{"lockstep-cronhpa", "lockstep-metrics-adapter", "lockstep-vpa-inplace", "lockstep-node-autoscaler"} {
			pdb, err := cs.PolicyV1().PodDisruptionBudgets("lockstep-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("PodDisruptionBudget %s: %w", name, err)
			}
			if pdb.Status.ExpectedPods != 2 || pdb.Status.DisruptionsAllowed != 1 {
				return fmt.Errorf("PodDisruptionBudget %s: %d pods expected, %d disruptions allowed; want 2 and 1", name, pdb.Status.ExpectedPods, pdb.Status.DisruptionsAllowed)
			}
		}
		return nil
	})
}

// checkUpgradeRotatesCerts: an upgrade signs new serving certificates with the CAs made at
// install, so the CA bundles the API server trusts do not change and the pods' old and new
// certificates are both valid.
func checkUpgradeRotatesCerts(t *testing.T, env *testbed.Env, cs kubernetes.Interface) {
	t.Helper()
	before := servingCerts(t, cs)
	helm(t, env, "upgrade", "lockstep", ".", "--namespace", "lockstep-system", "--reuse-values", "--wait", "--timeout", "2m")
	after := servingCerts(t, cs)
	for name, b := range before {
		a := after[name]
		switch {
		case !bytes.Equal(a.caBundle, b.caBundle):
			t.Errorf("%s: the upgrade changed the CA bundle; pods still serving the old certificate would be refused", name)
		case bytes.Equal(a.cert, b.cert):
			t.Errorf("%s: the upgrade did not rotate the serving certificate", name)
		}
		verifyServingCert(t, name, a)
	}
}

// servingState is a serving certificate and the CA bundle its clients trust.
type servingState struct{ cert, caBundle []byte }

// servingCerts reads the cronhpa webhook's and the metrics adapter's serving certificates and
// the CA bundles registered for them.
func servingCerts(t *testing.T, cs kubernetes.Interface) map[string]servingState {
	t.Helper()
	ctx := context.Background()
	out := map[string]servingState{}
	secret := func(name string) []byte {
		s, err := cs.CoreV1().Secrets("lockstep-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Data["tls.crt"]
	}
	wh, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "lockstep-cronhpa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["cronhpa webhook"] = servingState{cert: secret("lockstep-cronhpa-webhook-cert"), caBundle: wh.Webhooks[0].ClientConfig.CABundle}
	dyn, err := dynamic.NewForConfig(framework.Env(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dyn.Resource(framework.APIServiceGVR).Get(ctx, "v1beta2.custom.metrics.k8s.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _ := unstructured.NestedString(svc.Object, "spec", "caBundle")
	decoded, err := base64.StdEncoding.DecodeString(ca)
	if err != nil {
		t.Fatal(err)
	}
	out["metrics adapter"] = servingState{cert: secret("lockstep-metrics-adapter-serving-cert"), caBundle: decoded}
	return out
}

// verifyServingCert checks that the certificate chains to the CA bundle for its service name.
func verifyServingCert(t *testing.T, name string, s servingState) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.caBundle) {
		t.Fatalf("%s: CA bundle holds no certificate", name)
	}
	block, _ := pem.Decode(s.cert)
	if block == nil {
		t.Fatalf("%s: serving certificate is not PEM", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: cert.DNSNames[0]}); err != nil {
		t.Errorf("%s: serving certificate does not verify against the CA bundle: %v", name, err)
	}
}

// checkMetricsAdapter checks what the chart installs for the metrics adapter: an available
// Deployment, the three APIServices pointing at its Service with a CA bundle, and the
// permissions delegated authentication, authorization and discovery need.
func checkMetricsAdapter(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	d, err := cs.AppsV1().Deployments("lockstep-system").Get(ctx, "lockstep-metrics-adapter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != *d.Spec.Replicas {
		t.Fatalf("metrics-adapter deployment: %d of %d available", d.Status.AvailableReplicas, *d.Spec.Replicas)
	}
	// Every HPA on custom or external metrics depends on it: two replicas, kept apart, one
	// kept up through voluntary disruptions.
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Affinity == nil || d.Spec.Template.Spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("metrics-adapter deployment: %d replicas, affinity %+v; want 2 replicas with anti-affinity", *d.Spec.Replicas, d.Spec.Template.Spec.Affinity)
	}
	framework.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets("lockstep-system").Get(ctx, "lockstep-metrics-adapter", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("metrics-adapter PodDisruptionBudget: %w", err)
		}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Status.ExpectedPods != 2 || pdb.Status.DisruptionsAllowed != 1 {
			return fmt.Errorf("PodDisruptionBudget: minAvailable %v, status %+v; want 1 of 2 and one disruption allowed", pdb.Spec.MinAvailable, pdb.Status)
		}
		return nil
	})
	dyn, err := dynamic.NewForConfig(framework.Env(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"} {
		svc, err := dyn.Resource(framework.APIServiceGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svcName, _, _ := unstructured.NestedString(svc.Object, "spec", "service", "name")
		ca, _, _ := unstructured.NestedString(svc.Object, "spec", "caBundle")
		if svcName != "lockstep-metrics-adapter" || ca == "" {
			t.Errorf("APIService %s: service %q, caBundle set %v", name, svcName, ca != "")
		}
	}
	sa := "system:serviceaccount:lockstep-system:lockstep-metrics-adapter"
	for _, tc := range []struct {
		namespace, group, resource, name, verb string
		allowed                                bool
	}{
		{"default", "", "pods", "", "watch", true},
		{"default", "", "services", "", "list", true},
		{"default", "apps", "deployments", "", "watch", true},
		{"default", "networking.k8s.io", "ingresses", "", "list", true},
		{"", "authentication.k8s.io", "tokenreviews", "", "create", true},
		{"", "authorization.k8s.io", "subjectaccessreviews", "", "create", true},
		{"kube-system", "", "configmaps", "extension-apiserver-authentication", "get", true},
		{"kube-system", "", "configmaps", "", "list", false},
		{"default", "", "secrets", "", "get", false},
		{"default", "apps", "deployments", "", "update", false},
	} {
		if got := canI(t, cs, sa, tc.namespace, tc.group, tc.resource, "", tc.name, tc.verb); got != tc.allowed {
			t.Errorf("%s %s %s in %q: allowed=%v, want %v", sa, tc.verb, tc.resource, tc.namespace, got, tc.allowed)
		}
	}
	hpa := "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
	for _, group := range []string{"custom.metrics.k8s.io", "external.metrics.k8s.io"} {
		if !canI(t, cs, hpa, "default", group, "services", "", "", "get") {
			t.Errorf("the HPA controller cannot read %s", group)
		}
	}
}

// checkVPAInplace checks what the chart installs for vpa-inplace: the VPA API served from the
// generated CRDs (kept on uninstall), an available Deployment, and the permissions of the
// recommender and updater — pods are resized through pods/resize, never updated.
func checkVPAInplace(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	for _, gv := range []string{"autoscaling.k8s.io/v1"} {
		if _, err := cs.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
			t.Fatalf("VerticalPodAutoscaler API not served: %v", err)
		}
	}
	d, err := cs.AppsV1().Deployments("lockstep-system").Get(ctx, "lockstep-vpa-inplace", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != *d.Spec.Replicas || *d.Spec.Replicas != 2 {
		t.Fatalf("vpa-inplace deployment: %d of %d available, want 2", d.Status.AvailableReplicas, *d.Spec.Replicas)
	}
	sa := "system:serviceaccount:lockstep-system:lockstep-vpa-inplace"
	checkAccess(t, cs, sa, []access{
		{"autoscaling.k8s.io", "verticalpodautoscalers", "", "watch", true},
		{"autoscaling.k8s.io", "verticalpodautoscalers", "status", "patch", true},
		{"autoscaling.k8s.io", "verticalpodautoscalers", "", "update", false},
		{"autoscaling.k8s.io", "verticalpodautoscalercheckpoints", "", "create", true},
		{"", "pods", "resize", "patch", true},
		{"", "pods", "", "update", false},
		// Patched only for the updater's state annotation (what a new leader reads).
		{"", "pods", "", "patch", true},
		{"", "pods", "", "delete", false},
		{"", "pods", "eviction", "create", true},
		{"metrics.k8s.io", "pods", "", "list", true},
		{"policy", "poddisruptionbudgets", "", "list", true},
		{"autoscaling", "horizontalpodautoscalers", "", "watch", true},
		{"apps", "deployments", "scale", "get", true},
		{"apps", "deployments", "", "update", false},
		{"", "secrets", "", "get", false},
	})
}

// checkNodeAutoscaler checks what the chart installs for the node-autoscaler: Karpenter's API
// served from the generated CRDs, an available Deployment of two replicas with a disruption
// budget, and the permissions Karpenter core and Lockstep's spill and move-back need.
func checkNodeAutoscaler(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	for _, gv := range []string{"karpenter.sh/v1", "karpenter.kwok.sh/v1alpha1", "autoscaling.x-k8s.io/v1beta1"} {
		if _, err := cs.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
			t.Errorf("%s not served: %v", gv, err)
		}
	}
	d, err := cs.AppsV1().Deployments("lockstep-system").Get(ctx, "lockstep-node-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != *d.Spec.Replicas || *d.Spec.Replicas != 2 {
		t.Fatalf("node-autoscaler deployment: %d of %d available, want 2", d.Status.AvailableReplicas, *d.Spec.Replicas)
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets("lockstep-system").Get(ctx, "lockstep-node-autoscaler", metav1.GetOptions{}); err != nil {
		t.Errorf("node-autoscaler PodDisruptionBudget: %v", err)
	}
	sa := "system:serviceaccount:lockstep-system:lockstep-node-autoscaler"
	checkAccess(t, cs, sa, []access{
		{"karpenter.sh", "nodepools", "", "watch", true},
		{"karpenter.sh", "nodeclaims", "", "create", true},
		{"karpenter.sh", "nodeclaims", "finalizers", "update", true},
		{"karpenter.kwok.sh", "kwoknodeclasses", "status", "patch", true},
		{"", "nodes", "", "delete", true},
		// Spill patches pending pods and creates placeholders; move-back evicts.
		{"", "pods", "", "patch", true},
		{"", "pods", "", "create", true},
		{"", "pods", "eviction", "create", true},
		{"", "pods", "", "update", false},
		{"scheduling.k8s.io", "priorityclasses", "", "create", true},
		{"scheduling.k8s.io", "priorityclasses", "", "delete", false},
		// A released pod keeps serving through EndpointSlices of its own; Services and
		// NetworkPolicies are only read.
		{"discovery.k8s.io", "endpointslices", "", "create", true},
		{"discovery.k8s.io", "endpointslices", "", "delete", true},
		{"", "services", "", "update", false},
		{"networking.k8s.io", "networkpolicies", "", "list", true},
		{"networking.k8s.io", "networkpolicies", "", "update", false},
		{"apps", "deployments", "", "update", false},
		{"", "secrets", "", "get", false},
		{"events.k8s.io", "events", "", "create", false},
	})
}

// The node-autoscaler renders nothing by default (clusters that run another autoscaler), and
// its Karpenter CRDs are kept on uninstall and left out with nodeAutoscaler.installCRDs=false.
func TestNodeAutoscalerOffByDefault(t *testing.T) {
	env := framework.Env(t)
	kinds := func(args ...string) (objects []string, crds []string) {
		out := helm(t, env, append([]string{"template", "lockstep", ".", "--namespace", "lockstep-system", "--validate"}, args...)...)
		for _, doc := range strings.Split(out, "\n---\n") {
			var obj struct {
				Kind     string            `json:"kind"`
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("rendered YAML: %v", err)
			}
			if strings.Contains(obj.Metadata.Name, "node-autoscaler") {
				objects = append(objects, obj.Kind+"/"+obj.Metadata.Name)
			}
			if obj.Kind == "CustomResourceDefinition" && (strings.Contains(obj.Metadata.Name, "karpenter") || strings.HasSuffix(obj.Metadata.Name, "autoscaling.x-k8s.io")) {
				if obj.Metadata.Annotations["helm.sh/resource-policy"] != "keep" {
					t.Errorf("CRD %s would be deleted on uninstall", obj.Metadata.Name)
				}
				crds = append(crds, obj.Metadata.Name)
			}
		}
		return objects, crds
	}
	if objs, crds := kinds(); len(objs)+len(crds) != 0 {
		t.Errorf("default rendering has node-autoscaler objects %v and CRDs %v", objs, crds)
	}
	if objs, crds := kinds("--set", "nodeAutoscaler.enabled=true"); len(objs) < 6 || len(crds) != 5 {
		t.Errorf("enabled rendering: objects %v, CRDs %v (want the 4 Karpenter CRDs and KWOKNodeClass)", objs, crds)
	}
	if _, crds := kinds("--set", "nodeAutoscaler.enabled=true", "--set", "nodeAutoscaler.installCRDs=false"); len(crds) != 0 {
		t.Errorf("installCRDs=false still renders %v", crds)
	}
}

// vpaCRDs lists the CustomResourceDefinition names a rendering of the chart contains.
func vpaCRDs(t *testing.T, env *testbed.Env, args ...string) []string {
	t.Helper()
	out := helm(t, env, append([]string{"template", "lockstep", ".", "--namespace", "lockstep-system", "--validate"}, args...)...)
	var names []string
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if obj.Kind == "CustomResourceDefinition" && strings.HasSuffix(obj.Metadata.Name, ".autoscaling.k8s.io") {
			if obj.Metadata.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s would be deleted on uninstall", obj.Metadata.Name)
			}
			names = append(names, obj.Metadata.Name)
		}
	}
	return names
}

// The VPA CRDs render by default and not with vpaInplace.installCRDs=false (clusters where
// upstream VPA owns them).
func TestVPACRDsOptional(t *testing.T) {
	env := framework.Env(t)
	if got := vpaCRDs(t, env); len(got) != 2 {
		t.Errorf("default rendering has VPA CRDs %v, want the VPA and checkpoint CRDs", got)
	}
	if got := vpaCRDs(t, env, "--set", "vpaInplace.installCRDs=false"); len(got) != 0 {
		t.Errorf("installCRDs=false still renders %v", got)
	}
}

// access is a permission in namespace "default" that a service account must have (allowed) or
// must not have.
type access struct {
	group, resource, sub, verb string
	allowed                    bool
}

// checkAccess asks the API server (SubjectAccessReview) about each permission of sa.
func checkAccess(t *testing.T, cs kubernetes.Interface, sa string, cases []access) {
	t.Helper()
	for _, tc := range cases {
		if got := canI(t, cs, sa, "default", tc.group, tc.resource, tc.sub, "", tc.verb); got != tc.allowed {
			t.Errorf("%s %s %s/%s: allowed=%v, want %v", sa, tc.verb, tc.resource, tc.sub, got, tc.allowed)
		}
	}
}

func canI(t *testing.T, cs kubernetes.Interface, user, namespace, group, resource, sub, name, verb string) bool {
	t.Helper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:lockstep-system", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Group: group, Resource: resource, Subresource: sub, Name: name, Verb: verb,
		},
	}}
	got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status.Allowed
}

// The chart's Alibaba Cloud values render a configuration the adapter accepts, pointed at the
// mounted credentials Secret, and annotate the service account for RRSA.
func TestAlibabaCloudValues(t *testing.T) {
	env := framework.Env(t)
	out := helm(t, env, "template", "lockstep", ".", "--namespace", "lockstep-system", "--validate",
		"--set", "metricsAdapter.alibabaCloudSecret=alibaba-cloud-credentials",
		"--set", "metricsAdapter.config.alibabaCloud.regionId=cn-hangzhou",
		"--set", "metricsAdapter.config.alibabaCloud.cloudMonitor.targets[0].namespace=shop",
		"--set", "metricsAdapter.config.alibabaCloud.cloudMonitor.targets[0].name=web",
		"--set", "metricsAdapter.config.alibabaCloud.cloudMonitor.targets[0].clb.instanceId=lb-bp1example",
		"--set", "metricsAdapter.config.alibabaCloud.cloudMonitor.targets[0].clb.port=80",
		"--set", "metricsAdapter.serviceAccount.annotations.pod-identity\\.alibabacloud\\.com/role-name=lockstep-metrics",
	)
	var config string
	var mounted, annotated bool
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
			Data     map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if obj.Metadata.Name != "lockstep-metrics-adapter" {
			continue
		}
		switch obj.Kind {
		case "ConfigMap":
			config = obj.Data["config.yaml"]
		case "Deployment":
			mounted = strings.Contains(doc, "secretName: alibaba-cloud-credentials") && strings.Contains(doc, "mountPath: /etc/lockstep/alibaba-cloud")
		case "ServiceAccount":
			annotated = obj.Metadata.Annotations["pod-identity.alibabacloud.com/role-name"] == "lockstep-metrics"
		}
	}
	if !mounted || !annotated {
		t.Fatalf("secret mounted %v, service account annotated %v", mounted, annotated)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := metricsadapter.LoadConfig(path)
	if err != nil {
		t.Fatalf("the adapter refuses the rendered configuration: %v\n%s", err, config)
	}
	if c.AlibabaCloud == nil || c.AlibabaCloud.Credentials.SecretDir != "/etc/lockstep/alibaba-cloud" {
		t.Fatalf("credentials not pointed at the mounted Secret:\n%s", config)
	}
}

// The node-autoscaler's Alibaba Cloud values: region and cluster name are required (a clear
// failure at install), the ECSNodeClass CRD replaces KWOKNodeClass, and the credentials Secret is
// mounted where the flag points.
func TestNodeAutoscalerAlibabaCloudValues(t *testing.T) {
	env := framework.Env(t)
	base := []string{"template", "lockstep", ".", "--namespace", "lockstep-system", "--validate", "--set", "nodeAutoscaler.enabled=true", "--set", "nodeAutoscaler.cloudProvider=alibabacloud"}
	if out := helmFails(t, env, base...); !strings.Contains(out, "nodeAutoscaler.alibabaCloud.region and nodeAutoscaler.alibabaCloud.clusterName are required") {
		t.Errorf("rendering without region and cluster name: %s", out)
	}
	out := helm(t, env, append(base, "--set", "nodeAutoscaler.alibabaCloud.region=cn-hangzhou",
		"--set", "nodeAutoscaler.alibabaCloud.clusterName=shop", "--set", "nodeAutoscaler.alibabaCloud.secret=ecs-credentials")...)
	for _, want := range []string{"name: ecsnodeclasses.karpenter.lockstep.dev", "--alibabacloud-region=cn-hangzhou", "--cluster-name=shop",
		"--alibabacloud-credentials-dir=/etc/lockstep/alibaba-cloud", "secretName: ecs-credentials"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendering lacks %q", want)
		}
	}
	if strings.Contains(out, "name: kwoknodeclasses.karpenter.kwok.sh") {
		t.Error("the kwok CRD renders with the alibabacloud provider")
	}
}
