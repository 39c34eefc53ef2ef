package spill

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSandboxImage(t *testing.T) {
	virtual := DefaultConfig().VirtualNodeSelector
	node := func(name string, ready bool, labels map[string]string, images ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
		for _, img := range images {
			n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{img}})
		}
		return n
	}
	const ack = "registry-cn-hangzhou-vpc.ack.aliyuncs.com/acs/pause:3.9"
	cases := map[string]struct {
		nodes []corev1.Node
		want  string
	}{
		"no node reports one": {[]corev1.Node{node("a", true, nil, "docker.io/library/nginx:1.27")}, ""},
		"ACK's own registry": {[]corev1.Node{
			node("a", true, nil, "docker.io/library/nginx:1.27", ack, "registry-cn-hangzhou-vpc.ack.aliyuncs.com/acs/pause@sha256:0123"),
			node("b", true, nil, ack),
		}, ack},
		"the image most nodes have": {[]corev1.Node{
			node("a", true, nil, "registry.k8s.io/pause:3.10"), node("b", true, nil, ack), node("c", true, nil, ack),
		}, ack},
		"virtual and unready nodes do not count": {[]corev1.Node{
			node("vk", true, map[string]string{"type": "virtual-kubelet"}, ack), node("down", false, nil, ack),
			node("a", true, nil, "registry.k8s.io/pause:3.10"),
		}, "registry.k8s.io/pause:3.10"},
		"not fooled by look-alikes": {[]corev1.Node{node("a", true, nil, "example.com/pause-app:1", "example.com/nopause:1", "pause:3.10")}, "pause:3.10"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := SandboxImage(tc.nodes, virtual); got != tc.want {
				t.Errorf("SandboxImage = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHoldState(t *testing.T) {
	unscheduled := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/3 nodes are available"}}}}
	pulling := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-1"}, Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}}}
	for pod, want := range map[*corev1.Pod]string{unscheduled: "not scheduled: 0/3 nodes are available", pulling: "on node node-1, ImagePullBackOff: Back-off pulling image"} {
		if got := HoldState(pod); !strings.Contains(got, want) {
			t.Errorf("HoldState = %q, want %q", got, want)
		}
	}
}

// A placeholder pulls with the pod's secrets, and only when its node lacks the image.
func TestPlaceholderPullsLikeThePod(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldImage = "registry.example/pause:3.10"
	pod := pendingPod(t0, func(p *corev1.Pod) { p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry-key"}} })
	h := Placeholder(pod, cfg, t0)
	if len(h.Spec.ImagePullSecrets) != 1 || h.Spec.ImagePullSecrets[0].Name != "registry-key" {
		t.Errorf("pull secrets %v, want the pod's", h.Spec.ImagePullSecrets)
	}
	if c := h.Spec.Containers[0]; c.Image != cfg.HoldImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s pulled %s", c.Image, c.ImagePullPolicy)
	}
}

func TestRecentSet(t *testing.T) {
	var r recentSet
	if !r.add("a", t0) || r.add("a", t0.Add(59*time.Second)) {
		t.Fatal("a key added twice within a minute")
	}
	if !r.add("b", t0.Add(time.Second)) {
		t.Fatal("another key refused")
	}
	if !r.add("a", t0.Add(time.Minute)) || len(r.seen) != 2 {
		t.Fatalf("after a minute: %v", r.seen)
	}
	r.remove("a")
	if !r.add("a", t0.Add(time.Minute)) {
		t.Fatal("a removed key refused")
	}
}
