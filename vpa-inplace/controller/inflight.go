package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lockstep-dev/lockstep/vpa-inplace/resizer"
)

// settle checks a pod against the resize this updater sent it, if any. busy: the resize is in
// flight (sent, and neither applied nor refused as Infeasible by the kubelet); stale: the
// cache's copy of the pod predates the resize, so it must not be decided on (it would read as
// applied at once and be sent again). When the status reports the spec's resources at or after
// the resize's generation, the resize is applied and its latency observed. Pods this updater
// has sent nothing (pending, on a virtual node, resized by someone else) are never busy.
func (u *Updater) settle(pod *corev1.Pod, now time.Time) (busy, stale bool) {
	u.mu.Lock()
	u.maps()
	defer u.mu.Unlock()
	f, ok := u.inflight[pod.UID]
	switch {
	case !ok:
		return false, false
	case now.Sub(f.at) > inflightTimeout:
		delete(u.inflight, pod.UID)
		return false, false
	case pod.Generation < f.generation:
		return true, true
	case statusMatchesSpec(pod):
		u.Metrics.Applied.Observe(now.Sub(f.at).Seconds())
		u.Metrics.Resizes.WithLabelValues("applied").Inc()
		delete(u.inflight, pod.UID)
		return false, false
	case hasCondition(pod, corev1.PodResizePending, corev1.PodReasonInfeasible):
		delete(u.inflight, pod.UID)
		return false, false
	}
	return true, false
}

// statusMatchesSpec reports whether every container's reported resources equal its spec.
func statusMatchesSpec(pod *corev1.Pod) bool {
	if pod.Status.ObservedGeneration != 0 && pod.Status.ObservedGeneration < pod.Generation {
		return false
	}
	for _, c := range pod.Spec.Containers {
		found := false
		for _, s := range pod.Status.ContainerStatuses {
			if s.Name != c.Name {
				continue
			}
			found = true
			if s.Resources == nil || !equality.Semantic.DeepEqual(s.Resources.Requests, c.Resources.Requests) || !equality.Semantic.DeepEqual(s.Resources.Limits, c.Resources.Limits) {
				return false
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func hasCondition(pod *corev1.Pod, t corev1.PodConditionType, reason string) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

// reserve counts a resize in flight if the global bound allows it.
func (u *Updater) reserve(uid types.UID, now time.Time) bool {
	u.mu.Lock()
	u.maps()
	defer u.mu.Unlock()
	if _, ok := u.inflight[uid]; !ok && len(u.inflight) >= u.MaxInFlight {
		return false
	}
	u.inflight[uid] = inflight{at: now}
	return true
}

// sent records the pod generation a resize made, once the API server accepted it.
func (u *Updater) sent(uid types.UID, generation int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f, ok := u.inflight[uid]; ok {
		f.generation = generation
		u.inflight[uid] = f
	}
}

func (u *Updater) release(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.inflight, uid)
}

// notePending counts a pod's Deferred or Infeasible once per transition and tells the pod.
func (u *Updater) notePending(vpa *vpav1.VerticalPodAutoscaler, pod *corev1.Pod, d resizer.Decision) {
	reason := ""
	switch d.Reason {
	case resizer.ReasonDeferred:
		reason = "deferred"
	case resizer.ReasonInfeasible:
		reason = "infeasible"
	}
	u.mu.Lock()
	u.maps()
	m := u.pods[pod.UID]
	changed := m.pending != reason
	m.pending = reason
	u.pods[pod.UID] = m
	u.mu.Unlock()
	if !changed || reason == "" {
		return
	}
	u.Metrics.Resizes.WithLabelValues(reason).Inc()
	u.Recorder.Eventf(pod, vpa, corev1.EventTypeWarning, string(d.Reason), "Resize", "%s", d.Message)
}

// Start forgets, every Resync, what the updater remembers of pods that no longer exist, so
// its memory follows the cluster's pods. It runs on the leader with the controller.
func (u *Updater) Start(ctx context.Context) error {
	t := u.Clock.NewTicker(u.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		var list corev1.PodList
		if err := u.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			u.Log.Error(err, "Listing pods to forget gone ones failed")
			continue
		}
		live := make(map[types.UID]bool, len(list.Items))
		for i := range list.Items {
			live[list.Items[i].UID] = true
		}
		u.forget(live)
	}
}

// NeedLeaderElection is true: the memory belongs to the acting leader.
func (u *Updater) NeedLeaderElection() bool { return true }

// forget drops the memos and in-flight entries of pods not in live.
func (u *Updater) forget(live map[types.UID]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for uid := range u.pods {
		if !live[uid] {
			delete(u.pods, uid)
		}
	}
	for uid := range u.inflight {
		if !live[uid] {
			delete(u.inflight, uid)
		}
	}
}
