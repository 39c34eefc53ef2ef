package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/lockstep-dev/lockstep/internal/podresources"
)

// ResizeAnnotation on a kwok pod (Deferred or Infeasible) makes the bed's kubelet answer that
// to its resizes whatever the node holds (the lockstep-pod-resize-pending stage); removing it
// lets the resize through, as a kubelet does once room frees.
const ResizeAnnotation = "testbed.lockstep.dev/resize"

// resizeChecker plays the part of a kubelet in in-place resizes for the pods of kwok nodes:
// a resize whose pod no longer fits the node's allocatable is Infeasible, one that fits the
// node but not beside the other pods' allocations is Deferred (and applied once room frees),
// and the others are applied by copying the spec's resources into the containers' status.
// Pending resizes on a node are admitted by priority, then age, as the kubelet retries them.
type resizeChecker struct {
	cs      kubernetes.Interface
	pods    cache.Indexer
	nodes   cache.Indexer
	queue   workqueue.TypedRateLimitingInterface[string]
	cancel  context.CancelFunc
	stopped sync.WaitGroup
}

const podsByNodeIndex = "spec.nodeName"

// startResizeChecker watches pods and nodes and admits the kwok pods' resizes until stop.
func startResizeChecker(ctx context.Context, cs kubernetes.Interface) (*resizeChecker, error) {
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(cs, 0)
	podInf, nodeInf := factory.Core().V1().Pods().Informer(), factory.Core().V1().Nodes().Informer()
	if err := podInf.AddIndexers(cache.Indexers{podsByNodeIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		cancel()
		return nil, fmt.Errorf("indexing pods by node: %w", err)
	}
	c := &resizeChecker{
		cs: cs, pods: podInf.GetIndexer(), nodes: nodeInf.GetIndexer(), cancel: cancel,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 2*time.Second)),
	}
	enqueuePod := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			c.queue.Add(p.Spec.NodeName)
		}
	}
	enqueueNode := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			c.queue.Add(n.Name)
		}
	}
	_, err1 := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueuePod, UpdateFunc: func(_, o any) { enqueuePod(o) }, DeleteFunc: enqueuePod})
	_, err2 := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueNode, UpdateFunc: func(_, o any) { enqueueNode(o) }})
	if err := errors.Join(err1, err2); err != nil {
		cancel()
		return nil, fmt.Errorf("watching pods and nodes: %w", err)
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			cancel()
			return nil, fmt.Errorf("resize checker: %v cache never synced", typ)
		}
	}
	c.stopped.Add(1)
	go func() {
		defer c.stopped.Done()
		for c.next(ctx) {
		}
	}()
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
		factory.Shutdown()
	}()
	return c, nil
}

// stop ends the checker and waits for its worker.
func (c *resizeChecker) stop() {
	c.cancel()
	c.stopped.Wait()
}

func (c *resizeChecker) next(ctx context.Context) bool {
	node, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(node)
	if err := c.checkNode(ctx, node); err != nil && ctx.Err() == nil {
		c.queue.AddRateLimited(node)
		return true
	}
	c.queue.Forget(node)
	return true
}

// checkNode answers every pending resize on one kwok node.
func (c *resizeChecker) checkNode(ctx context.Context, name string) error {
	obj, ok, err := c.nodes.GetByKey(name)
	if err != nil || !ok {
		return err
	}
	node := obj.(*corev1.Node)
	if node.Annotations[kwokNodeAnnotation] != "fake" {
		return nil // a real kubelet's node answers for itself
	}
	objs, err := c.pods.ByIndex(podsByNodeIndex, name)
	if err != nil {
		return fmt.Errorf("listing pods of node %s: %w", name, err)
	}
	used := corev1.ResourceList{}
	var pending []*corev1.Pod
	for _, o := range objs {
		p := o.(*corev1.Pod)
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		podresources.Add(used, podresources.Allocated(p), 1)
		if podresources.Pending(p) && p.Annotations[ResizeAnnotation] == "" {
			pending = append(pending, p)
		}
	}
	sort.Slice(pending, func(i, j int) bool {
		pi, pj := priority(pending[i]), priority(pending[j])
		if pi != pj {
			return pi > pj
		}
		return pending[i].CreationTimestamp.Before(&pending[j].CreationTimestamp)
	})
	var errs []error
	for _, p := range pending {
		allocated, want := podresources.Allocated(p), podresources.Desired(p)
		others := used.DeepCopy()
		podresources.Add(others, allocated, -1)
		verdict, message := podresources.Fit(want, node.Status.Allocatable, others)
		if !reported(p) {
			// The first report of a new pod's resources is its admission, not a resize.
			verdict, message = podresources.Fits, ""
		}
		if verdict == podresources.Fits {
			podresources.Add(used, want, 1)
			podresources.Add(used, allocated, -1)
		}
		if err := c.answer(ctx, p, verdict, message); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reported tells whether the pod's containers have reported their resources before.
func reported(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Resources != nil {
			return true
		}
	}
	return false
}

func priority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// answer writes the verdict into the pod's status: the resources applied, or a
// PodResizePending condition (its transition time kept while the reason stays). A conflict
// with another writer of the status is retried on the next pass.
func (c *resizeChecker) answer(ctx context.Context, p *corev1.Pod, verdict podresources.Verdict, message string) error {
	body, err := resizeStatusPatch(p, verdict, message, time.Now())
	if err != nil || body == nil {
		return err
	}
	_, err = c.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("answering the resize of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// resizeStatusPatch is the status patch that reports verdict on pod, nil when the status says
// so already. It carries the pod's resourceVersion, so it is refused if the status changed.
func resizeStatusPatch(p *corev1.Pod, verdict podresources.Verdict, message string, now time.Time) ([]byte, error) {
	type condition struct {
		Type               corev1.PodConditionType `json:"type"`
		Patch              string                  `json:"$patch,omitempty"`
		Status             corev1.ConditionStatus  `json:"status,omitempty"`
		Reason             string                  `json:"reason,omitempty"`
		Message            string                  `json:"message,omitempty"`
		LastTransitionTime *metav1.Time            `json:"lastTransitionTime,omitempty"`
		ObservedGeneration int64                   `json:"observedGeneration,omitempty"`
	}
	status := map[string]any{"observedGeneration": p.Generation}
	if verdict == podresources.Fits {
		statuses := make([]corev1.ContainerStatus, len(p.Status.ContainerStatuses))
		for i, s := range p.Status.ContainerStatuses {
			statuses[i] = *s.DeepCopy()
			for _, c := range p.Spec.Containers {
				if c.Name == s.Name {
					statuses[i].Resources = c.Resources.DeepCopy()
					statuses[i].AllocatedResources = c.Resources.Requests.DeepCopy()
				}
			}
		}
		status["containerStatuses"] = statuses
		status["conditions"] = []condition{{Type: corev1.PodResizePending, Patch: "delete"}, {Type: corev1.PodResizeInProgress, Patch: "delete"}}
	} else {
		since := metav1.NewTime(now)
		for _, c := range p.Status.Conditions {
			if c.Type != corev1.PodResizePending || c.Reason != string(verdict) {
				continue
			}
			if c.Message == message && c.ObservedGeneration == p.Generation {
				return nil, nil
			}
			since = c.LastTransitionTime
		}
		status["conditions"] = []condition{{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: string(verdict),
			Message: message, LastTransitionTime: &since, ObservedGeneration: p.Generation}}
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": p.ResourceVersion}, "status": status})
	if err != nil {
		return nil, fmt.Errorf("encoding resize status: %w", err)
	}
	return body, nil
}
