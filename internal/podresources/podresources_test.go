package podresources_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/lockstep-dev/lockstep/internal/podresources"
)

func cpuMem(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

func TestFit(t *testing.T) {
	node := cpuMem("2", "4Gi")
	cases := map[string]struct {
		want, used corev1.ResourceList
		verdict    podresources.Verdict
		message    string // a part of the message
	}{
		"fits beside the others":       {cpuMem("1", "1Gi"), cpuMem("1", "3Gi"), podresources.Fits, ""},
		"cpu taken by the others":      {cpuMem("1", "1Gi"), cpuMem("1500m", "1Gi"), podresources.Deferred, "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"},
		"memory taken by the others":   {cpuMem("100m", "2Gi"), cpuMem("100m", "3Gi"), podresources.Deferred, "memory, requested: 2147483648, used: 3221225472"},
		"more cpu than the node has":   {cpuMem("3", "1Gi"), corev1.ResourceList{}, podresources.Infeasible, "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000"},
		"infeasible beats deferred":    {cpuMem("100m", "5Gi"), cpuMem("2", "4Gi"), podresources.Infeasible, "Node didn't have enough capacity: memory"},
		"nothing used, exactly full":   {cpuMem("2", "4Gi"), nil, podresources.Fits, ""},
		"resources the pod never asks": {corev1.ResourceList{}, cpuMem("2", "4Gi"), podresources.Fits, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, msg := podresources.Fit(tc.want, node, tc.used)
			if got != tc.verdict || !strings.Contains(msg, tc.message) {
				t.Errorf("ResizeFit = %s %q, want %s %q", got, msg, tc.verdict, tc.message)
			}
		})
	}
}

func TestAllocatedFollowsTheKubelet(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: cpuMem("3", "1Mi")}}},
		Containers: []corev1.Container{
			{Name: "a", Resources: corev1.ResourceRequirements{Requests: cpuMem("1", "1Gi")}},
			{Name: "b", Resources: corev1.ResourceRequirements{Requests: cpuMem("500m", "1Gi")}},
		},
	}}
	// Before the kubelet reports anything the spec counts; the init container's 3 cores dominate.
	if got := podresources.Allocated(pod)[corev1.ResourceCPU]; got.MilliValue() != 3000 {
		t.Errorf("before any report: cpu %s, want 3 (the init container's)", got.String())
	}
	pod.Spec.InitContainers = nil
	// a was resized to 1 core in spec but is still allocated 250m; b reports 500m.
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "a", AllocatedResources: cpuMem("250m", "1Gi")},
		{Name: "b", Resources: &corev1.ResourceRequirements{Requests: cpuMem("500m", "1Gi")}},
	}
	if got := podresources.Allocated(pod)[corev1.ResourceCPU]; got.MilliValue() != 750 {
		t.Errorf("allocated cpu %s, want 750m", got.String())
	}
	if got := podresources.Desired(pod)[corev1.ResourceCPU]; got.MilliValue() != 1500 {
		t.Errorf("desired cpu %s, want 1500m", got.String())
	}
}
