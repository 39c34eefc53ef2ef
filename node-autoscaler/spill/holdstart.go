package spill

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FallbackHoldImage is the placeholders' image when --hold-image is empty and no real node
// reports a sandbox image yet: containerd 2's default sandbox image.
const FallbackHoldImage = "registry.k8s.io/pause:3.10"

// SandboxImage is the pause image the real nodes already hold (the kubelet's sandbox image,
// which each node pulls from wherever its cloud keeps it: ACK's from its own registry), as the
// nodes report it in status.images: the pause image most Ready real nodes have, "" when none
// reports one. A placeholder with it starts without a pull, wherever the registry is. Pure.
func SandboxImage(nodes []corev1.Node, virtual labels.Selector) string {
	count := map[string]int{}
	for i := range nodes {
		n := &nodes[i]
		if virtual.Matches(labels.Set(n.Labels)) || !nodeReady(n) {
			continue
		}
		seen := map[string]bool{}
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				if isPause(name) && !seen[name] {
					seen[name] = true
					count[name]++
				}
			}
		}
	}
	names := make([]string, 0, len(count))
	for name := range count {
		names = append(names, name)
	}
	// The most nodes first; then tags before digests (readable), then by name (stable).
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if count[a] != count[b] {
			return count[a] > count[b]
		}
		if da, db := strings.Contains(a, "@"), strings.Contains(b, "@"); da != db {
			return db
		}
		return a < b
	})
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// isPause reports whether an image reference names a pause image (repository .../pause).
func isPause(ref string) bool {
	repo := ref
	if i := strings.IndexAny(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo == "pause" || strings.HasSuffix(repo, "/pause")
}

// holdImage is the image a new placeholder gets: --hold-image when set, else the nodes'
// sandbox image, else FallbackHoldImage.
func holdImage(ctx context.Context, d Deps) (string, error) {
	if d.Config.HoldImage != "" {
		return d.Config.HoldImage, nil
	}
	var nodes corev1.NodeList
	if err := d.Client.List(ctx, &nodes); err != nil {
		return "", fmt.Errorf("listing nodes for their sandbox image: %w", err)
	}
	if img := SandboxImage(nodes.Items, d.Config.VirtualNodeSelector); img != "" {
		return img, nil
	}
	return FallbackHoldImage, nil
}

// reportHold says, once per placeholder, that it has not run within the bound: a Warning event
// on the spilled pod with what holds it up, a metric, and a mark on the placeholder.
func (m *Mover) reportHold(ctx context.Context, pod *corev1.Pod, in MoveInput) error {
	d := m.deps
	if !m.reported.add(in.Hold.UID, in.Now) {
		return nil // reported a moment ago; the cache has not shown the mark yet
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		HoldNotRunningAnnotation: in.Now.UTC().Format(time.RFC3339)}}})
	if err != nil {
		return fmt.Errorf("encoding the placeholder's mark: %w", err)
	}
	if err := d.Client.Patch(ctx, in.Hold, client.RawPatch(types.MergePatchType, body)); err != nil {
		m.reported.remove(in.Hold.UID)
		return client.IgnoreNotFound(fmt.Errorf("marking placeholder %s/%s: %w", in.Hold.Namespace, in.Hold.Name, err))
	}
	d.Metrics.Holds.WithLabelValues("not_running").Inc()
	d.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, MoveReasonHoldStuck, "Hold",
		"placeholder %s has not run for %s (%s): this pod stays on serverless capacity until it does; if its image cannot be pulled, set the hold image to one the nodes have (--hold-image)",
		in.Hold.Name, d.Config.HoldStartTimeout, HoldState(in.Hold))
	return nil
}

// HoldState says why a placeholder is not running: unscheduled (and why), or its container's
// waiting reason (ErrImagePull, ImagePullBackOff, …) and message.
func HoldState(hold *corev1.Pod) string {
	if hold.Spec.NodeName == "" {
		for _, c := range hold.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return "not scheduled: " + c.Message
			}
		}
		return "not scheduled"
	}
	for _, s := range hold.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil {
			return fmt.Sprintf("on node %s, %s: %s", hold.Spec.NodeName, w.Reason, w.Message)
		}
	}
	return fmt.Sprintf("on node %s, %s", hold.Spec.NodeName, hold.Status.Phase)
}

// recentSet remembers keys for a minute, far longer than a cache takes to show a write.
type recentSet struct {
	mu   sync.Mutex
	seen map[types.UID]time.Time
}

const recentFor = time.Minute

// add records uid at now and reports whether it was not already recorded within recentFor;
// older entries go.
func (r *recentSet) add(uid types.UID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[types.UID]time.Time{}
	}
	for k, at := range r.seen {
		if now.Sub(at) >= recentFor {
			delete(r.seen, k)
		}
	}
	if _, ok := r.seen[uid]; ok {
		return false
	}
	r.seen[uid] = now
	return true
}

func (r *recentSet) remove(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, uid)
}
