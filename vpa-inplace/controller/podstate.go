package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// StateAnnotation on a pod holds, as JSON, what the updater's decisions on the pod depend on:
// when it last resized it (the downscale cooldown) and its start-up boost. It is written before
// each resize, so a new leader neither shrinks a pod the old one just grew nor leaves a boost
// unreverted (upstream's updater keeps its own per-pod state in pod annotations too).
const StateAnnotation = "vpa-inplace.lockstep.dev/state"

// podState is what StateAnnotation holds.
type podState struct {
	LastResize metav1.Time   `json:"lastResize,omitzero"`
	Boost      resizer.Boost `json:"boost,omitzero"`
}

// readState parses a pod's StateAnnotation; a missing or unreadable one is the zero state (an
// annotation anyone may edit must not stop the pod's resizes).
func readState(pod *corev1.Pod) (podState, error) {
	var st podState
	raw, ok := pod.Annotations[StateAnnotation]
	if !ok {
		return st, nil
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return podState{}, fmt.Errorf("reading annotation %s of pod %s/%s: %w", StateAnnotation, pod.Namespace, pod.Name, err)
	}
	return st, nil
}

// stateOf returns the pod's state: this process's memory, else the pod's annotation (a new
// leader's first look), which it then remembers.
func (u *Updater) stateOf(pod *corev1.Pod) podState {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.maps()
	m := u.pods[pod.UID]
	if m.known {
		return m.state
	}
	st, err := readState(pod)
	if err != nil {
		u.Log.Error(err, "Ignoring the pod's updater state", "pod", klog.KObj(pod))
	}
	m.state, m.known = st, true
	u.pods[pod.UID] = m
	return st
}

// remember records the pod's new state in memory.
func (u *Updater) remember(uid types.UID, st podState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.maps()
	m := u.pods[uid]
	m.state, m.known = st, true
	u.pods[uid] = m
}

// nextState is the pod's state after acting on d at now.
func nextState(prev podState, pod *corev1.Pod, d resizer.Decision, now metav1.Time) podState {
	next := prev
	next.LastResize = now
	switch {
	case d.Boosted:
		next.Boost = resizer.Boost{Start: resizer.ContainerStart(pod), Active: true}
	case prev.Boost.Active:
		next.Boost.Active = false
	}
	return next
}

// writeState patches the pod's StateAnnotation (a merge patch of that one key).
func (u *Updater) writeState(ctx context.Context, pod *corev1.Pod, st podState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding the updater state: %w", err)
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{StateAnnotation: string(raw)}}})
	if err != nil {
		return fmt.Errorf("encoding the state patch: %w", err)
	}
	target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	if err := u.Client.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("recording the updater state on pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
