package testbed_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestMain(m *testing.M) {
	switch mode := os.Getenv(leakModeEnv); mode {
	case "":
	case "real-node":
		runRealNodeChild()
	default:
		runLeakChild(mode)
	}
	framework.Main(m, testbed.Options{
		ControllerManager: true,
		Scheduler:         true,
		Nodes:             3,
		HPASyncPeriod:     time.Second,
		MetricsServer:     true,
	})
}

func deployment(name string, replicas int32, requests corev1.ResourceList) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:      "app",
					Image:     "registry.example/app:1",
					Resources: corev1.ResourceRequirements{Requests: requests},
				}}},
			},
		},
	}
}

// The real scheduler places a Deployment's pods on kwok nodes and kwok runs them.
func TestDeploymentRunsOnKwokNodes(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web", 4, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if node.Annotations["kwok.x-k8s.io/node"] != "fake" {
				return fmt.Errorf("pod %s landed on non-kwok node %s", p.Name, node.Name)
			}
			running++
		}
		if running != 4 {
			return fmt.Errorf("%d of 4 pods running on kwok nodes", running)
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 4 {
			return fmt.Errorf("deployment reports %d ready replicas", d.Status.ReadyReplicas)
		}
		return nil
	})
}

// The real HPA controller writes an autoscaling/v2 HPA's status and scales its target up to
// minReplicas, even before any metrics API exists.
func TestHPAControllerWritesStatus(t *testing.T) {
	cs := framework.Clientset(t)
	ns := framework.Namespace(t, cs)
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("api", 1, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("10"))},
				},
			}},
		},
	}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func(ctx context.Context) error {
		got, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.DesiredReplicas != 2 || got.Status.LastScaleTime == nil {
			return fmt.Errorf("HPA status desired=%d lastScaleTime=%v conditions=%v", got.Status.DesiredReplicas, got.Status.LastScaleTime, got.Status.Conditions)
		}
		var ableToScale bool
		for _, c := range got.Status.Conditions {
			if c.Type == autoscalingv2.AbleToScale && c.Status == corev1.ConditionTrue {
				ableToScale = true
			}
		}
		if !ableToScale {
			return fmt.Errorf("no AbleToScale=True condition: %v", got.Status.Conditions)
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 2 {
			return fmt.Errorf("deployment has %d replicas, want 2 (the HPA's minReplicas)", *d.Spec.Replicas)
		}
		return nil
	})
}
