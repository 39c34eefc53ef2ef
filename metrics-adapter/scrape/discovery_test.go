package scrape

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pod(ns, name, ip string, phase corev1.PodPhase, lbls, anno map[string]string, owner string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls, Annotations: anno},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 10254}}}}},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
	}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: owner, Controller: ptr.To(true)}}
	}
	return p
}

func TestDiscover(t *testing.T) {
	nginx := map[string]string{"app.kubernetes.io/name": "ingress-nginx"}
	scrapeMe := map[string]string{AnnotationScrape: "true", AnnotationPort: "8080"}
	tests := map[string]struct {
		pods    []*corev1.Pod
		ingress []IngressTargets
		want    []string // "profile url ns/pod workload"
		errs    []string
	}{
		"ingress controller by selector and named port": {
			pods:    []*corev1.Pod{pod("ingress", "ctl-1", "10.0.0.1", corev1.PodRunning, nginx, nil, "")},
			ingress: []IngressTargets{{Profile: "ingress-nginx", Selector: "app.kubernetes.io/name=ingress-nginx", Port: "metrics"}},
			want:    []string{"ingress-nginx http://10.0.0.1:10254/metrics"},
		},
		"namespace limits the search": {
			pods:    []*corev1.Pod{pod("other", "ctl-1", "10.0.0.1", corev1.PodRunning, nginx, nil, "")},
			ingress: []IngressTargets{{Profile: "ingress-nginx", Namespace: "ingress", Selector: "app.kubernetes.io/name=ingress-nginx", Port: "10254"}},
		},
		"pending and IP-less pods are not targets": {
			pods: []*corev1.Pod{
				pod("shop", "a", "", corev1.PodRunning, nil, scrapeMe, ""),
				pod("shop", "b", "10.0.0.2", corev1.PodPending, nil, scrapeMe, ""),
			},
		},
		"annotated app pod with its Deployment": {
			pods: []*corev1.Pod{pod("shop", "checkout-5d9f-x1", "10.0.0.3", corev1.PodRunning, map[string]string{"pod-template-hash": "5d9f"},
				map[string]string{AnnotationScrape: "true", AnnotationPort: "8080", AnnotationPath: "stats"}, "checkout-5d9f")},
			want: []string{"http-app http://10.0.0.3:8080/stats shop/checkout-5d9f-x1 checkout"},
		},
		"profile annotation": {
			pods: []*corev1.Pod{pod("shop", "p", "10.0.0.4", corev1.PodRunning, nil,
				map[string]string{AnnotationScrape: "true", AnnotationPort: "9090", AnnotationProfile: "mine"}, "")},
			want: []string{"mine http://10.0.0.4:9090/metrics shop/p "},
		},
		"bad port and bad selector are reported, others kept": {
			pods: []*corev1.Pod{
				pod("shop", "bad", "10.0.0.5", corev1.PodRunning, nil, map[string]string{AnnotationScrape: "true", AnnotationPort: "nope"}, ""),
				pod("shop", "good", "10.0.0.6", corev1.PodRunning, nil, scrapeMe, ""),
			},
			ingress: []IngressTargets{{Profile: "envoy", Selector: "a in (", Port: "1"}},
			want:    []string{"http-app http://10.0.0.6:8080/metrics shop/good "},
			errs:    []string{"selector", "no container port named \"nope\""},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			targets, errs := Discover(tc.pods, tc.ingress, "http-app")
			var got []string
			for _, tg := range targets {
				s := tg.Profile + " " + tg.URL
				if tg.Pod != nil {
					s += " " + tg.Pod.Namespace + "/" + tg.Pod.Pod + " " + tg.Pod.Workload
				}
				got = append(got, s)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("targets\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors %v, want %d", errs, len(tc.errs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.errs[i]) {
					t.Fatalf("error %v, want %q", e, tc.errs[i])
				}
			}
		})
	}
}
